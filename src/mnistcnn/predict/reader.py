"""Read written numbers: every digit of a picture, left to right, lines top to bottom.

:class:`Reader` = a :class:`~mnistcnn.predict.Predictor` (the trained model, its
calibration temperature and the unsure threshold) + the segmentation of
:mod:`mnistcnn.prepare.segment` and :mod:`mnistcnn.prepare.split`:

1. The picture is decoded and made grey (as ``predict`` does), shrunk to at
   most ``work_area`` pixels, and its ink found (background, polarity,
   contrast: :func:`~mnistcnn.prepare.ink.ink_map`); ruled lines are removed
   (:func:`~mnistcnn.prepare.clutter.remove_lines`).
2. :func:`~mnistcnn.prepare.segment.find_characters` finds the lines, the
   digit glyphs (pieces joined), the separators and the spaces; frames, border
   clutter and specks are left out.
3. Each glyph's ink is prepared the way the model's dataset made its images
   (:meth:`mnistcnn.prepare.Preparation.fit`; for MNIST: fitted into 20x20,
   centre of mass at (14, 14)) and classified, a line's glyphs in one forward pass.
4. A glyph wider than one digit, or read unsure, is cut by
   :func:`~mnistcnn.prepare.split.split_glyph`: the cuts the model reads best.

A digit whose calibrated top probability is below the threshold is unsure
and shows as ``?`` in the text.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from mnistcnn._io import ImageInputError, check_size
from mnistcnn.artifact import TrainedModel
from mnistcnn.predict.inputs import Input, InputItem, python_inputs, read_item
from mnistcnn.predict.prediction import short_label
from mnistcnn.predict.predictor import Predictor
from mnistcnn.predict.reading import UNSURE_MARK, ReadDigit, Reading, Separator
from mnistcnn.prepare.clutter import ClutterSettings, remove_lines
from mnistcnn.prepare.ink import InkSettings, ink_map
from mnistcnn.prepare.pixels import array_to_image, preview_copy, to_grayscale
from mnistcnn.prepare.segment import Glyph, Line, SegmentSettings, find_characters
from mnistcnn.prepare.split import SplitSettings, split_glyph

log = logging.getLogger(__name__)
#: Longest side of the copy of a picture a Reading keeps (``keep_preview``), px.
PREVIEW_SIZE = 1024


@dataclass(frozen=True)
class ReadSettings:
    """How the reader finds the digits.

    Attributes:
        work_area: the picture is shrunk to at most this many pixels before its
            ink is searched (the time grows with it; 90,000 keeps a 4-digit
            number's digits over 40 px tall on a page twice the number's size).
        ink: thresholds of :func:`~mnistcnn.prepare.ink.ink_map`.
        clutter: the ruled-line thresholds of :func:`~mnistcnn.prepare.clutter.remove_lines`.
        segment: :class:`~mnistcnn.prepare.segment.SegmentSettings`.
        split: :class:`~mnistcnn.prepare.split.SplitSettings`.
    """

    work_area: int = 90_000
    ink: InkSettings = field(default_factory=InkSettings)
    clutter: ClutterSettings = field(default_factory=ClutterSettings)
    segment: SegmentSettings = field(default_factory=SegmentSettings)
    split: SplitSettings = field(default_factory=SplitSettings)


_Seen = dict[tuple[tuple[int, ...], bytes], np.ndarray]


def _key(crop: np.ndarray) -> tuple[tuple[int, ...], bytes]:
    return crop.shape, np.ascontiguousarray(crop, np.float32).tobytes()


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


class Reader:
    """Reads the digits of pictures with a trained model (see the module docstring).

    Args:
        model: a :class:`~mnistcnn.artifact.TrainedModel`, or a
            :class:`~mnistcnn.predict.Predictor` (its temperature, threshold,
            polarity and device are used).
        settings: :class:`ReadSettings` (defaults when None).
        **predictor: for a TrainedModel, :class:`~mnistcnn.predict.Predictor`'s
            keyword arguments (``threshold``, ``invert``, ``device``, ``top_k``, ...).
    """

    def __init__(
        self,
        model: TrainedModel | Predictor,
        settings: ReadSettings | None = None,
        **predictor: Any,
    ) -> None:
        self.predictor = model if isinstance(model, Predictor) else Predictor(model, **predictor)
        self.settings = settings or ReadSettings()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], **kwargs: Any) -> Reader:
        """Load a checkpoint for reading; ``kwargs`` as :meth:`Predictor.from_checkpoint`.

        Raises:
            CheckpointError, ValueError: as :meth:`Predictor.from_checkpoint`.
        """
        return cls(Predictor.from_checkpoint(path, **kwargs))

    def _fit(self, crop: np.ndarray) -> np.ndarray:
        """One digit's ink, float32 (h, w) in [0, 1] -> uint8 (28, 28) through the model's
        own preparation (:meth:`mnistcnn.prepare.Preparation.fit`: for MNIST the stroke
        width, the 20x20 box and the centre of mass), cut to the digit's own box first."""
        if crop.any():
            left, top, right, bottom = _bbox(crop > 0)
            crop = crop[top:bottom, left:right]
        return self.predictor.preparation.fit(np.ascontiguousarray(crop, np.float32))

    def _classify(self, crops: Sequence[np.ndarray], seen: _Seen) -> np.ndarray:
        """Ink crops -> float32 (N, C) calibrated probabilities (one forward pass).

        Each crop's 28x28 is kept in ``seen`` (by the crop's bytes) for the digits
        finally read, so none is prepared twice.
        """
        if not crops:
            return np.zeros((0, len(self.predictor.classes)), np.float32)
        images = []
        for c in crops:
            image = self._fit(c)
            seen[_key(c)] = image
            images.append(image)
        return self.predictor.forward(np.stack(images))

    def _digit(
        self,
        mask: np.ndarray,
        glyph: Glyph,
        ink: np.ndarray,
        probs: np.ndarray,
        scale: float,
        size: tuple[int, int],
        line: int,
        seen: _Seen,
    ) -> ReadDigit:
        """The ReadDigit of one digit's mask within ``glyph`` (working pixels -> picture pixels)."""
        left, top, right, bottom = _bbox(mask)
        gl, gt = glyph.box[0], glyph.box[1]
        region = ink[gt : glyph.box[3], gl : glyph.box[2]]
        full = np.where(mask, region, 0.0).astype(np.float32)
        image = seen.get(_key(full))
        if image is None:
            image = self._fit(full)
        box = (
            int((gl + left) * scale),
            int((gt + top) * scale),
            min(size[0], round((gl + right) * scale)),
            min(size[1], round((gt + bottom) * scale)),
        )
        return self._judge(box, image, probs, line)

    def _judge(
        self, box: tuple[int, int, int, int], image: np.ndarray, probs: np.ndarray, line: int
    ) -> ReadDigit:
        p = self.predictor
        order = np.argsort(-probs, kind="stable")[: p.top_k]
        topk = [(short_label(p.classes[j]), float(probs[j])) for j in order]
        unsure = topk[0][1] < p.threshold
        return ReadDigit(box, None if unsure else topk[0][0], topk[0][1], unsure, topk, line, image)

    def read_picture(
        self, image: Image.Image | np.ndarray, name: str = "<image>", keep_preview: bool = False
    ) -> Reading:
        """Read one decoded picture, or a picture array (see the module docstring).

        Never raises for a bad picture: a refused size, a bad array or damaged
        data gives a Reading with ``error`` set; errors of the model itself are raised.
        """
        try:
            given = self.predictor.preparation.given(image)
            if given is not None:  # already the model's 28x28 input: one digit
                return self._one(name, given, (given.shape[1], given.shape[0]))
            picture = array_to_image(image) if isinstance(image, np.ndarray) else image
            check_size(*picture.size)
            preview = preview_copy(picture, PREVIEW_SIZE) if keep_preview else None
            gray = to_grayscale(picture)
        except (ImageInputError, ValueError) as exc:
            return Reading(name, error=str(exc))
        except Exception as exc:  # one odd file must not stop a batch
            log.debug("%s: reading failed", name, exc_info=True)
            return Reading(name, error=f"cannot read the picture: {type(exc).__name__}: {exc}")
        reading = self._read_gray(gray, name)
        reading.preview = preview
        return reading

    def _one(
        self,
        name: str,
        image: np.ndarray,
        size: tuple[int, int],
        preview: Image.Image | None = None,
    ) -> Reading:
        """The Reading of one image in the dataset's own format."""
        if not image.any():
            return Reading(name, size=size, preview=preview)
        probs = self.predictor.forward(image[None])[0]
        digit = self._judge((0, 0, size[0], size[1]), image, probs, 0)
        text = digit.label if digit.label is not None else UNSURE_MARK
        return Reading(name, text, [digit], size=size, preview=preview)

    def _read_gray(self, gray: np.ndarray, name: str) -> Reading:
        """Steps 1-4 of the module docstring on float32 (H, W) grey in [0, 1]."""
        s = self.settings
        h, w = gray.shape
        scale = max(1.0, float(np.sqrt(h * w / s.work_area)))
        work = gray
        if scale > 1:
            size = (max(1, round(w / scale)), max(1, round(h / scale)))
            small = Image.fromarray(np.ascontiguousarray(gray, np.float32), "F")
            work = np.asarray(small.resize(size, Image.Resampling.BOX), np.float32)
        found = ink_map(work, self.predictor.preparation.invert, s.ink)
        ink = remove_lines(found.strength, s.clutter) if found.ink_found else found.strength
        scale = w / work.shape[1]
        reading = Reading(name, inverted=found.inverted, size=(w, h))
        lines_text = []
        seen: _Seen = {}
        for li, line in enumerate(find_characters(ink, s.segment)):
            glyphs = [g for g in line.glyphs if g.kind == "digit"]
            crops = [
                np.where(g.mask, ink[g.box[1] : g.box[3], g.box[0] : g.box[2]], 0.0).astype(
                    np.float32
                )
                for g in glyphs
            ]
            whole = self._classify(crops, seen)
            chars = []
            for g in line.glyphs:
                if g.kind != "digit":
                    box = (
                        int(g.box[0] * scale),
                        int(g.box[1] * scale),
                        round(g.box[2] * scale),
                        round(g.box[3] * scale),
                    )
                    reading.separators.append(Separator(g.kind, box, li))
                    chars.append(g.kind)
                    continue
                i = glyphs.index(g)
                masks, probs = self._split(g, crops[i], whole[i], line, seen)
                for mask, p in zip(masks, probs):
                    d = self._digit(mask, g, ink, p, scale, (w, h), li, seen)
                    reading.digits.append(d)
                    chars.append(d.label if d.label is not None else UNSURE_MARK)
            lines_text.append("".join(chars))
        reading.text = "\n".join(t for t in lines_text if t)
        return reading

    def _split(
        self, g: Glyph, crop: np.ndarray, probs: np.ndarray, line: Line, seen: _Seen
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """The digits of one glyph: itself, or its pieces when it is wide or unsure."""
        s = self.settings.split
        height = line.height
        wide = g.width > s.wide * height
        doubtful = float(probs.max()) < s.unsure and g.width >= s.narrow * height
        if not (wide or doubtful):
            return [g.mask], probs[None]
        classify = lambda crops: self._classify(crops, seen)  # noqa: E731
        masks, out = split_glyph(crop, line.slant, height, classify, s)
        if len(masks) == 1:  # the whole glyph, as first classified
            return [g.mask], probs[None]
        return masks, out

    def read_item(self, item: InputItem, keep_preview: bool = False) -> Reading:
        """Read one :class:`~mnistcnn.predict.inputs.InputItem`; never raises for a bad input."""
        if item.error is not None:
            return Reading(item.name, error=item.error)
        if item.prepared is not None:
            image = np.asarray(item.prepared, np.uint8)
            return self._one(item.name, image, (image.shape[1], image.shape[0]))
        try:
            picture = read_item(item)
        except ImageInputError as exc:
            return Reading(item.name, error=str(exc))
        with picture:
            return self.read_picture(picture, item.name, keep_preview)

    def read(self, inputs: Iterable[Input], keep_previews: bool = False) -> list[Reading]:
        """Read pictures given as Pillow images, arrays, encoded bytes or paths.

        Inputs as :meth:`Predictor.predict <mnistcnn.predict.Predictor.predict>`:
        one Reading per picture, in input order; failures have ``error`` set.
        """
        out = []
        for name, x in python_inputs(inputs):
            if isinstance(x, InputItem):
                out.append(self.read_item(x, keep_previews))
            else:
                out.append(self.read_picture(x, name, keep_previews))
        return out


def read(
    model: TrainedModel | Predictor | str | os.PathLike[str],
    inputs: Iterable[Input] | Input,
    **kwargs: Any,
) -> list[Reading]:
    """Read the numbers written in ``inputs`` (``mnistcnn.read``).

    Args:
        model: a checkpoint path, a :class:`~mnistcnn.artifact.TrainedModel` or a
            :class:`~mnistcnn.predict.Predictor`.
        inputs: one input or several (paths, folders, bytes, arrays, Pillow images).
        **kwargs: for a checkpoint path, :meth:`Predictor.from_checkpoint`'s
            (``device``, ``invert``, ``threshold``, ``top_k``); for a model,
            :class:`~mnistcnn.predict.Predictor`'s.

    Returns:
        One :class:`~mnistcnn.predict.reading.Reading` per picture.

    Example::

        >>> [r.text for r in mnistcnn.read("runs/latest/best.pt", ["date.png"])]
        ['12/05/24']
    """
    if isinstance(model, (str, os.PathLike)):
        reader = Reader.from_checkpoint(model, **kwargs)
    else:
        reader = Reader(model, **kwargs)
    many = isinstance(inputs, Iterable) and not isinstance(inputs, (str, bytes, bytearray))
    many = many and not isinstance(inputs, (np.ndarray, Image.Image))
    return reader.read(inputs if many else [inputs])  # type: ignore[list-item,arg-type]
