"""Predict digits on people's pictures with a trained checkpoint.

:class:`Predictor` = checkpoint (model, classes, normalization, calibration
temperature) + MNIST-style preprocessing (:func:`preprocess_image`) + the
"unsure" rule. :meth:`Predictor.predict` returns one :class:`Prediction` per
picture; a picture that cannot be read gives a Prediction with ``error`` set
and the others are still predicted.

**Unsure.** A picture with no ink (blank) is not shown to the model: it is
reported unsure, without probabilities. Otherwise the probabilities are
``softmax(logits / T)`` with the checkpoint's fitted temperature ``T``
(:mod:`mnistcnn.engine.calibration`; ``T = 1`` when the checkpoint was never
calibrated), and the prediction is unsure when the top probability is below
``threshold`` (default :data:`DEFAULT_THRESHOLD`).

**Alone or in a batch.** Every picture goes through the model in a forward
pass of its own (batch size 1). A batched matrix product may pick a different
kernel or summation order for another batch size, which changes the last bits
of the logits; one picture per pass makes a picture's probabilities bit-for-bit
the same whatever else is predicted with it. The cost is small: the
preprocessing takes far longer than the forward pass of these small networks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from mnistcnn.engine.calibration import temperature_of
from mnistcnn.engine.checkpoint import CheckpointError, load_model
from mnistcnn.engine.utils import select_device
from mnistcnn.predict.ink import InvertMode
from mnistcnn.predict.inputs import (
    ImageInputError,
    Input,
    InputItem,
    check_size,
    decode_image,
    preview_copy,
    python_inputs,
)
from mnistcnn.predict.preprocess import INVERT_MODES, PreprocessSettings, preprocess_image

log = logging.getLogger(__name__)

#: Default threshold on the calibrated top probability (below it: unsure).
DEFAULT_THRESHOLD = 0.5


def short_label(name: str) -> str:
    """A class name as predictions report it: ``"7 - seven"`` -> ``"7"``; others unchanged."""
    return name.split(" - ")[0] if " - " in name else name


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

    def to_dict(self) -> dict[str, Any]:
        """``{"path", "label", "probability", "topk": [{"label", "probability"}], "unsure",
        "error"}`` with plain Python values (JSON-ready)."""
        return {
            "path": self.path,
            "label": self.label,
            "probability": self.probability,
            "topk": [{"label": lab, "probability": p} for lab, p in self.topk],
            "unsure": self.unsure,
            "error": self.error,
        }


def _failed(name: str, error: str) -> Prediction:
    return Prediction(name, None, None, [], False, error)


class Predictor:
    """A trained model ready for pictures: preprocessing, calibrated probabilities, unsure rule.

    Args:
        model: returns logits (N, C) for float inputs (N, 1, 28, 28); put in eval mode.
        classes: C class names.
        mean, std: per-channel normalization, ``x = (pixels / 255 - mean) / std``.
        temperature: calibration temperature (> 0; 1.0 = uncalibrated).
        calibrated: whether ``temperature`` was fitted (False: probabilities are raw softmax).
        threshold: top probability below which a prediction is unsure, in [0, 1].
        invert: ``auto``, ``yes`` or ``no`` (see :func:`preprocess_image`).
        device: where the model runs.
        top_k: how many classes :class:`Prediction` lists.
        settings: preprocessing geometry and thresholds.

    Raises:
        ValueError: a bad ``threshold``, ``temperature``, ``invert`` or ``top_k``.
    """

    def __init__(
        self,
        model: nn.Module,
        classes: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        *,
        temperature: float = 1.0,
        calibrated: bool = False,
        threshold: float = DEFAULT_THRESHOLD,
        invert: InvertMode = "auto",
        device: torch.device | str = "cpu",
        top_k: int = 3,
        settings: PreprocessSettings | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if invert not in INVERT_MODES:
            raise ValueError(f"invert must be one of {', '.join(INVERT_MODES)}, got {invert!r}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.classes = list(classes)
        self.mean = torch.tensor(list(mean), dtype=torch.float32, device=self.device)
        self.std = torch.tensor(list(std), dtype=torch.float32, device=self.device)
        self.temperature = float(temperature)
        self.calibrated = calibrated
        self.threshold = float(threshold)
        self.invert: InvertMode = invert
        self.top_k = top_k
        self.settings = settings or PreprocessSettings()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        device: str = "cpu",
        invert: InvertMode = "auto",
        threshold: float | None = None,
        top_k: int = 3,
    ) -> Predictor:
        """Load a checkpoint (a file, or a run directory's best.pt) for prediction.

        Args:
            path: checkpoint written by training.
            device: ``cpu``, ``cuda``, ``mps``, ``auto``, ...
            invert: polarity handling (see :func:`preprocess_image`).
            threshold: unsure below this calibrated top probability;
                :data:`DEFAULT_THRESHOLD` when None.
            top_k: classes listed per prediction.

        Raises:
            CheckpointError: unreadable checkpoint, or a model that does not
                take 1x28x28 inputs.
            ValueError: a bad device, threshold, invert mode or top_k.
        """
        dev = select_device(device)
        model, ckpt = load_model(path, map_location=dev)
        if list(ckpt.input_size) != [1, 28, 28]:
            raise CheckpointError(
                f"{ckpt.path}: the model takes {ckpt.input_size} inputs; predict needs [1, 28, 28]"
            )
        t = temperature_of(ckpt)
        if t is None:
            log.info("%s is not calibrated: probabilities are raw softmax (T = 1)", ckpt.path)
        return cls(
            model,
            ckpt.classes,
            ckpt.mean,
            ckpt.std,
            temperature=t or 1.0,
            calibrated=t is not None,
            threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
            invert=invert,
            device=dev,
            top_k=top_k,
        )

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities of MNIST-style images, one forward pass per image.

        Args:
            images: uint8 (N, 28, 28) or (28, 28), 0 background .. 255 ink.

        Returns:
            float32 (N, C), each row ``softmax(logits / T)``, summing to 1.
        """
        batch = np.array(images, np.uint8).reshape(-1, 28, 28)  # a writable copy
        out = np.zeros((len(batch), len(self.classes)), np.float32)
        for i, img in enumerate(batch):
            x = torch.from_numpy(img).to(self.device).float().div(255.0)  # (28, 28)
            x = (x[None, None] - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)
            logits = self.model(x).float()  # (1, C)
            out[i] = F.softmax(logits / self.temperature, dim=1)[0].cpu().numpy()
        return out

    def _judge(self, name: str, image: np.ndarray, inverted: bool | None) -> Prediction:
        probs = self.probabilities(image)[0]
        order = np.argsort(-probs, kind="stable")[: self.top_k]
        topk = [(short_label(self.classes[j]), float(probs[j])) for j in order]
        top = float(probs[order[0]])
        unsure = top < self.threshold
        label = None if unsure else topk[0][0]
        return Prediction(name, label, top, topk, unsure, None, image, False, inverted, probs)

    def predict_picture(
        self, image: Image.Image, name: str = "<image>", keep_preview: bool = False
    ) -> Prediction:
        """Preprocess one decoded picture and predict it.

        A picture that cannot be preprocessed (a refused size, an unusual
        mode or damaged data Pillow only notices now) gives a Prediction with
        ``error`` set; errors of the model itself are raised.
        """
        try:
            check_size(*image.size)
            result = preprocess_image(image, self.invert, self.settings)
            preview = preview_copy(image) if keep_preview else None
        except ImageInputError as exc:
            return _failed(name, str(exc))
        except Exception as exc:  # one odd file must not stop a batch
            log.debug("%s: preprocessing failed", name, exc_info=True)
            return _failed(name, f"cannot preprocess the picture: {type(exc).__name__}: {exc}")
        if not result.ink_found:
            pred = Prediction(name, None, None, [], True, None, result.image, True, result.inverted)
        else:
            pred = self._judge(name, result.image, result.inverted)
        pred.preview, pred.size = preview, result.size
        return pred

    def predict_item(self, item: InputItem, keep_preview: bool = False) -> Prediction:
        """Predict one :class:`InputItem` (see :func:`~mnistcnn.predict.inputs.expand_inputs`).

        Never raises for a bad input: every failure is the Prediction's ``error``.
        """
        if item.error is not None:
            return _failed(item.name, item.error)
        if item.prepared is not None:
            image = np.asarray(item.prepared, np.uint8)
            if not image.any():
                return Prediction(item.name, None, None, [], True, None, image, True)
            return self._judge(item.name, image, None)
        try:
            data = item.data if item.data is not None else Path(item.path or "").read_bytes()
            picture = decode_image(data)
        except ImageInputError as exc:
            return _failed(item.name, str(exc))
        except OSError as exc:
            return _failed(item.name, f"cannot read: {exc.strerror or exc}")
        except Exception as exc:  # a decoder bug on a hostile file: report, carry on
            log.debug("%s: decoding failed", item.name, exc_info=True)
            return _failed(item.name, f"cannot decode the picture: {type(exc).__name__}: {exc}")
        with picture:
            return self.predict_picture(picture, item.name, keep_preview)

    def predict_items(
        self,
        items: Iterable[InputItem],
        keep_previews: bool = False,
        on_prediction: Callable[[Prediction], None] | None = None,
    ) -> list[Prediction]:
        """:meth:`predict_item` for each item, in order; ``on_prediction`` sees each result."""
        out = []
        for item in items:
            pred = self.predict_item(item, keep_previews)
            if on_prediction is not None:
                on_prediction(pred)
            out.append(pred)
        return out

    def predict(self, inputs: Iterable[Input], keep_previews: bool = False) -> list[Prediction]:
        """Predict pictures given as Pillow images, arrays, encoded bytes or paths.

        Args:
            inputs: Pillow images; arrays (see
                :func:`~mnistcnn.predict.inputs.array_to_image`); bytes of an
                image file; paths (``str``/``PathLike``) of image files,
                folders or IDX files. A folder path gives one prediction per
                image file in it, an IDX path one per image it holds; every
                other input gives exactly one (so results line up with inputs).
            keep_previews: keep a small copy of each picture (``preview``).

        Returns:
            One :class:`Prediction` per picture, in input order. Inputs that
            fail (unreadable, not an image, a bad array) have ``error`` set;
            they never stop the others.
        """
        out = []
        for name, x in python_inputs(inputs):
            if isinstance(x, Image.Image):
                out.append(self.predict_picture(x, name, keep_previews))
            else:
                out.append(self.predict_item(x, keep_previews))
        return out
