"""The outlier-exposure loss: digits keep their cross-entropy, outliers learn a uniform softmax.

Hendrycks, Mazeika, Dietterich 2019, "Deep Anomaly Detection with Outlier
Exposure" (ICLR, arXiv:1812.04606), section 3, for classifiers:
``loss = CE(digits) + weight * mean over outliers of CE(uniform, softmax(logits))``,
the cross-entropy from the uniform distribution over the C classes being
``logsumexp(z) - mean(z)`` (:func:`uniform_cross_entropy`; its least value,
log C, is reached by equal logits). The paper uses ``weight = 0.5``.

The outliers arrive in the same batch as the digits, labelled
:data:`mnistcnn.data.outlier_pool.OUTLIER_LABEL`
(:class:`mnistcnn.data.outlier_pool.OutlierMixSource`), and go through the
same forward pass, as in the paper's code (so BatchNorm sees the same mix in
training as its running statistics hold).
"""

from __future__ import annotations

import torch
from torch import nn

from mnistcnn.data.outlier_pool import OUTLIER_LABEL


def uniform_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy from the uniform distribution to ``softmax(logits)``, per sample.

    ``-(1/C) * sum_c log softmax(z)_c = logsumexp(z) - mean(z)``: float (N,) in
    nats, at least ``log C`` (equality when all logits are equal: the softmax is
    then uniform), for logits float (N, C).
    """
    logits = logits.float()
    return torch.logsumexp(logits, 1) - logits.mean(1)


def exposure_loss(
    loss_fn: nn.Module, logits: torch.Tensor, labels: torch.Tensor, weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split a mixed batch and compute the outlier-exposure loss.

    Args:
        loss_fn: the run's cross-entropy (its label smoothing and reduction apply to the digits).
        logits: float (B + K, C) of the mixed batch.
        labels: int64 (B + K,): class indices, then ``OUTLIER_LABEL`` for the K outliers.
        weight: the outlier term's weight (Hendrycks et al.: 0.5), >= 0.

    Returns:
        (digit logits (B, C), digit labels (B,), scalar loss). With
        ``loss_fn.reduction == "sum"`` (distributed runs) the outlier term is
        scaled by B so that it keeps its weight after the division by the
        global digit count.
    """
    inside = labels != OUTLIER_LABEL  # (B + K,) bool
    digits, digit_labels = logits[inside], labels[inside]
    loss = loss_fn(digits, digit_labels)
    outside = logits[~inside]
    if len(outside) and weight > 0:
        term = weight * uniform_cross_entropy(outside).mean()
        summed = getattr(loss_fn, "reduction", "mean") == "sum"
        loss = loss + (term * len(digit_labels) if summed else term)
    return digits, digit_labels, loss
