"""Each dataset's picture preparation, by the method name its checkpoint records.

A checkpoint's ``preparation`` record (``TrainedModel.preparation``, written by
training from the dataset's spec: :mod:`mnistcnn.data.preparation`, where the
sources are) names a method; :data:`METHODS` maps each name to the function
that carries it out and to the test of a picture that is already in the
dataset's own format (given to the model unchanged):

==================  ==========================================================
``mnist``           ink found among clutter, stroke width brought into MNIST's
                    range, fitted into 20x20, centre of mass at (14, 14)
                    (:func:`~mnistcnn.predict.preprocess.preprocess_image`)
``kmnist``          the same ink, fitted into 28x28, its box centred (no
                    stroke-width change: KMNIST's brush strokes vary)
``emnist``          the same ink, NIST frame, Gaussian blur, square with a
                    2-px border, bicubic 28x28
                    (:func:`~mnistcnn.predict.datasets_prep.emnist_fit`)
``fashion-mnist``   trim to the corners' colour, longest side to 28,
                    sharpen, centre, negate
                    (:func:`~mnistcnn.predict.datasets_prep.prepare_fashion`)
==================  ==========================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from mnistcnn.data.preparation import preparation_record
from mnistcnn.predict.arrays import dataset_format
from mnistcnn.predict.datasets_prep import emnist_fit, prepare_fashion
from mnistcnn.predict.ink import InvertMode
from mnistcnn.predict.preprocess import (
    PreprocessResult,
    PreprocessSettings,
    center_of_mass,
    locate_ink,
    preprocess_image,
)

#: MNIST's record: what pictures get when no model says otherwise.
MNIST_RECORD: Mapping[str, Any] = preparation_record("mnist")

Prepare = Callable[
    [Image.Image, InvertMode, Mapping[str, Any], PreprocessSettings | None], PreprocessResult
]


@dataclass(frozen=True)
class PreparationMethod:
    """One dataset's preparation.

    Attributes:
        name: the method name a checkpoint records.
        prepare: ``(picture, invert, record, settings) -> PreprocessResult``.
        dark_edges: the dataset-format test (:func:`~mnistcnn.predict.arrays.dataset_format`):
            ``"frame"`` (the whole border dark: digits and characters sit inside
            a margin) or ``"side"`` (one side dark: garments reach the edges).
        source: where the method is described.
    """

    name: str
    prepare: Prepare
    dark_edges: str
    source: str


def _geometry(record: Mapping[str, Any], settings: PreprocessSettings | None, **kw: Any):
    """``settings`` (or the defaults) with the record's box and canvas and ``kw``."""
    s = settings or PreprocessSettings()
    box = int(record.get("box", s.box))
    field = int(record.get("canvas", s.field))
    return dataclasses.replace(s, box=box, field=field, **kw)


def _mnist(image, invert, record, settings) -> PreprocessResult:
    return preprocess_image(image, invert, _geometry(record, settings))


def _kmnist(image, invert, record, settings) -> PreprocessResult:
    centring = record.get("center", "box")
    return preprocess_image(
        image, invert, _geometry(record, settings, centring=centring, stroke=None)
    )


def _emnist(image, invert, record, settings) -> PreprocessResult:
    s = _geometry(record, settings, stroke=None)
    crop, box, inverted, size = locate_ink(image, invert, s)
    if crop is None:
        blank = np.zeros((s.field, s.field), np.uint8)
        return PreprocessResult(blank, inverted, False, None, None, size)
    out = np.round(emnist_fit(crop, record) * 255).astype(np.uint8)
    return PreprocessResult(out, inverted, True, box, center_of_mass(out), size)


def _fashion(image, invert, record, settings) -> PreprocessResult:
    return prepare_fashion(image, invert, record)


METHODS: Mapping[str, PreparationMethod] = {
    "mnist": PreparationMethod(
        "mnist", _mnist, "frame", "LeCun et al. 1998; yann.lecun.com/exdb/mnist"
    ),
    "kmnist": PreparationMethod(
        "kmnist", _kmnist, "frame", "Clanuwat et al. 2018 (assumed geometry)"
    ),
    "emnist": PreparationMethod("emnist", _emnist, "frame", "Cohen et al. 2017, Fig. 1"),
    "fashion-mnist": PreparationMethod(
        "fashion-mnist", _fashion, "side", "Xiao et al. 2017, section 2"
    ),
}


def preparation_method(record: Mapping[str, Any]) -> PreparationMethod:
    """The :class:`PreparationMethod` a preparation record names.

    Raises:
        ValueError: the record names no known method; the message lists them.
    """
    name = str(record.get("method"))
    if name not in METHODS:
        raise ValueError(
            f"the checkpoint's picture preparation {name!r} is unknown to this version; "
            f"known: {', '.join(sorted(METHODS))}"
        )
    return METHODS[name]


def prepare_by_method(
    image: Image.Image,
    record: Mapping[str, Any],
    invert: InvertMode = "auto",
    settings: PreprocessSettings | None = None,
) -> PreprocessResult:
    """Prepare a picture the way the record's dataset prepared its images.

    Args:
        image: any Pillow image.
        record: a checkpoint's preparation record (``{"method": "mnist", ...}``).
        invert: ``auto``, ``yes`` (dark ink / product on light), ``no``.
        settings: ink-finding thresholds (the method sets the geometry).

    Returns:
        :class:`~mnistcnn.predict.preprocess.PreprocessResult` with the uint8
        (canvas, canvas) image, background 0.

    Raises:
        ValueError: an unknown method (see :func:`preparation_method`).
    """
    return preparation_method(record).prepare(image, invert, record, settings)


def in_dataset_format(gray: np.ndarray, record: Mapping[str, Any]) -> np.ndarray | None:
    """uint8 (28, 28) if the uint8 grayscale picture ``gray`` is already in the dataset's format.

    :func:`~mnistcnn.predict.arrays.dataset_format` with the method's edge rule.
    """
    return dataset_format(gray, dark_edges=preparation_method(record).dark_edges)
