"""Pictures that are not quite pictures, and safe decoding, in words for people.

* IDX files given to predict (:func:`idx_images`: MNIST's format, plain or
  gzipped, many 28x28 images), checked against their header;
* the pages of a multi-page TIFF worth predicting (:func:`tiff_pages`);
* what a file that is not an image is (:func:`not_an_image`): SVG, IDX and
  byte-swapped IDX, gzip, text, HEIC/HEIF (with :data:`HEIC_ADVICE`), a
  truncated image or another format; the server says the same;
* :func:`decode_picture`: encoded bytes opened with :func:`mnistcnn._io.decode_image`
  (the allow-list of decoders), every way it can fail turned into an
  :class:`ImageInputError` with a message for people: an empty file, a text or
  SVG file, another format, a truncated file, a decompression bomb (Pillow's
  ``DecompressionBombWarning`` is an error here too) or a degenerate size
  (:func:`check_size`).
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib

import numpy as np
from PIL import Image

from mnistcnn._io.idx import (
    IdxFormatError,
    IdxHeader,
    idx_array,
    is_byteswapped_idx,
    is_idx_magic,
    parse_idx_header,
)
from mnistcnn._io.images import (
    KIND_FORMATS,
    ImageDecodeError,
    accepted_formats,
    bomb_limit,
    load_image,
    open_image,
)
from mnistcnn._io.images import decode_image as _decode
from mnistcnn._io.sniff import SNIFF_BYTES, describe_kind, sniff
from mnistcnn.errors import MnistcnnError

#: A picture needs at least this many pixels on its shorter side ...
MIN_SIDE = 8
#: ... and at most this ratio between its sides (a digit is about 1:1 to 1:2).
MAX_ASPECT = 20.0
#: Largest IDX payload read (after gunzip): MNIST's training images are 47 MB.
MAX_IDX_BYTES = 512 * 2**20


class ImageInputError(MnistcnnError, ValueError):
    """An input cannot be used as a picture; the message says why, for people."""


#: Predict's words for :class:`~mnistcnn._io.IdxFormatError` reasons (others: its own text).
_IDX_WORDS = {"magic": "not an IDX file (no IDX magic number)", "header": "a truncated IDX header"}


def is_idx(head: bytes) -> bool:
    """True when ``head`` starts with an IDX magic number (:func:`mnistcnn._io.is_idx_magic`)."""
    return is_idx_magic(head)


def gz_head(data: bytes, n: int = 16) -> bytes:
    """The first ``n`` decompressed bytes of gzip ``data`` (b"" when it is not valid gzip)."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[: 1 << 16], n)
    except zlib.error:
        return b""


def _idx_header(head: bytes) -> IdxHeader:
    """:func:`mnistcnn._io.parse_idx_header` (no length check), errors as ImageInputError."""
    try:
        return parse_idx_header(head)
    except IdxFormatError as exc:
        raise ImageInputError(_IDX_WORDS.get(exc.reason, str(exc))) from None


def gunzip_idx(data: bytes) -> bytes:
    """Decompress gzipped IDX ``data``, reading no more than its header announces (+1 byte).

    Raises:
        ImageInputError: damaged gzip, or a header announcing more than MAX_IDX_BYTES.
    """
    need = _idx_header(gz_head(data, 4 + 4 * 255)).total_bytes
    if need > MAX_IDX_BYTES:
        raise ImageInputError(f"IDX header announces {need} bytes, more than {MAX_IDX_BYTES}")
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            return f.read(need + 1)  # one byte more shows trailing data
    except (OSError, EOFError) as exc:
        raise ImageInputError(f"a damaged gzip file: {exc}") from None


def idx_images(data: bytes) -> np.ndarray:
    """The images of an IDX file's bytes: uint8 (N, 28, 28) (a 2-D file gives N = 1).

    The header is read by :func:`mnistcnn._io.parse_idx_header` and the array
    by :func:`mnistcnn._io.idx_array` (the data layer's reader).

    Raises:
        ImageInputError: not IDX, a wrong element type or shape (labels, other
            sizes), or a length that disagrees with the header (truncated).
    """
    header = _idx_header(data[: 4 + 4 * 255])
    shape = header.shape
    if header.dtype != np.uint8:
        raise ImageInputError(f"IDX element type 0x{data[2]:02x}; images must be unsigned bytes")
    if len(shape) == 1:
        raise ImageInputError("a 1-D IDX file holds labels, not images")
    if shape[-2:] != (28, 28) or len(shape) > 3:
        raise ImageInputError(f"IDX shape {shape}; predict reads 28x28 images (N, 28, 28)")
    try:
        return idx_array(data).reshape(-1, 28, 28)
    except IdxFormatError as exc:
        if exc.reason != "size":
            raise ImageInputError(str(exc)) from None
        raise ImageInputError(
            f"IDX header says {header.total_bytes} bytes, the file has {len(data)} "
            "(truncated or padded)"
        ) from None


def tiff_pages(img: Image.Image) -> list[int]:
    """The pages of an opened (multi-page) TIFF worth predicting: frame indices from 0.

    Reduced-resolution copies (a thumbnail or preview page, ``NewSubfileType``
    bit 0) are left out. Any other image, and a TIFF whose pages cannot be
    walked, gives ``[0]``. Only headers are read; no pixel is decoded.
    """
    if img.format != "TIFF" or getattr(img, "n_frames", 1) <= 1:
        return [0]
    pages = []
    try:
        for i in range(int(getattr(img, "n_frames", 1))):
            img.seek(i)
            if not int(img.tag_v2.get(254, 0)) & 1:  # type: ignore[attr-defined]
                pages.append(i)
        img.seek(0)
    except (OSError, EOFError, ValueError, struct.error):
        return [0]
    return pages or [0]


def check_size(width: int, height: int) -> None:
    """Refuse sizes no digit picture has.

    Raises:
        ImageInputError: a side shorter than :data:`MIN_SIDE` px, or sides in a
            ratio above :data:`MAX_ASPECT`.
    """
    if min(width, height) < MIN_SIDE:
        raise ImageInputError(
            f"the image is {width}x{height} px: too small for a digit "
            f"(at least {MIN_SIDE} px on each side)"
        )
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageInputError(
            f"the image is {width}x{height} px: too elongated for one digit "
            f"(sides at most {MAX_ASPECT:g}:1)"
        )


#: What to do with a HEIC/HEIF picture (what phone cameras save).
HEIC_ADVICE = (
    "convert it to JPEG or PNG (on the phone: export or share it as JPEG; "
    "on a computer: `heif-convert IMG_0001.heic IMG_0001.jpg`, from libheif)"
)


def not_an_image(data: bytes) -> str:
    """Why ``data`` is not an image predict decodes, for people, with what to do.

    From :func:`mnistcnn._io.sniff`: SVG, IDX (and byte-swapped IDX), gzip,
    text, HEIC/HEIF (named: it is what phones save), a truncated image of an
    accepted format, or another format. The server says the same.
    """
    kind = sniff(data[:SNIFF_BYTES])
    accepted = accepted_formats()
    if kind == "svg":
        return "an SVG (vector) file, which Pillow cannot read; export it as PNG"
    if kind == "heic":
        return f"a HEIC/HEIF image (a phone camera's format), which is not read here: {HEIC_ADVICE}"
    gz = gz_head(data) if kind == "gzip" else b""
    if is_byteswapped_idx(data[:4]) or is_byteswapped_idx(gz):
        return (
            f"an IDX file whose header is byte-swapped (little-endian: magic bytes "
            f"{(gz or data)[:4].hex(' ')}); the IDX format is big-endian "
            f"({(gz or data)[:4][::-1].hex(' ')}): write the magic number and sizes "
            "big-endian (e.g. numpy dtype '>u4', struct '>I')"
        )
    if kind == "idx" or (kind == "gzip" and is_idx(gz)):
        return "an IDX file (many images): give it as a path, or on the command line"
    if kind == "gzip":
        return "a gzip file that does not hold an IDX file"
    if kind in ("text", "json", "html", "xml"):
        return "a text file, not an image"
    if KIND_FORMATS.get(kind) in accepted:
        return f"truncated or corrupt image: {describe_kind(kind)} that cannot be read"
    found = "" if kind == "binary" else f"{describe_kind(kind)}, "
    return f"{found}not an image format accepted here ({', '.join(accepted)})"


def decode_picture(data: bytes, page: int | None = None) -> Image.Image:
    """Decode image file bytes, fully (the first frame of an animation, or ``page``).

    :func:`mnistcnn._io.decode_image`: only the decoders of
    :data:`mnistcnn._io.IMAGE_FORMATS` (the server's too), and Pillow's
    decompression-bomb guard with its warning level raised to an error: more
    than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (about 89 million by default)
    is refused before the pixels are decoded (``image is 20000x20000 px
    (400,000,000 pixels); the limit is 89,478,485 pixels: scale it down ...``), as
    are sizes :func:`check_size` refuses.

    Args:
        data: the encoded file.
        page: the frame to decode (a page of a multi-page TIFF, from 0); None: the first.

    Returns:
        A loaded Pillow image (any mode), at its first frame or ``page``.

    Raises:
        ImageInputError: empty, not an image (text, SVG, a format not accepted),
            truncated or corrupt, a decompression bomb, or a size refused by
            :func:`check_size`.
    """
    try:
        if not page:
            return _decode(data, check_size=check_size)
        img = open_image(data)
        try:
            img.seek(page)
        except (EOFError, OSError, ValueError) as exc:
            raise ImageInputError(f"cannot read page {page + 1}: {exc}") from None
        check_size(*img.size)
        return load_image(img)
    except ImageDecodeError as exc:
        if exc.reason == "empty":
            raise ImageInputError("an empty file (0 bytes)") from None
        if exc.reason == "bomb" and exc.size is not None:
            raise ImageInputError(
                f"{exc}: scale it down (a digit needs no more than a few hundred pixels a side)"
            ) from None
        if exc.reason == "bomb":
            raise ImageInputError(
                f"refused as a possible decompression bomb: {exc.detail} (the limit is "
                f"{bomb_limit():,} pixels): scale the picture down"
            ) from None
        if exc.reason == "format":
            raise ImageInputError(not_an_image(data)) from None
        raise ImageInputError(f"truncated or corrupt image: {exc.detail}") from None
