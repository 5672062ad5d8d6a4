"""``tinycnn``: ``fastcnn``'s layers with unpadded convolutions and pooling first.

The ``fast`` recipe's network until ``s2dcnn`` (chosen for the whole command's time to 99%
(``benchmarks/README.md``, "Time to 99%")): the same 24,314 parameters as ``fastcnn``,
but each convolution is unpadded and each 2x2 max-pool comes straight after its
convolution, before BatchNorm and ReLU, so that those two run on a quarter of the
values (max-pooling commutes with ReLU and with BatchNorm's per-channel affine map
whenever its scale is positive; where it is not, this is simply another network).
On a small CPU the element-wise passes over the 28x28 maps, not the multiply-adds,
are most of a step: a training step of 256 images costs 0.45x ``fastcnn``'s.
"""

from __future__ import annotations

import torch
from torch import nn

from mnistcnn.models.registry import register_model


class TinyCNN(nn.Sequential):
    """Three convolution stages (valid padding), global max pooling, one linear layer.

    Input float32 (N, in_chans, 28, 28); output logits (N, num_classes).

    Shape trace (N omitted), multiply-adds per image::

        (1, 28, 28) Conv2d 5x5            -> (16, 24, 24)   576 * 25 * 16 = 0.23 M
                    MaxPool2d(2), BN, ReLU -> (16, 12, 12)
                    Conv2d 3x3            -> (32, 10, 10)   100 * 144 * 32 = 0.46 M
                    MaxPool2d(2), BN, ReLU -> (32, 5, 5)
                    Conv2d 3x3, BN, ReLU  -> (64, 3, 3)     9 * 288 * 64 = 0.17 M
                    AdaptiveMaxPool2d(1), Flatten -> (64,)
                    Linear(64, num_classes)
    """

    def __init__(
        self, num_classes: int = 10, in_chans: int = 1, widths: tuple[int, int, int] = (16, 32, 64)
    ) -> None:
        a, b, c = widths
        super().__init__(
            nn.Conv2d(in_chans, a, 5, bias=False),  # (N, a, 24, 24); BN's shift is the bias
            nn.MaxPool2d(2),  # (N, a, 12, 12)
            nn.BatchNorm2d(a),
            nn.ReLU(inplace=True),
            nn.Conv2d(a, b, 3, bias=False),  # (N, b, 10, 10)
            nn.MaxPool2d(2),  # (N, b, 5, 5)
            nn.BatchNorm2d(b),
            nn.ReLU(inplace=True),
            nn.Conv2d(b, c, 3, bias=False),  # (N, c, 3, 3)
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool2d(1),  # (N, c, 1, 1)
            nn.Flatten(),  # (N, c)
            nn.Linear(c, num_classes),  # (N, num_classes) logits
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, in_chans, 28, 28) -> logits (N, num_classes), the layers in order."""
        return super().forward(x)


@register_model(
    "tinycnn", "fastcnn with unpadded convolutions, pooling before BN+ReLU", classifier="13"
)
def tinycnn(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """``fastcnn`` with pooling first (see :class:`TinyCNN`); the ``fast`` recipe now uses
    ``s2dcnn``."""
    return TinyCNN(num_classes=num_classes, in_chans=in_chans)
