"""What the reader says about a picture of a number: :class:`Reading`, :class:`ReadDigit`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]
#: How an unsure digit shows in :attr:`Reading.text`.
UNSURE_MARK = "?"


@dataclass
class ReadDigit:
    """One digit found in a picture.

    Attributes:
        box: its ink's box in the (EXIF-rotated) picture, ``(left, top, right,
            bottom)`` in pixels, right/bottom exclusive.
        label: the digit read (the class's short label), None when unsure.
        probability: calibrated probability of the top class, 0..1.
        unsure: the top probability is below the reader's threshold (``?`` in the text).
        topk: the most probable classes, ``(label, probability)``, most probable first.
        line: its line, from 0 (top).
        input: uint8 (28, 28), 0 background .. 255 ink: what the model saw.
    """

    box: Box
    label: str | None
    probability: float
    unsure: bool
    topk: list[tuple[str, float]]
    line: int = 0
    input: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"box", "label", "probability", "unsure", "line", "topk"}``."""
        return {
            "box": list(self.box),
            "label": self.label,
            "probability": self.probability,
            "unsure": self.unsure,
            "line": self.line,
            "topk": [{"label": lab, "probability": p} for lab, p in self.topk],
        }


@dataclass
class Separator:
    """A separator kept in the text: ``" "``, ``"-"``, ``"."`` or ``"/"``, with its box and line."""

    char: str
    box: Box
    line: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"char": self.char, "box": list(self.box), "line": self.line}


@dataclass
class Reading:
    """What the reader found in one picture.

    Attributes:
        path: the input's name (as :attr:`Prediction.path <mnistcnn.predict.Prediction.path>`).
        text: the digits left to right, lines top to bottom joined by ``"\\n"``,
            separators as written, an unsure digit as ``?``; empty when no digit
            was found or on error.
        digits: each digit, in the order of ``text``.
        separators: each separator, in the order of ``text``.
        error: why the input could not be read (None when it was).
        inverted: the picture was dark-on-light and was inverted.
        size: (width, height) of the (EXIF-rotated) picture in pixels.
        preview: a copy of the decoded picture, kept only when asked for.
    """

    path: str
    text: str = ""
    digits: list[ReadDigit] = field(default_factory=list)
    separators: list[Separator] = field(default_factory=list)
    error: str | None = None
    inverted: bool | None = None
    size: tuple[int, int] | None = None
    preview: Image.Image | None = field(default=None, repr=False)

    @property
    def unsure(self) -> bool:
        """No digit found, or some digit unsure."""
        return not self.digits or any(d.unsure for d in self.digits)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"path", "text", "unsure", "digits", "separators", "error"}``."""
        return {
            "path": self.path,
            "text": self.text,
            "unsure": self.unsure if self.error is None else False,
            "digits": [d.to_dict() for d in self.digits],
            "separators": [s.to_dict() for s in self.separators],
            "error": self.error,
        }


def boxes_picture(picture: Image.Image, reading: Reading) -> Image.Image:
    """An RGB copy of ``picture`` with each digit's box and reading drawn on it.

    ``picture`` may be a smaller copy (``Reading.preview``): the boxes are
    scaled. Confident digits are boxed in green with their label, unsure ones in orange
    with ``?``, separators in blue. ``picture``: the (EXIF-rotated) picture the
    boxes were found in, any mode.
    """
    from PIL import ImageDraw

    from mnistcnn._io import upright

    img = upright(picture).convert("RGB")
    f = img.size[0] / reading.size[0] if reading.size else 1.0  # a smaller preview copy

    def scaled(box: Box) -> tuple[float, float, float, float]:
        return (
            box[0] * f,
            box[1] * f,
            max(box[0] * f, box[2] * f - 1),
            max(box[1] * f, box[3] * f - 1),
        )

    draw = ImageDraw.Draw(img)
    width = max(1, round(max(img.size) / 300))
    for d in reading.digits:
        colour = (230, 120, 0) if d.unsure else (0, 160, 60)
        left, top, right, bottom = scaled(d.box)
        draw.rectangle((left, top, right, bottom), outline=colour, width=width)
        text = UNSURE_MARK if d.label is None else d.label
        draw.text((left + 2, max(0.0, top - 12)), f"{text} {100 * d.probability:.0f}%", fill=colour)
    for s in reading.separators:
        draw.rectangle(scaled(s.box), outline=(40, 90, 220))
    return img


def inputs_strip(reading: Reading, zoom: int = 3) -> Image.Image | None:
    """The 28x28 inputs the model saw, left to right, ``zoom`` times enlarged, 4 px apart (mode L).

    None when no digit was read.
    """
    images = [d.input for d in reading.digits if d.input is not None]
    if not images:
        return None
    side = 28 * zoom
    strip = Image.new("L", (len(images) * (side + 4) - 4, side), 128)
    for i, im in enumerate(images):
        tile = Image.fromarray(np.asarray(im, np.uint8), "L").resize(
            (side, side), Image.Resampling.NEAREST
        )
        strip.paste(tile, (i * (side + 4), 0))
    return strip
