"""IDX headers: :func:`is_idx_magic`, :func:`is_byteswapped_idx` (a header written
little-endian), :func:`parse_idx_header` (magic, element type, number of
dimensions, sizes, and the length they imply, all checked before anything is
allocated) and :func:`idx_array`."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

#: IDX element type code -> NumPy dtype as stored (big-endian).
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
#: Most dimensions read: the format allows 255; NumPy arrays hold at most 32 (NumPy 1).
IDX_MAX_DIMS = 32


class IdxFormatError(ValueError):
    """Bytes that are not a usable IDX file. ``str()`` says why, without a file name.

    Attributes:
        reason: ``"magic"`` (no IDX magic number), ``"dims"`` (more than
            :data:`IDX_MAX_DIMS`), ``"header"`` (shorter than its header),
            ``"size"`` (length differs from
            what the header implies), ``"too_large"`` (a shape NumPy refuses).
        header: the parsed header for ``"size"`` and ``"too_large"``, else None.
        size: the length found, in bytes (None if not known).
    """

    def __init__(
        self, reason: str, message: str, header: IdxHeader | None = None, size: int | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.header = header
        self.size = size


@dataclass(frozen=True)
class IdxHeader:
    """A parsed IDX header.

    Attributes:
        magic: the 32-bit magic number (2051 for MNIST images, 2049 for labels).
        dtype: element dtype as stored (big-endian for multi-byte types).
        shape: dimension sizes, e.g. ``(60000, 28, 28)``.
    """

    magic: int
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def header_bytes(self) -> int:
        """Bytes before the data: 4 for the magic plus 4 per dimension."""
        return 4 + 4 * len(self.shape)

    @property
    def total_bytes(self) -> int:
        """File length the header implies, in bytes."""
        return self.header_bytes + math.prod(self.shape) * self.dtype.itemsize


def is_idx_magic(head: bytes) -> bool:
    """True when ``head`` starts with an IDX magic number: 0, 0, a known element type, >= 1 dims."""
    return len(head) >= 4 and head[:2] == b"\0\0" and head[2] in IDX_TYPES and head[3] >= 1


def is_byteswapped_idx(head: bytes) -> bool:
    """True when ``head`` is an IDX magic number written little-endian (``03 08 00 00``).

    IDX stores its magic number and sizes big-endian (``00 00 08 03`` for
    images); a writer that used the machine's byte order on x86 or ARM gives
    the bytes reversed.
    """
    return len(head) >= 4 and head[2:4] == b"\0\0" and head[1] in IDX_TYPES and head[0] >= 1


def parse_idx_header(head: bytes, size: int | None = None) -> IdxHeader:
    """Parse the IDX header at the start of ``head`` and check it against the file's length.

    Args:
        head: the file's first bytes: at least 4 + 4 * dims of them (1024 is plenty).
        size: the whole file's length in bytes; None skips the length checks.

    Returns:
        The header. Nothing is allocated from the sizes it announces.

    Raises:
        IdxFormatError: see its ``reason`` codes; the checks run in the order
            listed there, and ``size`` is checked only when given.
    """
    if not is_idx_magic(head):
        raise IdxFormatError("magic", "no IDX magic number")
    ndim = head[3]
    if ndim > IDX_MAX_DIMS:
        raise IdxFormatError("dims", f"{ndim} dimensions; at most {IDX_MAX_DIMS} are supported.")
    if len(head) < 4 + 4 * ndim:
        have = len(head) if size is None else size
        raise IdxFormatError(
            "header",
            f"truncated: {have} bytes, but an IDX header with {ndim} dims needs {4 + 4 * ndim}.",
            size=have,
        )
    magic = struct.unpack(">I", head[:4])[0]
    shape = tuple(struct.unpack(f">{ndim}I", head[4 : 4 + 4 * ndim]))
    header = IdxHeader(magic=magic, dtype=IDX_TYPES[head[2]], shape=shape)
    if size is not None and header.total_bytes != size:
        what = (
            "truncated (an interrupted download or copy?)"
            if size < header.total_bytes
            else "it has trailing bytes"
        )
        raise IdxFormatError(
            "size",
            f"its header says shape {header.shape} of {header.dtype.name} = "
            f"{header.total_bytes} bytes, but the file has {size} bytes: {what}.",
            header,
            size,
        )
    if math.prod(max(d, 1) for d in shape) * header.dtype.itemsize > np.iinfo(np.intp).max:
        # a 0 dimension makes the file empty, but NumPy still refuses such a shape
        raise IdxFormatError(
            "too_large", f"dimensions {shape} are too large for an array.", header, size
        )
    return header


def idx_array(data: bytes) -> np.ndarray:
    """The array of a whole IDX file's bytes, of the stored shape and native byte order.

    Single-byte types give a read-only view of ``data``; wider types a copy.

    Raises:
        IdxFormatError: as :func:`parse_idx_header` with ``size=len(data)``.
    """
    header = parse_idx_header(data[: 4 + 4 * 255], len(data))
    array = np.frombuffer(
        data, header.dtype, count=math.prod(header.shape), offset=header.header_bytes
    )
    return array.astype(header.dtype.newbyteorder("="), copy=False).reshape(header.shape)
