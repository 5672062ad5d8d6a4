"""Evaluation: loss and accuracy over every sample, per-class metrics, confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mnistcnn.data.loaders import BatchSource


@torch.inference_mode()
def evaluate_batches(model: nn.Module, source: BatchSource) -> tuple[float, float]:
    """Mean cross-entropy (nats per sample) and accuracy (0..1) over every sample of ``source``.

    Puts ``model`` in eval mode (and leaves it there). Nothing is dropped: a
    short last batch counts like any other.
    """
    loss_sum, correct, seen = batch_sums(model, source)
    if seen == 0:
        raise ValueError("evaluation source yielded no samples")
    return loss_sum / seen, correct / seen


@torch.inference_mode()
def batch_sums(model: nn.Module, source: BatchSource) -> tuple[float, int, int]:
    """(summed cross-entropy in nats, correct count, sample count) over ``source``.

    Puts ``model`` in eval mode. The sums, not the means, so that shards can be
    added up across ranks (:func:`mnistcnn.engine.distributed.evaluate_gathered`).
    """
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    source.set_epoch(0)
    for images, labels in source:
        logits = model(images)  # (B, C)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum").item()
        correct += int((logits.argmax(1) == labels).sum())
        seen += labels.numel()
    return loss_sum, correct, seen


@torch.inference_mode()
def predict_probabilities(
    models: list[nn.Module], source: BatchSource
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities averaged over ``models`` (an ensemble when several).

    Returns (probabilities float32 (N, C) rows summing to 1, labels int64 (N,)),
    both on the CPU, in the source's order.
    """
    for m in models:
        m.eval()
    probs, targets = [], []
    source.set_epoch(0)
    for images, labels in source:
        p = torch.stack([F.softmax(m(images).float(), dim=1) for m in models]).mean(0)
        probs.append(p.cpu())
        targets.append(labels.cpu())
    return torch.cat(probs), torch.cat(targets)


@dataclass
class EvalResult:
    """Test-set results.

    loss: mean negative log-likelihood of the (averaged) probabilities, nats.
    accuracy: fraction correct, 0..1. per_class: one dict per class with
    ``class``, ``precision``, ``recall``, ``f1`` (0..1) and ``support`` (count).
    confusion: int64 (C, C), rows = true class, columns = predicted class.
    precision: the arithmetic the models ran in (``fp32``, ``bf16``, or both
    for a mixed ensemble).
    """

    loss: float
    accuracy: float
    num_samples: int
    classes: list[str]
    per_class: list[dict[str, Any]]
    confusion: torch.Tensor
    checkpoints: list[str] = field(default_factory=list)
    dataset: str = ""
    precision: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        return {
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


def classification_report(
    probs: torch.Tensor, labels: torch.Tensor, classes: list[str]
) -> EvalResult:
    """Loss, accuracy, per-class precision/recall/F1 and confusion matrix (torchmetrics).

    Args:
        probs: float32 (N, C) class probabilities.
        labels: int64 (N,) true classes.
        classes: C class names.
    """
    from torchmetrics.functional.classification import (
        multiclass_confusion_matrix,
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
    )

    c = len(classes)
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
    return EvalResult(nll, accuracy, int(labels.numel()), list(classes), per_class, confusion)
