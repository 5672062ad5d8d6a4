"""The one file hasher: a file's digest, read in 1 MiB chunks."""

from __future__ import annotations

import hashlib
import os

#: Bytes per read when hashing a file.
HASH_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """The hex digest of the bytes of the file at ``path``.

    Args:
        path: a regular file (read in :data:`HASH_CHUNK`-byte chunks, never whole).
        algorithm: a :func:`hashlib.new` name: ``sha256`` (checkpoints, weights files,
            wheels), ``md5`` (the checksums torchvision publishes for the datasets).

    Raises:
        OSError: the file cannot be read.
        ValueError: an unknown ``algorithm``.
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
