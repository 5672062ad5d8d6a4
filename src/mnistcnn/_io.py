"""Low-level file I/O, each piece once: atomic writes, file sniffing, IDX headers, image decoding.

A leaf module: it imports only the standard library, NumPy and Pillow, so
every layer (data, engine, predict, serve, cli) can use it. Its errors are
plain (:class:`IdxFormatError`, :class:`ImageDecodeError`, both ``ValueError``)
and carry a ``reason`` code, so each caller words them for its own users
(the data layer with the file's path and advice, ``predict`` as an
``ImageInputError`` naming the file, the server as an HTTP 4xx).

* Atomic writes: :func:`atomic_write` (bytes, text, or a function writing to a
  binary file) and :func:`atomic_path` (a temporary path for writers that need
  one). The temporary file ``.<name>.<random>.tmp[<suffix>]`` is created in the
  destination's folder with mode 0666 less the umask (not ``mkstemp``'s 0600),
  fsynced, renamed over the destination with :func:`os.replace`, and the folder
  is fsynced; on any exception, Ctrl-C included, the temporary file is removed
  and a previous file at the destination is left as it was.
  :data:`TEMP_FILE_PATTERN` matches those names (stale-file clean-up).
* Sniffing: :func:`sniff` names what a file is from its first bytes;
  :func:`describe_kind` says it in words.
* IDX: :func:`is_idx_magic`, :func:`parse_idx_header` (magic, element type,
  number of dimensions, sizes, and the length they imply, all checked before
  anything is allocated) and :func:`idx_array`.
* Images: :data:`IMAGE_FORMATS`, the one allow-list of Pillow decoders that
  user bytes may reach; :func:`open_image` (header only), :func:`load_image`
  (pixels), :func:`decode_image` (both), :func:`upright` (EXIF orientation).
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import re
import secrets
import struct
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

PathLike = str | os.PathLike[str]

# --- atomic writes ------------------------------------------------------------------------

#: Names of the temporary files of atomic writes: ``.<name>.<id>.tmp[.<ext>]``.
TEMP_FILE_PATTERN = re.compile(r"^\..+\.tmp(\.[A-Za-z0-9]+)?$")


def is_temp_file_name(name: str) -> bool:
    """True for a name :func:`new_temp_file` makes: ``.a.html.1a2b3c4d.tmp``, ``.x.tmp.png``."""
    return TEMP_FILE_PATTERN.match(name) is not None


def new_temp_file(folder: PathLike, name: str, suffix: str = "") -> tuple[int, str]:
    """Create ``folder/.<name>.<8 hex digits>.tmp<suffix>``; return (its open fd, its path).

    The file is new (``O_EXCL``), opened write-only and close-on-exec, with the
    usual mode of a new file, 0666 less the umask (0644 under umask 022), unlike
    ``tempfile.mkstemp``'s 0600: the file it is renamed to reads like any other.

    Args:
        folder: an existing, writable folder (the destination's, for a rename).
        name: the destination's file name (the temporary name starts with it).
        suffix: appended after ``.tmp``, e.g. ``".png"``; letters and digits after a dot.

    Raises:
        OSError: the folder is missing or not writable; FileExistsError when
            100 random names were all taken.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = Path(folder) / f".{name}.{secrets.token_hex(4)}.tmp{suffix}"
        try:
            return os.open(tmp, flags, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder}: no free temporary name for {name}")


def fsync_dir(folder: PathLike) -> None:
    """Flush ``folder``'s entries (a rename in it) to disk; a no-op where that is impossible."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # a file system or platform that cannot fsync a folder
        pass
    finally:
        os.close(fd)


def _fsync_path(path: PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


Content = bytes | bytearray | memoryview | str | Callable[[BinaryIO], object]


def atomic_write(
    path: PathLike, content: Content, *, suffix: str = "", encoding: str = "utf-8"
) -> Path:
    """Write ``path`` all at once: a temporary file beside it, fsync, rename, fsync the folder.

    Args:
        path: the destination; its folder must exist. A previous file there is
            replaced only once the new one is complete.
        content: bytes; text (encoded with ``encoding``, newlines written as
            given, not translated); or a function called with the open binary
            temporary file (``torch.save``, ``Figure.savefig``, ``Image.save``...).
        suffix: appended to the temporary name after ``.tmp`` (``".png"``).
        encoding: for text ``content``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: the folder is missing or not writable, or the disk is full.
        Anything ``content`` (a function) raises. In every case, Ctrl-C
        included, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    fd, tmp = new_temp_file(path.parent, path.name, suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(content):
                content(fh)
            elif isinstance(content, str):
                fh.write(content.encode(encoding))
            else:
                fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


@contextlib.contextmanager
def atomic_path(path: PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield an empty temporary path beside ``path``; on a normal exit rename it to ``path``.

    For writers that need a path rather than a file object (copies, gunzip,
    a check of the written file before it gets its name). The temporary file
    is named and created as by :func:`new_temp_file`; on exit it is fsynced,
    renamed over ``path`` and the folder fsynced.

    Raises:
        OSError: as :func:`atomic_write`. If the ``with`` block raises
            (Ctrl-C included), the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    fd, name = new_temp_file(path.parent, path.name, suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


# --- sniffing -----------------------------------------------------------------------------

#: How many leading bytes :func:`sniff_file` reads (enough for every rule of :func:`sniff`).
SNIFF_BYTES = 4096

#: (leading bytes, kind), checked in order.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"%PDF", "pdf"),
    (b"%!PS", "postscript"),
    (b"\xc5\xd0\xd3\xc6", "postscript"),  # DOS EPS binary header
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"\x1f\x8b", "gzip"),
    (b"\x08\x01\x12", "protobuf"),  # ir_version field of an ONNX ModelProto
    (b"PK\x03\x04", "zip"),
    (b"\0\0\x01\0", "ico"),
)
#: ISO base media ``ftyp`` brands (bytes 8..12) of still images.
_AVIF_BRANDS = frozenset((b"avif", b"avis"))
_HEIC_BRANDS = frozenset((b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"))
_HTML_STARTS = ("<!doctype html", "<html", "<head", "<body", "<script")

#: Words for each kind :func:`sniff` returns (an article first, for "found ...").
KIND_WORDS: dict[str, str] = {
    "empty": "an empty file (0 bytes)",
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "gif": "a GIF image",
    "tiff": "a TIFF image",
    "webp": "a WebP image",
    "bmp": "a BMP image",
    "ico": "an ICO icon",
    "pnm": "a PNM (PBM/PGM/PPM) image",
    "avif": "an AVIF image",
    "heic": "a HEIC/HEIF image",
    "isobmff": "an MP4/QuickTime (ISO media) file",
    "pdf": "a PDF document",
    "postscript": "a PostScript/EPS file",
    "hdf5": "an HDF5 file",
    "gzip": "a gzip file",
    "protobuf": "a protobuf file",
    "zip": "a zip archive",
    "pickle": "a Python pickle",
    "idx": "an IDX file",
    "json": "JSON text",
    "svg": "an SVG (vector) image",
    "html": "an HTML page",
    "xml": "XML or HTML text",
    "text": "a text file",
    "binary": "binary data",
}


def sniff(head: bytes) -> str:
    """Name what a file is from its first bytes (pass at least :data:`SNIFF_BYTES` if there are).

    Returns one key of :data:`KIND_WORDS`: ``"empty"``; an image (``"png"``,
    ``"jpeg"``, ``"gif"``, ``"tiff"``, ``"webp"``, ``"bmp"``, ``"ico"``, ``"pnm"``,
    ``"avif"``, ``"heic"``; ``"isobmff"`` for other ``ftyp`` files); a document
    or container (``"pdf"``, ``"postscript"``, ``"hdf5"``, ``"gzip"``,
    ``"protobuf"``, ``"zip"`` (a torch checkpoint), ``"pickle"`` (protocol 2+));
    ``"idx"`` (:func:`is_idx_magic`); text (``"json"``, ``"svg"``, ``"html"``,
    ``"xml"``, ``"text"``); else ``"binary"``.

    An HTML page is recognised by its start or by ``<html`` in its first
    1024 bytes, even when it is not valid UTF-8 (a proxy's error page saved
    under a data file's name). Never raises.
    """
    if not head:
        return "empty"
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    if head[0] == 0x80:  # PROTO opcode: a pickle of protocol 2+ (torch's legacy format)
        return "pickle"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM" and head[6:10] == b"\0\0\0\0":  # the reserved bytes of a BMP header
        return "bmp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "avif" if brand in _AVIF_BRANDS else "heic" if brand in _HEIC_BRANDS else "isobmff"
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2] in b" \t\r\n":
        return "pnm"
    if is_idx_magic(head):
        return "idx"
    text = _text_start(head)
    if text is not None:
        start = text.lstrip("\ufeff \t\r\n")[:16].lower()
        if start.startswith(("{", "[")):
            return "json"
        if start.startswith("<svg") or (start.startswith("<?xml") and "<svg" in text.lower()):
            return "svg"
        if start.startswith(_HTML_STARTS):
            return "html"
    if b"<html" in head[:1024].lower():
        return "html"
    if text is None:
        return "binary"
    return "xml" if text.lstrip("\ufeff \t\r\n").startswith("<") else "text"


def _text_start(head: bytes) -> str | None:
    """``head`` decoded as UTF-8, or None for binary (a NUL byte, invalid UTF-8)."""
    if b"\0" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            return None
        return head[: exc.start].decode("utf-8")


def sniff_file(path: PathLike) -> tuple[str, bytes]:
    """(:func:`sniff` of the file's first :data:`SNIFF_BYTES` bytes, those bytes).

    Raises:
        OSError: the file cannot be opened or read.
    """
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    return sniff(head), head


def describe_kind(kind: str) -> str:
    """Words for a :func:`sniff` result, for messages: ``"a PNG image"``, ``"JSON text"``, ...

    Raises:
        KeyError: ``kind`` is not a key of :data:`KIND_WORDS`.
    """
    return KIND_WORDS[kind]


# --- IDX ----------------------------------------------------------------------------------

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


# --- images -------------------------------------------------------------------------------

#: The one allow-list of Pillow decoders that user bytes may reach, in ``predict`` and the
#: server alike. Raster formats only: no decoder that shells out (EPS runs Ghostscript) or
#: that pictures of digits do not come in. ``PPM`` also reads PBM/PGM/PNM; a camera's
#: multi-picture JPEG opens as ``MPO`` through ``JPEG``. AVIF needs Pillow >= 11.2 with
#: libavif; where it is missing it is simply not accepted.
IMAGE_FORMATS: tuple[str, ...] = (
    "PNG",
    "JPEG",
    "GIF",
    "BMP",
    "WEBP",
    "TIFF",
    "PPM",
    "ICO",
    "AVIF",
)


#: The Pillow format of each image kind :func:`sniff` names.
KIND_FORMATS: dict[str, str] = {
    "png": "PNG",
    "jpeg": "JPEG",
    "gif": "GIF",
    "bmp": "BMP",
    "webp": "WEBP",
    "tiff": "TIFF",
    "pnm": "PPM",
    "ico": "ICO",
    "avif": "AVIF",
    "heic": "HEIF",
    "pdf": "PDF",
    "postscript": "EPS",
}


@functools.cache
def _registered(formats: tuple[str, ...]) -> tuple[str, ...]:
    """The ``formats`` this Pillow has decoders for (Image.open fails on unknown names)."""
    Image.init()
    return tuple(f for f in formats if f in Image.OPEN)


def accepted_formats(formats: tuple[str, ...] = IMAGE_FORMATS) -> tuple[str, ...]:
    """The names of ``formats`` (default :data:`IMAGE_FORMATS`) that this Pillow can decode."""
    return _registered(tuple(formats))


class ImageDecodeError(ValueError):
    """Bytes that cannot be decoded as an accepted image. ``str()`` is a short reason.

    Attributes:
        reason: ``"empty"`` (0 bytes), ``"format"`` (not an image in the
            accepted formats: text, SVG, HEIC, EPS, random bytes...),
            ``"bomb"`` (more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``: a
            possible decompression bomb), ``"corrupt"`` (truncated or damaged data).
        detail: Pillow's own message, or "".
    """

    def __init__(self, reason: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.detail = detail


@contextlib.contextmanager
def _bomb_guard(strict: bool) -> Iterator[None]:
    if not strict:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _bytes_of(source: bytes | PathLike) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    return Path(source).read_bytes()


def open_image(
    source: bytes | PathLike,
    *,
    formats: tuple[str, ...] = IMAGE_FORMATS,
    strict_bombs: bool = True,
) -> Image.Image:
    """Identify an image and read its header only (no pixel is decoded yet).

    Args:
        source: the encoded file's bytes, or its path (read whole).
        formats: Pillow format names that may decode it (default: the allow-list).
        strict_bombs: Pillow's ``DecompressionBombWarning`` (more than
            ``PIL.Image.MAX_IMAGE_PIXELS`` pixels, about 89 million) is an error
            too, not only its ``DecompressionBombError`` (twice that). This
            uses :class:`warnings.catch_warnings`, which is not thread-safe:
            callers decoding in worker threads (the server, with its own pixel
            limits) pass False.

    Returns:
        The lazily opened Pillow image (``.size``, ``.format``, ``.mode`` known).

    Raises:
        ImageDecodeError: ``"empty"``, ``"format"``, ``"bomb"`` or ``"corrupt"``.
        OSError: ``source`` is a path that cannot be read.
    """
    data = _bytes_of(source)
    if not data:
        raise ImageDecodeError("empty", "an empty file (0 bytes)")
    try:
        with _bomb_guard(strict_bombs):
            return Image.open(io.BytesIO(data), formats=accepted_formats(formats))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError("bomb", "a possible decompression bomb", str(exc)) from None
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("format", "not an image in an accepted format", str(exc)) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageDecodeError("corrupt", "truncated or corrupt image", str(exc)) from None


def load_image(img: Image.Image, *, strict_bombs: bool = True) -> Image.Image:
    """Decode the pixels of an image from :func:`open_image` (the first frame of an animation).

    Raises:
        ImageDecodeError: ``"bomb"`` (a frame larger than the header said) or ``"corrupt"``.
    """
    try:
        with _bomb_guard(strict_bombs):
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError("bomb", "a possible decompression bomb", str(exc)) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageDecodeError("corrupt", "truncated or corrupt image", str(exc)) from None
    return img


def decode_image(
    source: bytes | PathLike,
    *,
    formats: tuple[str, ...] = IMAGE_FORMATS,
    check_size: Callable[[int, int], None] | None = None,
    strict_bombs: bool = True,
) -> Image.Image:
    """Open and fully decode an image: :func:`open_image`, ``check_size``, :func:`load_image`.

    Args:
        source: encoded bytes or a path.
        formats: allowed Pillow formats (default :data:`IMAGE_FORMATS`).
        check_size: called with (width, height) after the header is read and
            before any pixel is decoded; it raises to refuse the size.
        strict_bombs: see :func:`open_image`.

    Returns:
        A loaded Pillow image in its own mode (see :func:`upright` for EXIF).

    Raises:
        ImageDecodeError: as :func:`open_image` and :func:`load_image`.
        OSError: an unreadable path. Whatever ``check_size`` raises.
    """
    img = open_image(source, formats=formats, strict_bombs=strict_bombs)
    if check_size is not None:
        check_size(*img.size)
    return load_image(img, strict_bombs=strict_bombs)


def upright(img: Image.Image) -> Image.Image:
    """``img`` turned as its EXIF orientation tag says (the same image when it has none)."""
    return ImageOps.exif_transpose(img) or img
