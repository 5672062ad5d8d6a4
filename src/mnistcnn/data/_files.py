"""File helpers of the data layer: atomic writes, hashes, content sniffing, capped copies.

Nothing here knows about datasets; the capped copies exist so that a file that
is far larger than the IDX file it should become (a gzip bomb, a wrong file)
is refused before it fills the disk.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

from mnistcnn import _io
from mnistcnn._io import atomic_path, new_temp_file
from mnistcnn.data.errors import IDXError

CHUNK = 1 << 20  # bytes per read when streaming files


@contextlib.contextmanager
def staged_file(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success rename it to ``final``.

    :func:`mnistcnn._io.atomic_path` after creating ``final``'s folder: the
    caller writes (and validates) the temporary file inside the ``with``
    block. On normal exit it is flushed to disk and renamed over ``final`` in
    one step (``os.replace``), so ``final`` is never half-written. If the block
    raises, the temporary file is deleted and ``final`` is left untouched.

    Raises:
        OSError: the folder cannot be created or written.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(final) as tmp:
        yield tmp


@contextlib.contextmanager
def scratch_file(directory: Path, name: str) -> Iterator[Path]:
    """Yield a new hidden temporary path in ``directory`` named after ``name``; always deleted."""
    fd, tmp = new_temp_file(directory, name)
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_head(path: Path, n: int = 1024) -> bytes:
    """The first ``n`` bytes of a file (fewer if it is shorter)."""
    with open(path, "rb") as f:
        return f.read(n)


#: The data layer's view of :func:`mnistcnn._io.sniff`'s kinds (any other kind: "unknown").
_DATA_KINDS = {
    "empty": "empty",
    "gzip": "gzip",
    "idx": "idx",
    "html": "html",
    "xml": "html",
    "svg": "html",
}


def sniff(head: bytes) -> str:
    """Guess what a file is from its first bytes (:func:`mnistcnn._io.sniff`, in five words).

    Returns one of ``"empty"``, ``"gzip"`` (magic 1f 8b), ``"html"`` (a web page,
    or other markup: a proxy, login or error page saved under a data file's
    name), ``"idx"`` (:func:`mnistcnn._io.is_idx_magic`) or ``"unknown"``.
    """
    return _DATA_KINDS.get(_io.sniff(head), "unknown")


def describe_content(kind: str) -> str:
    """Human words for a :func:`sniff` result, for error messages."""
    return {
        "empty": "an empty file",
        "gzip": "a gzip file",
        "html": "what looks like an HTML page, not gzip or IDX data (a proxy or login page?)",
        "idx": "an uncompressed IDX file",
        "unknown": "neither gzip nor IDX data",
    }[kind]


def copy_capped(src: Path, dest: Path, max_bytes: int) -> int:
    """Copy ``src`` to ``dest``, refusing (IDXError) a source longer than ``max_bytes``.

    Returns the number of bytes copied. ``src`` is only read.
    """
    size = src.stat().st_size
    if size > max_bytes:
        raise IDXError(
            f"{src}: expected at most {max_bytes} bytes, found {size}: not the expected file. "
            "Replace it with the original file."
        )
    shutil.copyfile(src, dest)
    return size


def gunzip_capped(src: Path, dest: Path, max_bytes: int) -> int:
    """Decompress gzip file ``src`` into ``dest``, writing at most ``max_bytes``.

    Returns the number of bytes written. ``src`` is only read.

    Raises:
        IDXError: ``src`` is not gzip (an HTML page is named as such), is truncated
            or corrupt, or decompresses to more than ``max_bytes``.
    """
    kind = sniff(read_head(src))
    if kind != "gzip":
        raise IDXError(
            f"{src}: expected gzip data, found {describe_content(kind)}. "
            "Download the file again, or put the original file in its place."
        )
    written = 0
    try:
        with gzip.open(src, "rb") as fin, open(dest, "wb") as fout:
            while chunk := fin.read(CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise IDXError(
                        f"{src}: expected at most {max_bytes} bytes once decompressed, "
                        "found more: not the expected file. Replace it with the original file."
                    )
                fout.write(chunk)
    except EOFError as e:
        raise IDXError(
            f"{src}: truncated gzip file ({src.stat().st_size} bytes; the compressed stream "
            "ends early): an interrupted download? Download it again."
        ) from e
    except (gzip.BadGzipFile, zlib.error) as e:  # bad header, corrupt stream, CRC mismatch
        raise IDXError(
            f"{src}: corrupt gzip data ({e}). Download the file again, "
            "or put the original file in its place."
        ) from e
    return written
