"""The JSON forms of a ``POST /v1/predict`` body (see ``docs/serve.md``).

``{"pixels": [[...28 numbers...] x 28]}`` (0..255, or 0..1 when no value is
above 1 and some are fractions: see :func:`pixels_array`),
``{"image_base64": "..."}`` (a data URL is accepted too), or
``{"images": [ {...}, ... ]}`` with one such object per image. Each problem
raises :class:`~mnistcnn.serve.inputs.InputError` with an HTTP status and a
message naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from mnistcnn.serve.inputs import InputError, ParsedRequest, RawInput

FIELD = 28  # side of the ``pixels`` form, in pixels
JSON_KEYS = ("pixels", "image_base64", "images")
_MAX_INT_DIGITS = 20  # longer JSON integers are read as +-inf (far outside 0..255 anyway)


def parse_json(body: bytes) -> ParsedRequest:
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
            f"JSON body must be an object with one of {', '.join(JSON_KEYS)}; got {json_type(doc)}",
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
        raise InputError(422, f"{where}: expected an object, got {json_type(obj)}")
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
        raise InputError(422, f"{where}: must be a base64 string, got {json_type(value)}")
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


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type (``null``, ``array``, ...), for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__
