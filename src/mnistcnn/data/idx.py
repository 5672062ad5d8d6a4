"""Read, write and validate IDX files (the MNIST file format).

Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a big-endian 32-bit
magic number ``0x0000TTDD`` (``TT`` the element type, ``DD`` the number of
dimensions), ``DD`` big-endian 32-bit dimension sizes, then the elements in C
order, big-endian. MNIST images are magic 2051 (``0x00000803``: unsigned bytes,
3 dims N x 28 x 28), labels 2049 (``0x00000801``: unsigned bytes, 1 dim N).
QMNIST's extended labels are magic 3074 (``0x00000C02``: big-endian int32,
2 dims N x 8; column 0 is the class, see :data:`EXTENDED_LABEL_COLUMNS`).

Every reader checks the size implied by the header against the real file size
*before* allocating, so a lying header cannot cause a huge allocation.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

from mnistcnn._io import (
    IDX_MAX_DIMS,
    IDX_TYPES,
    IdxFormatError,
    IdxHeader,
    file_digest,
    is_byteswapped_idx,
    is_idx_magic,
    parse_idx_header,
)
from mnistcnn.data._files import describe_content, read_head, sniff, staged_file
from mnistcnn.data.errors import IDXError

IdxKind = Literal["images", "labels", "extended-labels"]

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dims
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dim
EXTENDED_LABELS_MAGIC = 3074  # 0x00000C02: int32, 2 dims (QMNIST)
#: Columns of a QMNIST extended label row (int32): class, NIST HSF series, writer id,
#: digit index for the writer, NIST class code, global NIST index, duplicate, unused.
EXTENDED_LABEL_COLUMNS = 8
MAGIC = {"images": IMAGES_MAGIC, "labels": LABELS_MAGIC, "extended-labels": EXTENDED_LABELS_MAGIC}
MAX_DIMS = IDX_MAX_DIMS  # the format allows 255; NumPy arrays hold at most 32 (NumPy 1)

_TYPES = IDX_TYPES  # IDX type code -> numpy dtype (big-endian as stored)
_CODES = {dt.newbyteorder("="): code for code, dt in _TYPES.items()}
_ADVICE = "Delete it and fetch the dataset again, or replace it with the original file."


def idx_size(kind: IdxKind, count: int, image_shape: tuple[int, int] = (28, 28)) -> int:
    """Exact byte length of an MNIST-style IDX file of ``count`` images or labels."""
    if kind == "images":
        return 16 + count * image_shape[0] * image_shape[1]
    if kind == "extended-labels":
        return 12 + count * EXTENDED_LABEL_COLUMNS * 4
    return 8 + count


def read_idx_header(path: str | os.PathLike[str]) -> IdxHeader:
    """Parse the header of IDX file ``path`` and check it against the file size.

    Raises:
        IDXError: the file is too short, has no IDX magic (the message says if it
            is gzip, an HTML page, or an IDX file written byte-swapped), or its
            length differs from what the header implies (truncated, or a lying
            header), or it has more than
            ``MAX_DIMS`` dimensions or a shape too large for NumPy.
    """
    path = Path(path)
    size = path.stat().st_size
    head = read_head(path)
    if is_byteswapped_idx(head):
        raise IDXError(
            f"{path}: an IDX file whose header is byte-swapped (little-endian: magic bytes "
            f"{head[:4].hex(' ')}); the IDX format is big-endian ({head[:4][::-1].hex(' ')}): "
            "write the magic number and sizes big-endian (e.g. numpy dtype '>u4', struct '>I'). "
            f"{_ADVICE}"
        )
    if not is_idx_magic(head):
        kind = sniff(head)
        found = describe_content(kind)
        if kind == "unknown" and len(head) >= 4:
            found += f" (magic 0x{struct.unpack('>I', head[:4])[0]:08x})"
        raise IDXError(
            f"{path}: expected an IDX file (magic 0x00000801 or 0x00000803), found {found}. "
            f"{_ADVICE}"
        )
    try:
        return parse_idx_header(head, size)
    except IdxFormatError as exc:
        raise IDXError(f"{path}: {exc} {_ADVICE}") from None


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read IDX file ``path`` into a writable, native-endian array of the stored shape.

    MNIST images come back as uint8 (N, 28, 28), labels as uint8 (N,).

    Raises:
        IDXError: see :func:`read_idx_header`.
    """
    header = read_idx_header(path)
    with open(path, "rb") as f:
        f.seek(header.header_bytes)
        data = np.fromfile(f, dtype=header.dtype, count=math.prod(header.shape))
    return data.astype(header.dtype.newbyteorder("="), copy=False).reshape(header.shape)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as IDX file ``path``, atomically (temp file, then rename).

    Supported dtypes: uint8, int8, int16, int32, float32, float64 (any byte
    order; stored big-endian). ``write_idx`` then ``read_idx`` round-trips
    exactly, and MNIST arrays give byte-identical files to the originals.

    Raises:
        ValueError: unsupported dtype, or 0 or more than 255 dimensions.
    """
    with staged_file(Path(path)) as tmp, open(tmp, "wb") as f:
        write_idx_to(f, array)


def write_idx_to(f: BinaryIO, array: np.ndarray) -> None:
    """Write ``array`` in IDX format to the open binary file ``f`` (see :func:`write_idx`)."""
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        supported = ", ".join(dt.name for dt in _CODES)
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use one of {supported}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX needs 1..255 dimensions, got {array.ndim}")
    f.write(struct.pack(">BBBB", 0, 0, code, array.ndim))
    f.write(struct.pack(f">{array.ndim}I", *array.shape))
    f.write(np.ascontiguousarray(array, dtype=_TYPES[code]).tobytes())


def validate_idx_file(
    path: str | os.PathLike[str],
    kind: IdxKind,
    *,
    count: int | None = None,
    num_classes: int | None = None,
    image_shape: tuple[int, int] = (28, 28),
    md5: str | None = None,
    first_label: int = 0,
) -> IdxHeader:
    """Check that ``path`` is a valid MNIST-style IDX ``kind`` file; return its header.

    Checks, in order: IDX magic 2051 (images: uint8, 3 dims), 2049 (labels:
    uint8, 1 dim) or 3074 (extended labels: int32, N x 8); file length equal
    to what the header implies (before any allocation); image size
    ``image_shape`` (extended labels: 8 columns); item count ``count``; md5 of
    the whole (uncompressed) file; labels (extended: column 0) in
    ``first_label..first_label+num_classes-1`` (EMNIST letters are stored as
    1..26: ``first_label=1``).

    Raises:
        IDXError: the first failed check; the message names the file, what was
            expected and what was found, and what to do.
    """
    path = Path(path)
    header = read_idx_header(path)
    expected = MAGIC[kind]
    if header.magic != expected:
        other = {IMAGES_MAGIC: " (an images file)", LABELS_MAGIC: " (a labels file)"}
        raise IDXError(
            f"{path}: expected magic {expected} (0x{expected:08x}, an IDX {kind} file), found "
            f"{header.magic} (0x{header.magic:08x}{other.get(header.magic, '')}). {_ADVICE}"
        )
    if kind == "images" and header.shape[1:] != image_shape:
        raise IDXError(
            f"{path}: expected images of {image_shape[0]}x{image_shape[1]} pixels, found "
            f"{'x'.join(map(str, header.shape[1:]))}. {_ADVICE}"
        )
    if kind == "extended-labels" and header.shape[1:] != (EXTENDED_LABEL_COLUMNS,):
        raise IDXError(
            f"{path}: expected {EXTENDED_LABEL_COLUMNS} label columns (QMNIST format), found "
            f"{'x'.join(map(str, header.shape[1:]))}. {_ADVICE}"
        )
    if count is not None and header.shape[0] != count:
        raise IDXError(f"{path}: expected {count} {kind}, found {header.shape[0]}. {_ADVICE}")
    if md5 is not None:
        actual = file_digest(path, "md5")
        if actual != md5:
            raise IDXError(
                f"{path}: expected md5 {md5}, found {actual}: a corrupt file or a different "
                f"version of the data. {_ADVICE}"
            )
    if kind != "images" and num_classes is not None:
        labels = read_idx(path)
        check_labels(labels[:, 0] if labels.ndim == 2 else labels, num_classes, path, first_label)
    return header


def check_labels(
    labels: np.ndarray, num_classes: int, path: str | os.PathLike[str], first_label: int = 0
) -> None:
    """Raise IDXError unless every label is in ``first_label..first_label+num_classes-1``."""
    lo, hi = first_label, first_label + num_classes - 1
    if labels.size and (labels.min() < lo or labels.max() > hi):
        bad = int(np.flatnonzero((labels < lo) | (labels > hi))[0])
        raise IDXError(
            f"{path}: expected labels in {lo}..{hi}, found {int(labels[bad])} at "
            f"index {bad}. {_ADVICE}"
        )


def validate_pair(
    images: IdxHeader, labels: IdxHeader, images_path: Path, labels_path: Path
) -> None:
    """Raise IDXError unless an images file and its labels file hold the same count."""
    if images.shape[0] != labels.shape[0]:
        raise IDXError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels: they do not belong together. {_ADVICE}"
        )
