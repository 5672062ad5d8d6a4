"""What a file is, from its first bytes, when it cannot be a torch checkpoint."""

from __future__ import annotations

import os

from mnistcnn.errors import CheckpointError

_SNIFF_BYTES = 4096
#: (leading bytes, what a file starting with them is), checked in order.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF", "a PDF document"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (a Keras model?)"),
    (b"\x1f\x8b", "a gzip file (an MNIST .gz download?)"),
    (b"\x08\x01\x12", "a protobuf file (an ONNX model?)"),
)


def describe_non_checkpoint(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` looks like when it cannot be a torch checkpoint; None when it may be one.

    A torch checkpoint is a zip archive (``torch.save``'s format since torch
    1.6) or a pickle of protocol 2 or later (the legacy format, and bare
    pickles); such files return None and are left to ``torch.load``. Anything
    else is named from its first bytes: ``"an empty file (0 bytes)"``,
    ``"a PNG image"``, ``"JSON text"``, ``"a text file"``, ... .

    Raises:
        CheckpointError: the file cannot be read (permissions, I/O error).
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not head:
        return "an empty file (0 bytes)"
    if head.startswith(b"PK\x03\x04") or head[0] == 0x80:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[:2] == b"BM" and head[6:10] == b"\0\0\0\0":  # reserved bytes of a BMP header
        return "a BMP image"
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    if len(head) >= 4 and head[:2] == b"\0\0" and 0x08 <= head[2] <= 0x0E and 1 <= head[3] <= 4:
        return "an IDX file (MNIST images or labels)"
    return (
        _describe_text(head) or f"binary data that is not a torch file (starts {head[:8].hex(' ')})"
    )


def _describe_text(head: bytes) -> str | None:
    """``"JSON text"``, ``"an HTML page"``, ``"a text file"``, or None for binary ``head``."""
    if b"\0" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            return None
        text = head[: exc.start].decode("utf-8")
    start = text.lstrip("\ufeff \t\r\n")[:15].lower()
    if start.startswith(("{", "[")):
        return "JSON text"
    if start.startswith(("<!doctype html", "<html")):
        return "an HTML page (a download that saved an error page?)"
    if start.startswith("<"):
        return "XML or HTML text"
    return "a text file"
