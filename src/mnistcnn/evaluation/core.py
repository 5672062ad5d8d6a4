"""One evaluation pass: each model runs once over the images; everything else is built from it.

:func:`evaluate_models` returns an :class:`Evaluation` holding the per-image
probabilities and labels with the loss, accuracy, per-class metrics and
confusion matrix derived from them. The report, its plots, the ensemble
(averaged probabilities) and ``mnistcnn evaluate``'s printout are all built
from that object, so they show the same numbers and nothing runs twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.nn import functional as F

from mnistcnn.artifact import TrainedModel
from mnistcnn.models.fast_path import fast_path_enabled

if TYPE_CHECKING:
    from mnistcnn.evaluation.robustness import RobustnessResult


@dataclass
class Evaluation:
    """The result of one evaluation pass on labelled images.

    Attributes:
        probabilities: float32 (N, C) softmax probabilities (averaged over the
            members of an ensemble), rows summing to 1; on the CPU.
        labels: int64 (N,) true classes.
        loss: mean negative log-likelihood of ``probabilities``, nats per image.
        accuracy: fraction correct, 0..1.
        num_samples: N.
        classes: C class names.
        per_class: one dict per class: ``class``, ``precision``, ``recall``,
            ``f1`` (0..1) and ``support`` (count).
        confusion: int64 (C, C), rows true class, columns predicted class.
        checkpoints: the members' checkpoint paths (``""`` for an in-memory model).
        dataset: the dataset's name.
        precision: the arithmetic the models ran in (``fp32``, ``bf16``, or
            e.g. ``"bf16, fp32"`` for a mixed ensemble).
        report: the ``report.html`` written from this evaluation, if any.
        corruptions: accuracy under MNIST-C's corruptions, if measured
            (:mod:`mnistcnn.evaluation.robustness`).
    """

    probabilities: torch.Tensor
    labels: torch.Tensor
    loss: float
    accuracy: float
    num_samples: int
    classes: list[str]
    per_class: list[dict[str, Any]]
    confusion: torch.Tensor
    checkpoints: list[str] = field(default_factory=list)
    dataset: str = ""
    precision: str = "fp32"
    report: Path | None = None
    corruptions: RobustnessResult | None = None

    def to_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready values (without the per-image probabilities)."""
        record: dict[str, Any] = {
            "loss": self.loss,
            "accuracy": self.accuracy,
            "num_samples": self.num_samples,
            "classes": self.classes,
            "per_class": self.per_class,
            "confusion_matrix": self.confusion.tolist(),
            "checkpoints": self.checkpoints,
            "dataset": self.dataset,
            "precision": self.precision,
        }
        if self.corruptions is not None:
            record["corruptions"] = self.corruptions.to_dict()
        return record

    @property
    def predictions(self) -> torch.Tensor:
        """int64 (N,): the arg-max class of each image."""
        return self.probabilities.argmax(1)


def summarize(probs: torch.Tensor, labels: torch.Tensor, classes: Sequence[str]) -> Evaluation:
    """Loss, accuracy, per-class precision/recall/F1 and confusion matrix (torchmetrics).

    Args:
        probs: float32 (N, C) class probabilities.
        labels: int64 (N,) true classes.
        classes: C class names.

    Raises:
        ValueError: no samples, or ``probs`` and ``classes`` disagree on C.
    """
    from torchmetrics.functional.classification import (
        multiclass_confusion_matrix,
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
    )

    c = len(classes)
    if labels.numel() == 0 or probs.ndim != 2 or probs.shape[1] != c:
        raise ValueError(f"need (N >= 1, {c}) probabilities, got {tuple(probs.shape)}")
    labels = labels.long()
    kw: dict[str, Any] = {"num_classes": c, "average": None}
    precision = multiclass_precision(probs, labels, **kw)
    recall = multiclass_recall(probs, labels, **kw)
    f1 = multiclass_f1_score(probs, labels, **kw)
    confusion = multiclass_confusion_matrix(probs, labels, num_classes=c)
    support = torch.bincount(labels, minlength=c)
    nll = F.nll_loss(probs.clamp_min(1e-12).log(), labels).item()
    per_class = [
        {
            "class": classes[i],
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i in range(c)
    ]
    accuracy = int((probs.argmax(1) == labels).sum()) / labels.numel()
    n = int(labels.numel())
    return Evaluation(probs, labels, nll, accuracy, n, list(classes), per_class, confusion)


@torch.inference_mode()
def model_probabilities(
    model: TrainedModel,
    images: torch.Tensor,
    *,
    batch_size: int = 1000,
    precision: str | None = None,
) -> torch.Tensor:
    """Softmax probabilities (no temperature) of one model over uint8 ``images``: one pass.

    Args:
        model: pixels in [0, 1] in (it normalizes them itself), on its device.
        images: uint8 (N, 28, 28) or (N, 1, 28, 28), 0..255 (converted as
            :class:`~mnistcnn.data.loaders.TensorSource` converts them).
        batch_size: images per forward pass (>= 1).
        precision: ``fp32``/``bf16``; default: the one the model was trained in.

    Returns:
        float32 (N, C) on the CPU, rows summing to 1.

    Raises:
        ValueError: ``batch_size`` < 1 or a bad ``precision``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model.eval()
    device = model.normalize.mean.device
    out = []
    with model.autocast(precision), fast_path_enabled(model):  # no hooks here: fast kernels
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device)
            x = (x.unsqueeze(1) if x.ndim == 3 else x).float().div_(255.0)  # (B, 1, 28, 28)
            out.append(F.softmax(model(x).float(), dim=1).cpu())
    return torch.cat(out)


def evaluate_models(
    models: Sequence[TrainedModel],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 1000,
    precision: str | None = None,
    dataset: str = "",
) -> Evaluation:
    """One pass of each model over ``images``; their mean probabilities, summarized.

    Args:
        models: one model, or an ensemble of models with the same classes.
        images: uint8 (N, 28, 28) 0..255; labels: int64 (N,).
        precision: ``fp32``/``bf16`` for every model; default: each its trained one.

    Raises:
        ValueError: no models, models of different classes, or a bad ``precision``.
    """
    if not models:
        raise ValueError("give at least one model")
    classes = models[0].classes
    if any(m.classes != classes for m in models[1:]):
        raise ValueError("an ensemble needs models of the same classes")
    total: torch.Tensor | None = None
    used = []
    for model in models:
        used.append(precision or model.precision)
        probs = model_probabilities(model, images, batch_size=batch_size, precision=precision)
        total = probs if total is None else total + probs
    assert total is not None
    result = summarize(total / len(models), labels.cpu(), classes)
    result.checkpoints = [str(m.checkpoint.path) if m.checkpoint else "" for m in models]
    result.dataset = dataset
    result.precision = ", ".join(dict.fromkeys(used))
    return result
