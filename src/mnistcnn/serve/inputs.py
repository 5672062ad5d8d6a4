"""Turn the body of ``POST /v1/predict`` into images, within the configured limits.

Accepted forms (see ``docs/serve.md``):

* ``multipart/form-data``: one part named ``file`` (or several named ``files``);
  a part of any other name is refused;
* a raw body with an ``image/*`` content type;
* ``application/json``: ``{"pixels": [[...28 numbers...] x 28]}`` (0..255, or
  0..1 when no value is above 1 and some are fractions: see :func:`pixels_array`),
  ``{"image_base64": "..."}`` (a data URL is accepted too), or
  ``{"images": [ {...}, ... ]}`` with one such object per image.

Everything stays in memory: no upload is spooled to disk, no client string is
used as a path, and images are opened only by the decoders of
:data:`mnistcnn._io.IMAGE_FORMATS`, the allow-list ``predict`` uses too (no
format that shells out or unpickles). Each problem raises
:class:`InputError` with an HTTP status and a message naming it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from python_multipart.multipart import MultipartParser, parse_options_header

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

FIELD = 28  # side of the ``pixels`` form, in pixels
JSON_KEYS = ("pixels", "image_base64", "images")
_MAX_INT_DIGITS = 20  # longer JSON integers are read as +-inf (far outside 0..255 anyway)


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


def parse_body(content_type: str | None, body: bytes, max_images: int) -> ParsedRequest:
    """Split a request body into images according to its ``Content-Type``.

    Args:
        content_type: the raw ``Content-Type`` header (None if absent).
        body: the whole body (already bounded by the body-size limit).
        max_images: most images one request may carry.

    Raises:
        InputError: 400 (empty or malformed body), 413 (too many images),
            415 (unsupported content type), 422 (JSON of the wrong shape, a
            multipart part not named ``file``/``files``).
    """
    mime, params = parse_options_header(content_type or "")
    kind = mime.decode("latin-1").lower()
    if not body:
        raise InputError(
            400,
            "empty body: send the image as multipart/form-data (a part named 'file'), "
            "as the body with an image/* Content-Type, or as JSON with 'pixels' or "
            "'image_base64'",
        )
    if kind.startswith("image/"):
        parsed = ParsedRequest([RawInput("body", body)], batch=False)
    elif kind == "multipart/form-data":
        parsed = _parse_multipart(body, params.get(b"boundary"))
    elif kind == "application/json" or kind.endswith("+json"):
        parsed = _parse_json(body)
    else:
        shown = kind or "none"
        raise InputError(
            415,
            f"unsupported Content-Type {shown!r}: send multipart/form-data with a 'file' part, "
            "an image/* body (e.g. image/png), or application/json with 'pixels' or "
            "'image_base64'",
        )
    if len(parsed.inputs) > max_images:
        raise InputError(
            413, f"too many images in one request: {len(parsed.inputs)} (at most {max_images})"
        )
    return parsed


def _parse_multipart(body: bytes, boundary: bytes | None) -> ParsedRequest:
    """Parts named ``file``/``files``, read in memory; a part of another name is refused."""
    if not boundary:
        raise InputError(400, "multipart/form-data without a boundary parameter")
    parts = _multipart_parts(body, boundary)
    inputs: list[RawInput] = []
    batch = False
    for i, (name, filename, data) in enumerate(parts):
        if name not in ("file", "files"):
            shown = f"part {name!r}" if name is not None else f"part {i} (it has no name)"
            raise InputError(
                422,
                f"multipart {shown} is not accepted: send the image as a part named 'file' "
                "(several as parts named 'files'); no other parts are read",
            )
        batch = batch or name == "files"
        if not data:
            label = filename or name
            raise InputError(400, f"multipart part {label!r} is empty")
        inputs.append(RawInput(f"file {filename or name!r}", data, filename))
    if not inputs:
        raise InputError(
            422,
            "multipart body has no file: send the image as a part named 'file' "
            "(several as parts named 'files')",
        )
    return ParsedRequest(inputs, batch=batch or len(inputs) > 1)


def _multipart_parts(body: bytes, boundary: bytes) -> list[tuple[str | None, str | None, bytes]]:
    """(field name, file name, data) of each part of a multipart body."""
    parts: list[tuple[str | None, str | None, bytes]] = []
    state: dict[str, Any] = {"headers": {}, "field": b"", "value": b"", "data": []}

    def on_part_begin() -> None:
        state.update(headers={}, field=b"", value=b"", data=[])

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        state["data"].append(data[start:end])

    def on_part_end() -> None:
        _, opts = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name, filename = opts.get(b"name"), opts.get(b"filename")
        parts.append(
            (
                name.decode("utf-8", "replace") if name is not None else None,
                filename.decode("utf-8", "replace") if filename is not None else None,
                b"".join(state["data"]),
            )
        )

    callbacks: Any = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python-multipart raises several error types
        raise InputError(400, f"malformed multipart body: {exc}") from None
    return parts


def _parse_json(body: bytes) -> ParsedRequest:
    """``{"pixels": ...}``, ``{"image_base64": ...}`` or ``{"images": [...]}``."""
    if not body:
        raise InputError(400, "empty body: send a JSON object with 'pixels' or 'image_base64'")
    try:
        doc = json.loads(body, parse_int=_json_int)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InputError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InputError(
            422,
            f"JSON body must be an object with one of {', '.join(JSON_KEYS)}; "
            f"got {type(doc).__name__}",
        )
    if "images" in doc:
        _only_keys(doc, ("images",), "the request")
        images = doc["images"]
        if not isinstance(images, list) or not images:
            raise InputError(422, "'images' must be a non-empty list of objects")
        return ParsedRequest(
            [_json_image(item, f"images[{i}]") for i, item in enumerate(images)], batch=True
        )
    return ParsedRequest([_json_image(doc, "body")], batch=False)


def _json_int(text: str) -> int | float:
    """A JSON integer; one too long to be a gray level becomes +-inf (refused as out of range).

    Python's own parser would refuse over 4300 digits (a "not valid JSON" 400) and
    ``float()`` would overflow: either way the client's mistake is the value's range.
    """
    if len(text) > _MAX_INT_DIGITS:
        return float("-inf") if text.startswith("-") else float("inf")
    return int(text)


def _only_keys(obj: dict[str, Any], allowed: Sequence[str], where: str) -> None:
    extra = sorted(set(obj) - set(allowed))
    if extra:
        raise InputError(
            422,
            f"unknown field(s) in {where}: {', '.join(map(repr, extra))} "
            f"(expected {' or '.join(allowed)})",
        )


def _json_image(obj: Any, where: str) -> RawInput:
    """One JSON image object: exactly one of ``pixels`` / ``image_base64``."""
    if not isinstance(obj, dict):
        raise InputError(422, f"{where}: expected an object, got {type(obj).__name__}")
    _only_keys(obj, ("pixels", "image_base64"), where)
    if len(obj) != 1:
        raise InputError(422, f"{where}: give exactly one of 'pixels' or 'image_base64'")
    if "pixels" in obj:
        return RawInput(f"{where}.pixels", pixels_array(obj["pixels"], f"{where}.pixels"))
    return RawInput(f"{where}.image_base64", _b64(obj["image_base64"], f"{where}.image_base64"))


def pixels_array(value: Any, where: str = "pixels") -> np.ndarray:
    """A JSON 28x28 list of lists of numbers in 0..255 (or 0..1) -> uint8 (28, 28) (rounded).

    The range is closed and checked before rounding: -0 and 255.0 are accepted,
    255.4 and -0.1 are not; NaN, infinities and integers of any size outside it
    are refused.

    **0..1 pixels.** When no value is above 1 and some value is not a whole
    number (``0.5``, ``0.98``), the pixels are taken as 0..1 (as
    ``torchvision``'s ``ToTensor`` gives them) and multiplied by 255. Whole
    numbers (``0`` and ``1`` only) stay 0..255: a picture whose brightest pixel
    is 1 of 255 is (nearly) blank either way.

    Raises:
        InputError: 422 naming ``where`` for a ragged, non-numeric (strings,
            ``true``/``false``, null), wrongly shaped, non-finite or
            out-of-range array.
    """
    if isinstance(value, list) and all(isinstance(row, list) for row in value):
        kinds = {type(v) for row in value for v in row}
        if bool in kinds:
            raise InputError(
                422, f"{where}: true/false are not gray levels: give numbers in 0..255"
            )
        if not kinds <= {int, float}:
            raise InputError(
                422, f"{where}: must be {FIELD} lists of {FIELD} numbers (ragged or not numeric)"
            )
    out_of_range = f"{where}: values must be finite numbers in 0..255"
    try:
        arr = np.asarray(value, dtype=np.float64)
    except OverflowError:  # an int beyond float64 (~1.8e308): far outside 0..255
        raise InputError(422, out_of_range) from None
    except (ValueError, TypeError):
        raise InputError(
            422, f"{where}: must be {FIELD} lists of {FIELD} numbers (ragged or not numeric)"
        ) from None
    if arr.shape != (FIELD, FIELD):
        raise InputError(
            422, f"{where}: must be {FIELD}x{FIELD} (rows x columns), got shape {list(arr.shape)}"
        )
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255:
        raise InputError(422, out_of_range)
    if arr.max() <= 1 and not np.array_equal(arr, np.rint(arr)):
        arr = arr * 255.0  # 0..1 pixels (see above)
    return np.rint(arr).astype(np.uint8)


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise InputError(422, f"{where}: must be a base64 string, got {type(value).__name__}")
    text = value.strip()
    if text.startswith("data:"):
        head, sep, text = text.partition(",")
        if not sep or not head.endswith(";base64"):
            raise InputError(400, f"{where}: a data URL must be 'data:<type>;base64,<data>'")
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(400, f"{where}: not valid base64: {exc}") from None
    if not data:
        raise InputError(400, f"{where}: empty image")
    return data


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


def decode_image(raw: RawInput, max_side: int, max_pixels: int) -> Image.Image | np.ndarray:
    """Open one image as a decoded Pillow image (arrays pass through unchanged).

    :func:`decode_images` for a request of one image: the header is read and
    the dimensions checked (``max_side`` per side, ``max_pixels`` width * height)
    before any pixel is decoded. Animated images give their first frame.

    Raises:
        InputError: 422 when the bytes are not an image in :data:`IMAGE_FORMATS`
            or are truncated; 413 when the image is larger than the limits.
    """
    return decode_images([raw], max_side, max_pixels)[0]


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
        raise InputError(
            413,
            f"{raw.name}: image is {w}x{h} px; the limit is {max_side} px per side "
            f"and {max_pixels:,} px per request",
        )
    return img


def _what_instead(data: bytes) -> str:
    """``": <what it is and what to do>"`` for a HEIC/HEIF picture or a byte-swapped
    IDX file (:func:`mnistcnn.predict.inputs.not_an_image`), else ``""``."""
    from mnistcnn._io import is_byteswapped_idx
    from mnistcnn.predict.inputs import not_an_image

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
    from mnistcnn.predict.inputs import tiff_pages

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
