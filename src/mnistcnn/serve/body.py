"""Turn the body of ``POST /v1/predict`` into its images (at most ``max_images``).

Accepted forms (see ``docs/serve.md``):

* ``multipart/form-data``: one part named ``file`` (or several named ``files``);
  a part of any other name is refused;
* a raw body with an ``image/*`` content type;
* ``application/json``: ``{"pixels": [[...28 numbers...] x 28]}`` (0..255, or
  0..1 when no value is above 1 and some are fractions: see
  :func:`~mnistcnn.serve.json_body.pixels_array`),
  ``{"image_base64": "..."}`` (a data URL is accepted too), or
  ``{"images": [ {...}, ... ]}`` with one such object per image.

Everything stays in memory: no upload is spooled to disk and no client string
is used as a path. The JSON forms are read by :mod:`mnistcnn.serve.json_body`;
the images are decoded by :func:`mnistcnn.serve.inputs.decode_images`. Each
problem raises :class:`~mnistcnn.serve.inputs.InputError` with an HTTP status
and a message naming it.
"""

from __future__ import annotations

from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header

from mnistcnn.serve.inputs import InputError, ParsedRequest, RawInput
from mnistcnn.serve.json_body import parse_json


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
        parsed = parse_json(body)
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
    """(field name, file name, data) of each part of a multipart body.

    Raises:
        InputError: 400 when the body is malformed or ends before its closing
            boundary ``--BOUNDARY--`` (a part cut off, or the last line missing).
    """
    parts: list[tuple[str | None, str | None, bytes]] = []
    state: dict[str, Any] = {"headers": {}, "field": b"", "value": b"", "data": [], "end": False}

    def on_part_begin() -> None:
        state.update(headers={}, field=b"", value=b"", data=[])

    def on_end() -> None:
        state["end"] = True

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
        "on_end": on_end,
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python-multipart raises several error types
        raise InputError(400, f"malformed multipart body: {exc}") from None
    if not state["end"]:  # cut off, or the client never wrote the last boundary
        closing = "--" + boundary.decode("latin-1") + "--"
        where = f" (after {len(parts)} complete part(s))" if parts else ""
        raise InputError(
            400,
            f"multipart body ends before its closing boundary {closing!r}{where}: "
            "the upload was cut off, or the client did not finish the body",
        )
    return parts
