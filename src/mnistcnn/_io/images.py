"""Image decoding: :data:`IMAGE_FORMATS`, the one allow-list of Pillow decoders that
user bytes may reach; :func:`open_image` (header only), :func:`load_image`
(pixels), :func:`decode_image` (both), :func:`upright` (EXIF orientation)."""

from __future__ import annotations

import contextlib
import functools
import io
import struct
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from mnistcnn._io.atomic import PathLike

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
        size: (width, height) of a ``"bomb"`` whose header could be read, else None;
            ``str()`` then says ``image is WxH px (N pixels); the limit is M pixels``.
    """

    def __init__(
        self, reason: str, message: str, detail: str = "", size: tuple[int, int] | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.detail = detail
        self.size = size


def bomb_limit() -> int:
    """Pixels (width x height) above which an image is refused as a possible decompression
    bomb: ``PIL.Image.MAX_IMAGE_PIXELS`` (89,478,485 by default; Pillow warns above it and
    raises above twice it; :func:`open_image` refuses both)."""
    return int(Image.MAX_IMAGE_PIXELS or 0)


def _bomb(exc: Exception, data: bytes, formats: tuple[str, ...]) -> ImageDecodeError:
    """The refusal of a too-large image, with its size (read from the header) when known:
    ``image is 20000x20000 px (400,000,000 pixels); the limit is 89,478,485 pixels``."""
    size = header_size(data, formats)
    if size is None:
        return ImageDecodeError("bomb", "a possible decompression bomb", str(exc))
    w, h = size
    message = (
        f"image is {w}x{h} px ({w * h:,} pixels); the limit is {bomb_limit():,} pixels "
        "(a larger picture may be a decompression bomb)"
    )
    return ImageDecodeError("bomb", message, str(exc), size)


def header_size(data: bytes, formats: tuple[str, ...] = IMAGE_FORMATS) -> tuple[int, int] | None:
    """(width, height) from the header of an image in ``formats``, without Pillow's
    decompression-bomb check (so it tells the size of an image :func:`open_image`
    refuses as too large); None when no decoder of ``formats`` reads the header.

    It does what ``PIL.Image.open`` does (each format's ``accept`` test on the first
    bytes, then its image class reads the header) minus the size check: no pixel is
    decoded.
    """
    prefix = data[:16]
    for fmt in accepted_formats(formats):
        factory, accept = Image.OPEN[fmt]
        if accept is not None and not accept(prefix):
            continue
        try:
            with factory(io.BytesIO(data), None) as img:  # type: ignore[arg-type]
                return int(img.size[0]), int(img.size[1])
        except (OSError, SyntaxError, ValueError, EOFError, struct.error):
            continue
    return None


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
        raise _bomb(exc, data, formats) from None
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
