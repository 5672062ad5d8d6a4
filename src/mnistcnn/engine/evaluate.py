"""Per-epoch evaluation inside training: loss and accuracy over every sample of a source.

The full evaluation of a trained model (probabilities, per-class metrics,
confusion matrix) is :mod:`mnistcnn.evaluation`."""

from __future__ import annotations

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
