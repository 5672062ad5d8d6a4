"""How invariant is a trained CNN to shifts, rotations and scaling of its input?

The tutorial says a CNN recognises patterns "irrespective of scale or
orientation". :func:`measure_invariance` tests the claim: the test accuracy as
every test digit is shifted, rotated or scaled by increasing amounts.

Each transformation is ``torchvision.transforms.v2.functional.affine`` on the
whole batch (float pixels in [0, 1], bilinear interpolation, black fill,
centred on the image centre) *before* the model's normalization:

* shift by s pixels: the accuracy is the mean over the four directions
  right, left, down, up (``translate=(±s, 0)`` and ``(0, ±s)``);
* rotation by a degrees: the mean over counter-clockwise and clockwise (±a);
* scale by factor f (< 1 shrinks, > 1 enlarges, about the centre).

The identity (shift 0, rotation 0, scale 1) is not resampled at all, so those
points equal the plain test accuracy exactly (bilinear resampling at the
identity would still move pixels by ~1e-6).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn
from torch.nn import functional as F

from mnistcnn.errors import SettingError

log = logging.getLogger(__name__)

DEFAULT_SHIFTS: tuple[float, ...] = (0, 1, 2, 3, 4, 5, 6)  # pixels
DEFAULT_ANGLES: tuple[float, ...] = (0, 5, 10, 15, 20, 25, 30, 35, 40, 45)  # degrees
DEFAULT_SCALES: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5)
TRANSFORMS: dict[str, tuple[str, float]] = {  # name -> (unit, identity value)
    "shift": ("px", 0.0),
    "rotation": ("degrees", 0.0),
    "scale": ("factor", 1.0),
}

Affine = dict[str, Any]  # keyword arguments of torchvision's affine()


@dataclass(frozen=True)
class InvariancePoint:
    """Accuracy (0..1) at one amount of one transformation.

    ``correct`` and ``evaluated`` count every variant (4 directions for a
    shift, 2 for a rotation), so ``accuracy == correct / evaluated``.
    """

    transform: str
    value: float
    accuracy: float
    correct: int
    evaluated: int


@dataclass
class InvarianceResult:
    """Every measured point, plus what was measured.

    plain_accuracy: accuracy on the untransformed images (0..1).
    num_samples: test images used (the first ``num_samples`` of the split).
    """

    points: list[InvariancePoint]
    plain_accuracy: float
    num_samples: int
    model: str = ""
    dataset: str = ""
    checkpoint: str = ""
    num_classes: int = 10
    extra: dict[str, Any] = field(default_factory=dict)

    def series(self, transform: str) -> tuple[list[float], list[float]]:
        """(values, accuracies 0..1) of one transformation, in increasing value."""
        pts = sorted((p for p in self.points if p.transform == transform), key=lambda p: p.value)
        return [p.value for p in pts], [p.accuracy for p in pts]

    def accuracy(self, transform: str, value: float) -> float:
        """Accuracy (0..1) at one measured point.

        Raises:
            KeyError: that point was not measured.
        """
        for p in self.points:
            if p.transform == transform and math.isclose(p.value, value, abs_tol=1e-9):
                return p.accuracy
        raise KeyError(f"{transform} {value} was not measured")

    def tolerated(self, transform: str, max_drop: float = 0.01) -> tuple[float, float]:
        """The contiguous range of values around the identity whose accuracy stays
        within ``max_drop`` (absolute, 0..1) of the plain accuracy: (low, high)."""
        values, accs = self.series(transform)
        ident = TRANSFORMS[transform][1]
        ok = [a >= self.plain_accuracy - max_drop for a in accs]
        start = values.index(ident) if ident in values else 0
        lo = hi = start
        while lo > 0 and ok[lo - 1]:
            lo -= 1
        while hi + 1 < len(values) and ok[hi + 1]:
            hi += 1
        return values[lo], values[hi]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per point (for CSV): transform, value, unit, accuracy, correct, evaluated."""
        return [
            {
                "transform": p.transform,
                "value": p.value,
                "unit": TRANSFORMS[p.transform][0],
                "accuracy": round(p.accuracy, 6),
                "correct": p.correct,
                "evaluated": p.evaluated,
            }
            for p in self.points
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: the settings, the plain accuracy and every point."""
        return {
            "checkpoint": self.checkpoint,
            "model": self.model,
            "dataset": self.dataset,
            "num_samples": self.num_samples,
            "num_classes": self.num_classes,
            "plain_accuracy": self.plain_accuracy,
            "points": self.rows(),
            **self.extra,
        }


def variants(transform: str, value: float) -> list[Affine]:
    """The affine arguments averaged for one point; ``[]`` for the identity.

    Raises:
        ValueError: unknown transform, or a scale <= 0.
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; use {', '.join(TRANSFORMS)}")
    if value == TRANSFORMS[transform][1]:
        return []
    base: Affine = {"angle": 0.0, "translate": [0.0, 0.0], "scale": 1.0, "shear": [0.0, 0.0]}
    if transform == "shift":
        moves = ([value, 0.0], [-value, 0.0], [0.0, value], [0.0, -value])
        return [{**base, "translate": list(m)} for m in moves]
    if transform == "rotation":
        return [{**base, "angle": float(value)}, {**base, "angle": -float(value)}]
    if value <= 0:
        raise ValueError(f"scale factors must be > 0, got {value}")
    return [{**base, "scale": float(value)}]


def apply_affine(pixels: torch.Tensor, affine: Affine) -> torch.Tensor:
    """One affine transform of a batch: float (N, C, H, W) in [0, 1] -> same shape.

    Bilinear interpolation, black (0) fill, about the image centre.
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    return TF.affine(
        pixels, **affine, interpolation=InterpolationMode.BILINEAR, fill=0.0
    )  # (N, C, H, W)


@torch.inference_mode()
def count_correct(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    affine: Affine | None = None,
    batch_size: int = 1000,
) -> int:
    """Correct predictions of ``model`` on ``images`` after an optional ``affine``.

    Args:
        images: uint8 (N, H, W) or (N, C, H, W), 0..255, on the model's device.
        labels: int64 (N,), same device.

    ``model`` takes pixels in [0, 1] (a :class:`~mnistcnn.artifact.TrainedModel`
    normalizes them itself).

    Pixels are converted exactly as :class:`mnistcnn.data.loaders.TensorSource`
    does, and the prediction is the argmax of the softmax, as in
    :func:`mnistcnn.engine.evaluate.predict_probabilities`.
    """
    model.eval()
    correct = 0
    for start in range(0, len(labels), batch_size):
        x = images[start : start + batch_size]
        x = (x.unsqueeze(1) if x.ndim == 3 else x).float().div_(255.0)  # (B, C, H, W)
        if affine:
            x = apply_affine(x, affine)
        pred = F.softmax(model(x).float(), dim=1).argmax(1)
        correct += int((pred == labels[start : start + batch_size]).sum())
    return correct


def measure_invariance(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    shifts: Sequence[float] = DEFAULT_SHIFTS,
    angles: Sequence[float] = DEFAULT_ANGLES,
    scales: Sequence[float] = DEFAULT_SCALES,
    batch_size: int = 1000,
    on_point: Callable[[InvariancePoint], None] | None = None,
) -> InvarianceResult:
    """Accuracy of ``model`` as ``images`` are shifted (px), rotated (degrees) and scaled.

    Args:
        images: uint8 (N, 28, 28), 0..255, on the model's device; labels int64 (N,).
        model: takes pixels in [0, 1] (a TrainedModel normalizes them itself).
        shifts, angles, scales: the amounts to test (see the module docstring).
        on_point: called after each point (progress).

    Returns:
        An :class:`InvarianceResult` (accuracies 0..1), points in the order
        shift, rotation, scale.

    Raises:
        ValueError: no images, or an invalid amount (e.g. scale <= 0).
    """
    if len(labels) == 0:
        raise SettingError("no test images to measure on")
    kw: dict[str, Any] = {"batch_size": batch_size}
    n = len(labels)
    plain = count_correct(model, images, labels, **kw)
    points = []
    for transform, values in (("shift", shifts), ("rotation", angles), ("scale", scales)):
        for value in values:
            affines = variants(transform, float(value))
            if affines:
                correct = sum(count_correct(model, images, labels, affine=a, **kw) for a in affines)
            else:
                correct = plain
            evaluated = n * max(1, len(affines))
            point = InvariancePoint(
                transform, float(value), correct / evaluated, correct, evaluated
            )
            log.info("%s %g: accuracy %.4f", transform, value, point.accuracy)
            points.append(point)
            if on_point is not None:
                on_point(point)
    return InvarianceResult(points, plain / n, n)


def invariance_for_checkpoint(
    checkpoint: str | Path,
    *,
    dataset: str | None = None,
    data_root: str | Path | None = None,
    mirror: str | Path | None = None,
    device: str = "auto",
    limit: int | None = None,
    batch_size: int = 1000,
    on_point: Callable[[InvariancePoint], None] | None = None,
) -> InvarianceResult:
    """:func:`measure_invariance` for a checkpoint on the test split of its dataset.

    ``limit``: use only the first ``limit`` test images (None: all).

    Raises:
        mnistcnn.engine.CheckpointError: unreadable checkpoint.
        mnistcnn.data.DataError: the dataset cannot be obtained.
        ValueError: ``limit`` < 1, a bad device, an unknown ``dataset``, or one
            whose classes are not the model's (an MNIST model on Fashion-MNIST
            would be measured at chance level and mean nothing).
    """
    from mnistcnn.artifact import load_model
    from mnistcnn.data import check_model_classes, load_arrays
    from mnistcnn.engine import select_device

    if limit is not None and limit < 1:
        raise SettingError(f"limit must be >= 1, got {limit}", setting="limit")
    dev = select_device(device)
    model, ckpt = load_model(checkpoint, map_location=dev)
    name = dataset or ckpt.dataset or "mnist"
    check_model_classes(
        ckpt.classes, name, subject=f"{checkpoint} --dataset {name}", model_dataset=ckpt.dataset
    )
    images, labels = load_arrays(name, train=False, root=data_root, mirror=mirror)
    images, labels = images[:limit].to(dev), labels[:limit].to(dev)
    result = measure_invariance(
        model,
        images,
        labels,
        batch_size=batch_size,
        on_point=on_point,
    )
    result.model, result.dataset, result.checkpoint = ckpt.model_name, name, str(ckpt.path)
    result.num_classes = len(ckpt.classes)
    return result


def invariance_figure(result: InvarianceResult) -> Figure:
    """Accuracy (%) against shift, rotation and scale: one figure, three panels.

    The dashed line is the plain test accuracy, the dotted one chance (1 / classes).
    """
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    labels = {
        "shift": "shift (pixels, mean of 4 directions)",
        "rotation": "rotation (degrees, mean of ±)",
        "scale": "scale factor (1 = unchanged)",
    }
    for ax, transform in zip(axes, TRANSFORMS):
        values, accs = result.series(transform)
        ax.plot(values, [100 * a for a in accs], "o-", color="tab:blue")
        ax.axhline(100 * result.plain_accuracy, ls="--", color="tab:green", label="no transform")
        chance = 100 / result.num_classes
        ax.axhline(chance, ls=":", color="gray", label=f"chance ({result.num_classes} classes)")
        ax.set(xlabel=labels[transform], title=f"accuracy vs {transform}", ylim=(0, 102))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(loc="lower left")
    what = f"{result.model} on {result.dataset}" if result.model else "model"
    fig.suptitle(
        f"Invariance of {what}: {result.num_samples} test images, "
        f"plain accuracy {100 * result.plain_accuracy:.2f}%"
    )
    return fig
