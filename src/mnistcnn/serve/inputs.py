"""The images of a ``POST /v1/predict`` request, and their decoding within the limits.

:class:`RawInput` is one image as the client sent it (encoded bytes or a
``pixels`` array), :class:`ParsedRequest` the images of one request (how a
body becomes one: :mod:`mnistcnn.serve.body`). :func:`decode_images` opens
them within the request's pixel budget, every header read before any pixel is
decoded. Images are opened only by the decoders of
:data:`mnistcnn._io.IMAGE_FORMATS`, the allow-list ``predict`` uses too (no
format that shells out or unpickles). Each problem raises :class:`InputError`
with an HTTP status and a message naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mnistcnn._io import IMAGE_FORMATS as IMAGE_FORMATS  # re-exported: the shared allow-list
from mnistcnn._io import (
    SNIFF_BYTES,
    ImageDecodeError,
    accepted_formats,
    load_image,
    open_image,
    sniff,
)
from mnistcnn.errors import MnistcnnError


class InputError(MnistcnnError):
    """A request the server cannot use: ``status`` is the HTTP status, ``message`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class RawInput:
    """One image as the client sent it: encoded ``bytes`` or a uint8 (28, 28) array.

    ``name`` says where it came from in the request (for error messages);
    ``filename`` is the multipart file name, if any (echoed as ``path``).
    """

    name: str
    data: bytes | np.ndarray
    filename: str | None = None


@dataclass(frozen=True)
class ParsedRequest:
    """The images of one request and whether the client used a batch form."""

    inputs: list[RawInput]
    batch: bool


def decode_images(
    inputs: Sequence[RawInput], max_side: int, max_pixels: int
) -> list[Image.Image | np.ndarray]:
    """Decode every image of one request, within the request's pixel budget.

    All headers are read first (Pillow opens lazily): each image's sides are
    checked against ``max_side``, and the sum of width * height over the
    request's images against ``max_pixels``, before any pixel is decoded. So
    a small body of highly compressible images (16 PNGs of 6000x6000 in 64 KB
    each) is refused instead of decoded into gigabytes. A ``pixels`` array
    counts its 28 * 28.

    Args:
        inputs: the images of one request, in order.
        max_side: largest width or height of any image, in pixels.
        max_pixels: largest sum of width * height over the request's images.

    Returns:
        One decoded Pillow image (or the uint8 (28, 28) array) per input, in order.

    Raises:
        InputError: 422 when some bytes are not an image in :data:`IMAGE_FORMATS`,
            are truncated, or have no pixels; 413 when an image has a side over
            ``max_side`` or the images have more than ``max_pixels`` in all.
    """
    opened = [_open_image(raw, max_side, max_pixels) for raw in inputs]
    total = sum(_pixel_count(img) for img in opened)
    if total > max_pixels:
        sizes = ", ".join(_size_text(img) for img in opened[:4])
        more = ", ..." if len(opened) > 4 else ""
        raise InputError(
            413,
            f"the request's images have {total:,} px in all ({sizes}{more}); "
            f"the limit is {max_pixels:,} px per request: send fewer or smaller images",
        )
    return [_load(raw, img) for raw, img in zip(inputs, opened)]


def _pixel_count(img: Image.Image | np.ndarray) -> int:
    if isinstance(img, np.ndarray):
        return int(img.size)
    return int(img.size[0]) * int(img.size[1])


def _size_text(img: Image.Image | np.ndarray) -> str:
    w, h = (img.shape[1], img.shape[0]) if isinstance(img, np.ndarray) else img.size
    return f"{w}x{h}"


def _open_image(raw: RawInput, max_side: int, max_pixels: int) -> Image.Image | np.ndarray:
    """The image's header only (no pixel decoded), its size checked against the limits."""
    if isinstance(raw.data, np.ndarray):
        return raw.data
    try:
        # strict_bombs=False: decoded in worker threads (warnings filters are
        # process-wide), and the limits below are the server's own
        img = open_image(raw.data, strict_bombs=False)
    except ImageDecodeError as exc:
        if exc.reason == "bomb" and exc.size is not None:  # past Pillow's own limit too
            w, h = exc.size
            raise InputError(413, _too_large(raw, w, h, max_side, max_pixels)) from None
        if exc.reason == "bomb":
            raise InputError(413, f"{raw.name}: {exc.detail}") from None
        raise InputError(
            422,
            f"{raw.name}: not an image that can be decoded "
            f"(accepted formats: {', '.join(accepted_formats())}){_what_instead(raw.data)}",
        ) from None
    w, h = img.size
    if w < 1 or h < 1:
        raise InputError(422, f"{raw.name}: image has no pixels ({w}x{h})")
    if max(w, h) > max_side or w * h > max_pixels:
        raise InputError(413, _too_large(raw, w, h, max_side, max_pixels))
    return img


def _too_large(raw: RawInput, w: int, h: int, max_side: int, max_pixels: int) -> str:
    """``file 'x.png': image is 20000x20000 px; the limit is 8192 px per side and ...``."""
    return (
        f"{raw.name}: image is {w}x{h} px; the limit is {max_side} px per side "
        f"and {max_pixels:,} px per request"
    )


def _what_instead(data: bytes) -> str:
    """``": <what it is and what to do>"`` for a HEIC/HEIF picture or a byte-swapped
    IDX file (:func:`mnistcnn._io.not_an_image`), else ``""``."""
    from mnistcnn._io import is_byteswapped_idx, not_an_image

    if sniff(data[:SNIFF_BYTES]) == "heic" or is_byteswapped_idx(data[:4]):
        return f": {not_an_image(data)}"
    return ""


def _load(raw: RawInput, img: Image.Image | np.ndarray) -> Image.Image | np.ndarray:
    """Decode the pixels of an image opened by :func:`_open_image`.

    Raises:
        InputError: 422 for truncated or corrupt data, and for a TIFF of more
            than one page (each upload is one picture: send the pages as
            separate images, e.g. several ``files`` parts).
    """
    if isinstance(img, np.ndarray):
        return img
    from mnistcnn._io import tiff_pages

    pages = len(tiff_pages(img))
    if pages > 1:
        raise InputError(
            422,
            f"{raw.name}: a TIFF of {pages} pages; each image sent is one picture: send "
            "each page as its own image (several 'files' parts, or a JSON 'images' list)",
        )
    try:
        return load_image(img, strict_bombs=False)
    except ImageDecodeError as exc:
        msg = f"{raw.name}: image data is truncated or corrupt: {exc.detail}"
        raise InputError(422, msg) from None
