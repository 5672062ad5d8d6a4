"""Networks whose training-mode output is more than logits (GoogLeNet's auxiliary classifiers).

The convention, torchvision's: in training mode such a network returns a named
tuple whose first field is the main logits and whose other fields are auxiliary
logits of the same shape (``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``);
in eval mode it returns the logits tensor. :func:`training_loss` is the one
place the training loop handles it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

#: Weight of each auxiliary classifier's loss (Szegedy et al. 2015, "Going deeper
#: with convolutions", section 5: "weighted by 0.3").
AUX_LOSS_WEIGHT = 0.3


def split_logits(output: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(main logits (N, C), auxiliary logits [(N, C), ...]) of a network's output.

    A tensor is the logits with no auxiliaries; a tuple's first item is the
    logits and its other non-None items the auxiliaries.
    """
    if isinstance(output, torch.Tensor):
        return output, []
    logits, *aux = output
    return logits, [a for a in aux if a is not None]


def training_loss(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    output: Any,
    labels: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(main logits (N, C), loss to minimize): ``loss(logits) + 0.3 * sum(loss(aux))``.

    ``labels``: int64 (N,). For a plain logits tensor this is ``loss_fn(output, labels)``.
    """
    logits, aux = split_logits(output)
    loss = loss_fn(logits, labels)
    for extra in aux:
        loss = loss + AUX_LOSS_WEIGHT * loss_fn(extra, labels)
    return logits, loss
