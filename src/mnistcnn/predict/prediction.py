"""What the model says about one picture: :class:`Prediction`, and :func:`short_label`
(how a class name is reported)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from mnistcnn._text import short_label as short_label  # re-exported: predict names it


@dataclass
class Prediction:
    """What the model says about one picture.

    Attributes:
        path: the input's name: its path as given, ``-`` (stdin), ``file#i``
            (image ``i`` of an IDX file) or ``<image i>`` for in-memory inputs.
        label: the predicted class (:func:`short_label` of the class name), or
            None when unsure or on error.
        probability: calibrated probability of the top class, 0..1; None for
            a blank picture or on error.
        topk: the ``k`` most probable classes, ``(label, probability)``,
            most probable first; empty for a blank picture or on error.
        unsure: no ink (``blank``), or the top probability is below the
            threshold. False on error (look at ``error`` first).
        error: why the input could not be predicted (None when it was).
        input: uint8 (28, 28), 0 background .. 255 ink: what the model saw.
            None on error.
        blank: no ink was found in the picture.
        inverted: the picture was dark-on-light and was inverted (None when
            not preprocessed: IDX images and errors).
        probabilities: float32 (C,), all calibrated class probabilities
            (None for a blank picture or on error).
        preview: a copy of the decoded picture (EXIF-rotated, longest side at
            most 256 px), kept only when asked for (``keep_previews``).
        size: (width, height) of the (EXIF-rotated) picture in pixels (None
            for IDX images and errors).
        digits_found: how many digits standing apart the picture holds, when
            it holds several (None otherwise): the prediction is then unsure,
            ``label`` None; ``mnistcnn read`` reads them (docs/read.md).
    """

    path: str
    label: str | None
    probability: float | None
    topk: list[tuple[str, float]]
    unsure: bool
    error: str | None = None
    input: np.ndarray | None = field(default=None, repr=False)
    blank: bool = False
    inverted: bool | None = None
    probabilities: np.ndarray | None = field(default=None, repr=False)
    preview: Image.Image | None = field(default=None, repr=False)
    size: tuple[int, int] | None = None
    digits_found: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"path", "label", "probability", "topk": [{"label", "probability"}], "unsure",
        "error"}`` with plain Python values (JSON-ready), and ``"digits_found"`` when the
        picture holds several digits."""
        out = {
            "path": self.path,
            "label": self.label,
            "probability": self.probability,
            "topk": [{"label": lab, "probability": p} for lab, p in self.topk],
            "unsure": self.unsure,
            "error": self.error,
        }
        if self.digits_found is not None:
            out["digits_found"] = self.digits_found
        return out
