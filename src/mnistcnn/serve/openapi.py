"""OpenAPI descriptions of the request and response bodies (shown at ``/docs``).

The predict route reads its body itself (several content types, limits checked
before parsing), so its schema is written out here rather than inferred.
"""

from __future__ import annotations

from typing import Any

_BINARY = {"type": "string", "format": "binary"}
_PIXELS = {
    "type": "array",
    "minItems": 28,
    "maxItems": 28,
    "items": {
        "type": "array",
        "minItems": 28,
        "maxItems": 28,
        "items": {"type": "number", "minimum": 0, "maximum": 255},
    },
    "description": "28 rows of 28 gray levels, 0..255 (either polarity).",
}
_B64 = {"type": "string", "description": "An encoded image (PNG, JPEG, ...), or a data: URL."}
_ONE = {
    "oneOf": [
        {"type": "object", "properties": {"pixels": _PIXELS}, "required": ["pixels"]},
        {"type": "object", "properties": {"image_base64": _B64}, "required": ["image_base64"]},
    ]
}

PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One image (multipart part `file`, raw image body, JSON `pixels` or "
        "`image_base64`) or a batch (parts named `files`, or JSON `images`).",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": _BINARY, "files": {"type": "array", "items": _BINARY}},
                }
            },
            "image/png": {"schema": _BINARY},
            "image/jpeg": {"schema": _BINARY},
            "application/json": {
                "schema": {
                    "oneOf": [
                        *_ONE["oneOf"],
                        {
                            "type": "object",
                            "properties": {"images": {"type": "array", "items": _ONE}},
                            "required": ["images"],
                        },
                    ]
                }
            },
        },
    }
}

_TOPK = {
    "type": "object",
    "properties": {"label": {"type": "string"}, "probability": {"type": "number"}},
}
_PREDICTION = {
    "type": "object",
    "properties": {
        "path": {"type": ["string", "null"], "description": "Upload's file name, if any."},
        "label": {"type": ["string", "null"], "description": "Most probable class."},
        "probability": {"type": "number", "description": "Its probability, 0..1."},
        "topk": {"type": "array", "items": _TOPK},
        "unsure": {"type": "boolean"},
        "error": {"type": ["string", "null"]},
        "input": {
            "type": "array",
            "description": "Only with ?return_input=true: the 28x28 uint8 image the model saw.",
            "items": {"type": "array", "items": {"type": "integer"}},
        },
    },
}
_DETAIL = {
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"detail": {"type": "string"}}}
        }
    }
}

PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "One prediction per image, in order.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "model": {"type": "string"},
                        "predictions": {"type": "array", "items": _PREDICTION},
                    },
                }
            }
        },
    },
    400: {"description": "Empty or malformed body (JSON, base64, multipart).", **_DETAIL},
    413: {"description": "Body, image dimensions or image count over the limit.", **_DETAIL},
    415: {"description": "Unsupported Content-Type.", **_DETAIL},
    422: {"description": "Not an image, or JSON of the wrong shape.", **_DETAIL},
    503: {"description": "Overloaded, or past the per-request timeout.", **_DETAIL},
}

_BOX = {
    "type": "array",
    "items": {"type": "integer"},
    "minItems": 4,
    "maxItems": 4,
    "description": "[left, top, right, bottom] in the picture's pixels (right, bottom exclusive).",
}
_DIGIT = {
    "type": "object",
    "properties": {
        "box": _BOX,
        "label": {"type": ["string", "null"], "description": "The digit; null when unsure."},
        "probability": {"type": "number", "description": "Its probability, 0..1."},
        "unsure": {"type": "boolean"},
        "line": {"type": "integer", "description": "Its line, from 0 (top)."},
        "topk": {"type": "array", "items": _TOPK},
        "input": {
            "type": "array",
            "description": "Only with ?return_input=true: the 28x28 uint8 image the model saw.",
            "items": {"type": "array", "items": {"type": "integer"}},
        },
    },
}
_READING = {
    "type": "object",
    "properties": {
        "path": {"type": ["string", "null"], "description": "Upload's file name, if any."},
        "text": {
            "type": "string",
            "description": "The digits left to right, lines joined by a newline, separators "
            "(space, -, ., /) as written, an unsure digit as ?.",
        },
        "unsure": {"type": "boolean", "description": "No digit found, or some digit unsure."},
        "digits": {"type": "array", "items": _DIGIT},
        "separators": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "char": {"type": "string"},
                    "box": _BOX,
                    "line": {"type": "integer"},
                },
            },
        },
        "error": {"type": ["string", "null"]},
    },
}

READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PREDICT_RESPONSES,
    200: {
        "description": "One reading per image, in order.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "model": {"type": "string"},
                        "readings": {"type": "array", "items": _READING},
                    },
                }
            }
        },
    },
    501: {"description": "The server reads no numbers (it serves an ensemble).", **_DETAIL},
}

MODEL_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Architecture, dataset, classes, parameter count, test accuracy "
        "and versions of the served checkpoint."
    }
}
