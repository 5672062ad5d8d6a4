"""``fastcnn``: a small BatchNorm CNN, the ``fast`` recipe's network until ``tinycnn``."""

from __future__ import annotations

import torch
from torch import nn

from mnistcnn.models.layers import conv_bn_relu
from mnistcnn.models.registry import register_model


class FastCNN(nn.Sequential):
    """Three conv-BN-ReLU stages, global max pooling, one linear layer: 24,314 parameters.

    Chosen by experiment for the shortest wall time to 99.0% test accuracy on
    a small CPU (``benchmarks/bench_time_to_accuracy.py``; the candidates tried
    are in ``benchmarks/README.md``): about 2.1 M multiply-adds per image
    forward, and BatchNorm lets it train in one epoch at a high one-cycle
    learning rate.

    Input float32 (N, in_chans, 28, 28); output logits (N, num_classes).

    Shape trace (N omitted)::

        (1, 28, 28) Conv2d 5x5 (pad 2) + BN + ReLU -> (16, 28, 28)   784 * 25 * 16 = 0.31 M MACs
                    MaxPool2d(2)                   -> (16, 14, 14)
                    Conv2d 3x3 (pad 1) + BN + ReLU -> (32, 14, 14)   196 * 144 * 32 = 0.90 M
                    MaxPool2d(2)                   -> (32, 7, 7)
                    Conv2d 3x3 (pad 1) + BN + ReLU -> (64, 7, 7)     49 * 288 * 64 = 0.90 M
                    AdaptiveMaxPool2d(1), Flatten  -> (64,)
                    Linear(64, num_classes)
    """

    def __init__(
        self, num_classes: int = 10, in_chans: int = 1, widths: tuple[int, int, int] = (16, 32, 64)
    ) -> None:
        a, b, c = widths
        super().__init__(
            *conv_bn_relu(in_chans, a, 5),  # (N, a, 28, 28)
            nn.MaxPool2d(2),  # (N, a, 14, 14)
            *conv_bn_relu(a, b),  # (N, b, 14, 14)
            nn.MaxPool2d(2),  # (N, b, 7, 7)
            *conv_bn_relu(b, c),  # (N, c, 7, 7)
            nn.AdaptiveMaxPool2d(1),  # (N, c, 1, 1)
            nn.Flatten(),  # (N, c)
            nn.Linear(c, num_classes),  # (N, num_classes) logits
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, in_chans, 28, 28) -> logits (N, num_classes), the layers in order.

        The argument is named ``x`` as in every registered model, so
        ``torch.export.export(..., dynamic_shapes={"x": {0: batch}})`` works for all.
        """
        return super().forward(x)


@register_model("fastcnn", "Small BatchNorm CNN (3 conv stages, global max pool)", classifier="13")
def fastcnn(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """A small BatchNorm CNN (see :class:`FastCNN`); the ``fast`` recipe now uses ``s2dcnn``."""
    return FastCNN(num_classes=num_classes, in_chans=in_chans)
