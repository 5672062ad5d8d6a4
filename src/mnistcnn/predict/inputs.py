"""What ``mnistcnn predict`` reads: files, folders, globs, stdin and IDX files; safe decoding.

:func:`expand_inputs` turns command-line arguments into :class:`InputItem`
objects, one per picture. Nothing is decoded yet, and a bad argument becomes
an item that carries its error, so one bad file never stops a batch:

* an image file in one of :data:`mnistcnn._io.IMAGE_FORMATS` (PNG, JPEG, GIF,
  BMP, WebP, TIFF, PBM/PGM/PPM, ICO, AVIF: the formats the server accepts too);
* a folder: the image files in it and its sub-folders (by extension, sorted);
* a glob pattern (``"scans/*.png"``, ``"**/*.jpg"``), sorted;
* ``-``: the bytes of standard input;
* an IDX file (MNIST's format; plain or ``.gz``, found by its magic number,
  not its name): one item per 28x28 image, named ``file#index``. Those images
  are already MNIST-style and go to the model as they are.

:func:`decode_image` opens encoded bytes with :func:`mnistcnn._io.decode_image`
(the allow-list of decoders) and turns every way it can fail into an
:class:`ImageInputError` with a message for people: an empty file, a text or
SVG file, another format, a truncated file, a decompression bomb (Pillow's
``DecompressionBombWarning`` is an error here too) or a degenerate size.
"""

from __future__ import annotations

import glob
import gzip
import io
import os
import struct
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from mnistcnn import _io
from mnistcnn._io import IdxFormatError, ImageDecodeError, idx_array, parse_idx_header, upright
from mnistcnn.errors import MnistcnnError
from mnistcnn.predict.preprocess import to_grayscale

#: File extensions a folder is searched for (lower case). Named files are never filtered.
IMAGE_SUFFIXES = frozenset(
    (".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".gif", ".tif", ".tiff", ".webp")
    + (".pgm", ".ppm", ".pbm", ".pnm", ".ico", ".avif")
)
_TIFF_SUFFIXES = frozenset((".tif", ".tiff"))
#: A picture needs at least this many pixels on its shorter side ...
MIN_SIDE = 8
#: ... and at most this ratio between its sides (a digit is about 1:1 to 1:2).
MAX_ASPECT = 20.0
#: Largest IDX payload read (after gunzip): MNIST's training images are 47 MB.
MAX_IDX_BYTES = 512 * 2**20
#: Longest side of the copy of a picture kept for display (``keep_previews``).
PREVIEW_SIZE = 256

#: What :meth:`~mnistcnn.predict.Predictor.predict` accepts.
Input = str | os.PathLike[str] | bytes | np.ndarray | Image.Image


class ImageInputError(MnistcnnError, ValueError):
    """An input cannot be used as a picture; the message says why, for people."""


@dataclass(frozen=True)
class InputItem:
    """One picture to predict, not yet decoded.

    Exactly one of ``path``, ``data``, ``prepared`` is set, or ``error``.

    Attributes:
        name: how the input is reported: the path as given, ``-`` for stdin,
            ``file#12`` for image 12 of an IDX file.
        path: an image file, read when it is predicted.
        data: encoded image bytes (stdin).
        prepared: uint8 (28, 28), light ink on black: an IDX image, used as is.
        error: why this input cannot be predicted (a missing file, a bad IDX file).
        page: the page (frame) of a multi-page TIFF to predict, from 0; None:
            the first page of any picture.
    """

    name: str
    path: Path | None = None
    data: bytes | None = None
    prepared: np.ndarray | None = None
    error: str | None = None
    page: int | None = None


#: Predict's words for :class:`~mnistcnn._io.IdxFormatError` reasons (others: its own text).
_IDX_WORDS = {"magic": "not an IDX file (no IDX magic number)", "header": "a truncated IDX header"}


def is_idx(head: bytes) -> bool:
    """True when ``head`` starts with an IDX magic number (:func:`mnistcnn._io.is_idx_magic`)."""
    return _io.is_idx_magic(head)


def _gz_head(data: bytes, n: int = 16) -> bytes:
    """The first ``n`` decompressed bytes of gzip ``data`` (b"" when it is not valid gzip)."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[: 1 << 16], n)
    except zlib.error:
        return b""


def _idx_header(head: bytes) -> _io.IdxHeader:
    """:func:`mnistcnn._io.parse_idx_header` (no length check), errors as ImageInputError."""
    try:
        return parse_idx_header(head)
    except IdxFormatError as exc:
        raise ImageInputError(_IDX_WORDS.get(exc.reason, str(exc))) from None


def _gunzip(data: bytes) -> bytes:
    """Decompress gzipped IDX ``data``, reading no more than its header announces (+1 byte).

    Raises:
        ImageInputError: damaged gzip, or a header announcing more than MAX_IDX_BYTES.
    """
    need = _idx_header(_gz_head(data, 4 + 4 * 255)).total_bytes
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


def _page_items(
    name: str, *, path: Path | None = None, data: bytes | None = None
) -> list[InputItem]:
    """One item per page of a multi-page TIFF (``name#page1``, ``name#page2``, ...), else one."""
    one = [InputItem(name, path=path, data=data)]
    try:
        with warnings.catch_warnings():  # only the header is read; decoding checks bombs
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            source = io.BytesIO(data) if data is not None else path
            with Image.open(source, formats=["TIFF"]) as img:  # type: ignore[arg-type]
                pages = tiff_pages(img)
    except Exception:  # not readable as a TIFF after all: decoding will say why
        return one
    if len(pages) <= 1:
        return one
    return [InputItem(f"{name}#page{i + 1}", path=path, data=data, page=i) for i in pages]


def items_from_bytes(name: str, data: bytes) -> list[InputItem]:
    """Items of one file's bytes: one per image of an IDX file (``name#i``), one per page
    of a multi-page TIFF (``name#page1``, ...), else one."""
    kind = _io.sniff(data[:4])
    if kind == "tiff":
        return _page_items(name, data=data)
    gz = kind == "gzip"
    if not is_idx(_gz_head(data) if gz else data[:4]):
        return [InputItem(name, data=data)]
    try:
        images = idx_images(_gunzip(data) if gz else data)
    except ImageInputError as exc:
        return [InputItem(name, error=str(exc))]
    return [InputItem(f"{name}#{i}", prepared=images[i]) for i in range(len(images))]


def _file_items(path: Path, name: str) -> list[InputItem]:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            kind = _io.sniff(head)
            if kind in ("gzip", "idx"):
                return items_from_bytes(name, head + f.read())
    except OSError as exc:
        return [InputItem(name, error=f"cannot read: {exc.strerror or exc}")]
    if kind == "tiff":
        return _page_items(name, path=path)
    return [InputItem(name, path=path)]


def _folder_items(folder: Path) -> list[InputItem]:
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    return [
        it
        for p in files
        for it in (
            _page_items(str(p), path=p)
            if p.suffix.lower() in _TIFF_SUFFIXES
            else [InputItem(str(p), path=p)]
        )
    ]


def expand_inputs(specs: list[str], stdin: BinaryIO | None = None) -> list[InputItem]:
    """Command-line inputs -> one :class:`InputItem` per picture, in the order given.

    Args:
        specs: files, folders, glob patterns, ``-`` (stdin) or IDX files (see
            the module docstring). A folder gives its image files only (by
            extension); IDX files must be named (or matched by a glob).
        stdin: binary stream ``-`` reads (``sys.stdin.buffer`` in the CLI).

    Returns:
        Items in argument order (folder and glob matches sorted). An argument
        that matches nothing gives one item with ``error`` set; an empty folder
        gives none.
    """
    items: list[InputItem] = []
    for spec in specs:
        if spec == "-":
            data = stdin.read() if stdin is not None else b""
            items += items_from_bytes("-", data)
            continue
        path = Path(spec)
        if path.is_dir():
            items += _folder_items(path)
        elif path.exists():
            items += _file_items(path, spec)
        elif glob.has_magic(spec):
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                items.append(InputItem(spec, error="no file matches this pattern"))
            for m in matches:
                mp = Path(m)
                items += _folder_items(mp) if mp.is_dir() else _file_items(mp, m)
        else:
            items.append(InputItem(spec, error="no such file or folder"))
    return items


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
    kind = _io.sniff(data[: _io.SNIFF_BYTES])
    accepted = _io.accepted_formats()
    if kind == "svg":
        return "an SVG (vector) file, which Pillow cannot read; export it as PNG"
    if kind == "heic":
        return f"a HEIC/HEIF image (a phone camera's format), which is not read here: {HEIC_ADVICE}"
    gz = _gz_head(data) if kind == "gzip" else b""
    if _io.is_byteswapped_idx(data[:4]) or _io.is_byteswapped_idx(gz):
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
    if _io.KIND_FORMATS.get(kind) in accepted:
        return f"truncated or corrupt image: {_io.describe_kind(kind)} that cannot be read"
    found = "" if kind == "binary" else f"{_io.describe_kind(kind)}, "
    return f"{found}not an image format accepted here ({', '.join(accepted)})"


def decode_image(data: bytes, page: int | None = None) -> Image.Image:
    """Decode image file bytes, fully (the first frame of an animation, or ``page``).

    :func:`mnistcnn._io.decode_image`: only the decoders of
    :data:`mnistcnn._io.IMAGE_FORMATS` (the server's too), and Pillow's
    decompression-bomb guard with its warning level raised to an error: more
    than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (about 89 million by default)
    is refused before the pixels are decoded, as are sizes :func:`check_size` refuses.

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
            return _io.decode_image(data, check_size=check_size)
        img = _io.open_image(data)
        try:
            img.seek(page)
        except (EOFError, OSError, ValueError) as exc:
            raise ImageInputError(f"cannot read page {page + 1}: {exc}") from None
        check_size(*img.size)
        return _io.load_image(img)
    except ImageDecodeError as exc:
        if exc.reason == "empty":
            raise ImageInputError("an empty file (0 bytes)") from None
        if exc.reason == "bomb":
            raise ImageInputError(
                f"refused as a possible decompression bomb: {exc.detail} "
                "(raise PIL.Image.MAX_IMAGE_PIXELS if the picture is genuine)"
            ) from None
        if exc.reason == "format":
            raise ImageInputError(not_an_image(data)) from None
        raise ImageInputError(f"truncated or corrupt image: {exc.detail}") from None


def preview_copy(img: Image.Image) -> Image.Image:
    """A copy of ``img`` for display: RGB, RGBA or L, upright, longest side <= PREVIEW_SIZE px.

    Every mode Pillow decodes becomes one of the three modes a plot shows
    (matplotlib draws (H, W), (H, W, 3) and (H, W, 4) arrays, never two
    channels): grayscale with alpha (``LA``, ``La``, ``PA``) and palette
    transparency become RGBA; 1-bit, 16-bit, 32-bit and float pictures become L
    with the same scaling :func:`~mnistcnn.predict.preprocess.to_grayscale`
    uses; CMYK, YCbCr, LAB and HSV become RGB.
    """
    img = upright(img)
    mode = img.mode
    if mode in ("LA", "La", "PA", "RGBa") or (mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
    elif mode == "P":
        img = img.convert("RGB")
    elif mode not in ("RGB", "RGBA", "L"):
        if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            img = img.convert("RGB")
        else:
            img = Image.fromarray(np.round(to_grayscale(img) * 255).astype(np.uint8), "L")
    img = img.copy()
    img.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE), Image.Resampling.LANCZOS)
    return img


def python_inputs(inputs: Iterable[Input]) -> list[tuple[str, InputItem | Image.Image]]:
    """Python inputs -> (name, item or Pillow image); paths of folders and IDX files expand."""
    out: list[tuple[str, InputItem | Image.Image]] = []
    for i, x in enumerate(inputs):
        if isinstance(x, Image.Image):
            out.append((getattr(x, "filename", "") or f"<image {i}>", x))
        elif isinstance(x, np.ndarray):
            name = f"<array {i}>"
            prepared = dataset_format(x)
            if prepared is not None:  # already what the model takes: no preparation
                out.append((name, InputItem(name, prepared=prepared)))
                continue
            try:
                out.append((name, array_to_image(x)))
            except ValueError as exc:
                out.append((name, InputItem(name, error=str(exc))))
        elif isinstance(x, (bytes, bytearray)):  # always one picture (1:1 for servers)
            out.append((f"<bytes {i}>", InputItem(f"<bytes {i}>", data=bytes(x))))
        elif isinstance(x, (str, os.PathLike)):
            out += [(it.name, it) for it in expand_inputs([os.fspath(x)])]
        else:
            error = f"unsupported input type {type(x).__name__}"
            out.append((f"<input {i}>", InputItem(f"<input {i}>", error=error)))
    return out


#: The mean of a dataset-format image's outer frame of pixels stays under this
#: (0..255): the datasets store light ink on a black background.
DARK_FRAME_MEAN = 32.0

#: Values this far outside an array's range (as a fraction of its top) are
#: rounding (a resize's overshoot) and are clipped; further out, refused.
RANGE_SLACK = 0.01


def array_range(a: np.ndarray) -> float:
    """The top of the value range of picture array ``a`` (its white), by the documented rule.

    * bool: True is white (1).
    * uint8: 0..255. uint16: 0..65535 (16-bit pictures).
    * other integer types (int8..int64, uint32, uint64): 0..255 when no
      value is above 255, else 0..65535.
    * float: 0..1 when no value is above 1, else 0..255 (so ``img / 255``
      and ``img.astype(float)`` both work).

    Raises:
        ValueError: NaN or infinite values, negative values, or values above
            the largest range of the type (65535 for integers, 255 for
            floats); the message says what range was expected and what was found.
    """
    if a.dtype == bool:
        return 1.0
    if a.dtype == np.uint8:
        return 255.0
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(
            f"an image array must hold numbers (uint8, uint16, other integers, float or "
            f"bool), got dtype {a.dtype}"
        )
    if a.size == 0:
        raise ValueError(f"an empty image array (shape {a.shape})")
    is_float = np.issubdtype(a.dtype, np.floating)
    if is_float and not np.isfinite(a).all():
        raise ValueError("the image array holds NaN or infinite values; give finite numbers")
    lo, hi = float(a.min()), float(a.max())
    if a.dtype == np.uint16:
        top = 65535.0
    elif is_float:
        top = 1.0 if hi <= 1.0 else 255.0
    else:
        top = 255.0 if hi <= 255 else 65535.0
    slack = RANGE_SLACK * top if is_float else 0.0
    if lo < -slack or hi > top + slack:
        expected = (
            "0..1 or 0..255 (floats: 0..1 when no value is above 1, else 0..255)"
            if is_float
            else "0..255 or 0..65535"
        )
        raise ValueError(
            f"{a.dtype} image values span {lo:g}..{hi:g}; expected {expected}: "
            "rescale the array into one of these ranges"
        )
    return top


def to_unit(a: np.ndarray) -> np.ndarray:
    """Picture array ``a`` as float32 in [0, 1], scaled by :func:`array_range` (0 is black)."""
    top = array_range(a)
    return np.clip(np.asarray(a, np.float64) / top, 0.0, 1.0).astype(np.float32)


def dataset_format(array: np.ndarray) -> np.ndarray | None:
    """``array`` as uint8 (28, 28) if it is already an image in the datasets' own format.

    That is: 28x28 (or 1x28x28), of any numeric type read by the rule of
    :func:`array_range` (uint8 0..255, float 0..1 or 0..255, ...), light ink
    on a dark background (the mean of the outer one-pixel frame under
    :data:`DARK_FRAME_MEAN`), as torchvision's MNIST-style datasets give
    images. Such an image is given to the model unchanged, so predicting a
    dataset's own test images agrees with evaluating on them. Anything else
    (other sizes, dark ink on paper, RGB, values out of range) returns None
    and is prepared as a picture.
    """
    a = np.asarray(array)
    if a.shape == (1, 28, 28):
        a = a[0]
    if a.shape != (28, 28):
        return None
    if a.dtype == np.uint8:
        img = a
    else:
        try:
            img = np.round(to_unit(a) * 255.0).astype(np.uint8)
        except ValueError:
            return None
    frame = np.concatenate([img[0], img[-1], img[1:-1, 0], img[1:-1, -1]])
    if frame.mean() >= DARK_FRAME_MEAN or img.max() <= frame.mean():
        return None
    return np.ascontiguousarray(img)


def array_to_image(array: np.ndarray) -> Image.Image:
    """A picture given as an array -> a Pillow image.

    Args:
        array: (H, W) grayscale (also (H, W, 1) and (1, H, W)), (H, W, 3) RGB
            or (H, W, 4) RGBA, of any type :func:`array_range` reads: uint8
            (0..255), uint16 (0..65535), other integers (0..255, or 0..65535
            when a value is above 255), bool (True is white) or float (0..1,
            or 0..255 when a value is above 1).

    Returns:
        Grayscale: an ``F`` image with values in 0..1 (16-bit precision kept);
        colour: an 8-bit ``RGB`` or ``RGBA`` image.

    Raises:
        ValueError: another shape or type, or values outside the ranges above
            (the message says which range was expected and what was found).
    """
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    elif a.ndim == 3 and a.shape[0] == 1 and a.shape[2] not in (3, 4):
        a = a[0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise ValueError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    unit = to_unit(a)
    if unit.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(unit), "F")
    return Image.fromarray(np.ascontiguousarray(np.round(unit * 255).astype(np.uint8)))
