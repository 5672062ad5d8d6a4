"""Each dataset's picture preparation, by the method name its checkpoint records.

A checkpoint's preparation record (``TrainedModel.preparation``, written by
training from the dataset's spec; the records and their sources:
:mod:`mnistcnn.prepare.records`) names a method; :data:`METHODS` maps each
name to its two steps, the ink-finding step (a grey picture -> a crop, in
:mod:`mnistcnn.prepare.locate`) and the fit step (the crop -> the 28x28 image,
in :mod:`mnistcnn.prepare.fit`), and to the test of a picture that is already
in the dataset's own format (given to the model unchanged):

==================  ==========================================================
``mnist``           ink found among clutter, stroke width brought into MNIST's
                    range, fitted into 20x20, centre of mass at (14, 14)
                    (:func:`~mnistcnn.prepare.locate.locate_ink`,
                    :func:`~mnistcnn.prepare.fit.fit_and_center`)
``kmnist``          the same ink, fitted into 28x28, its box centred (no
                    stroke-width change: KMNIST's brush strokes vary)
``emnist``          the same ink, NIST frame, Gaussian blur, square with a
                    2-px border, bicubic 28x28
                    (:func:`~mnistcnn.prepare.fit.emnist_fit`)
``fashion-mnist``   trim to the corners' colour, negate
                    (:func:`~mnistcnn.prepare.locate.trim_product`), longest
                    side to 28, sharpen, centre
                    (:func:`~mnistcnn.prepare.fit.fashion_fit`)
==================  ==========================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnistcnn.prepare.fit import emnist_fit, fashion_fit, fit_and_center
from mnistcnn.prepare.ink import InvertMode
from mnistcnn.prepare.locate import InkCrop, locate_ink, trim_product
from mnistcnn.prepare.settings import PreparationSettings

#: ``(grey picture float32 (H, W) in [0, 1], invert, record, settings) -> InkCrop``.
Find = Callable[[np.ndarray, InvertMode, Mapping[str, Any], PreparationSettings], InkCrop]
#: ``(crop float32 (h, w) in [0, 1], record, settings) -> uint8 (canvas, canvas)``.
Fit = Callable[[np.ndarray, Mapping[str, Any], PreparationSettings], np.ndarray]


@dataclass(frozen=True)
class Method:
    """One dataset's preparation, in two steps.

    Attributes:
        name: the method name a checkpoint records.
        find: the ink-finding step: a grey picture -> :class:`~mnistcnn.prepare.locate.InkCrop`.
        fit: the crop -> uint8 (canvas, canvas) step, background 0.
        dark_edges: the dataset-format test (:func:`~mnistcnn.prepare.pixels.dataset_format`):
            ``"frame"`` (the whole border dark: digits and characters sit inside
            a margin) or ``"side"`` (one side dark: garments reach the edges).
        empty_is_blank: a fit that leaves the canvas all zeros counts as a
            blank picture (Fashion-MNIST); otherwise any crop counts as ink found.
        source: where the method is described.
    """

    name: str
    find: Find
    fit: Fit
    dark_edges: str
    source: str
    empty_is_blank: bool = False


def geometry(
    record: Mapping[str, Any], settings: PreparationSettings | None = None
) -> PreparationSettings:
    """``settings`` (or the defaults) with the record's geometry over them.

    ``box`` and ``canvas`` from the record; ``kmnist`` centres the box
    (``center``, default ``"box"``) and ``kmnist``/``emnist`` keep the stroke
    width as it is (``stroke=None``).
    """
    s = settings or PreparationSettings()
    kw: dict[str, Any] = {
        "box": int(record.get("box", s.box)),
        "field": int(record.get("canvas", s.field)),
    }
    method = record.get("method")
    if method == "kmnist":
        kw.update(centring=record.get("center", "box"), stroke=None)
    elif method == "emnist":
        kw.update(stroke=None)
    return dataclasses.replace(s, **kw)


def _find_ink(
    gray: np.ndarray, invert: InvertMode, record: Mapping[str, Any], settings: PreparationSettings
) -> InkCrop:
    return locate_ink(gray, invert, settings)


def _find_product(
    gray: np.ndarray, invert: InvertMode, record: Mapping[str, Any], settings: PreparationSettings
) -> InkCrop:
    return trim_product(gray, invert, record)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(image * 255).astype(np.uint8)


def _fit_mnist(
    crop: np.ndarray, record: Mapping[str, Any], settings: PreparationSettings
) -> np.ndarray:
    return _to_uint8(fit_and_center(crop, settings))


def _fit_emnist(
    crop: np.ndarray, record: Mapping[str, Any], settings: PreparationSettings
) -> np.ndarray:
    return _to_uint8(emnist_fit(crop, record))


def _fit_fashion(
    crop: np.ndarray, record: Mapping[str, Any], settings: PreparationSettings
) -> np.ndarray:
    return fashion_fit(crop, record)


METHODS: Mapping[str, Method] = {
    "mnist": Method(
        "mnist", _find_ink, _fit_mnist, "frame", "LeCun et al. 1998; yann.lecun.com/exdb/mnist"
    ),
    "kmnist": Method(
        "kmnist", _find_ink, _fit_mnist, "frame", "Clanuwat et al. 2018 (assumed geometry)"
    ),
    "emnist": Method("emnist", _find_ink, _fit_emnist, "frame", "Cohen et al. 2017, Fig. 1"),
    "fashion-mnist": Method(
        "fashion-mnist", _find_product, _fit_fashion, "side", "Xiao et al. 2017, section 2", True
    ),
}


def method_of(record: Mapping[str, Any]) -> Method:
    """The :class:`Method` a preparation record names.

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
