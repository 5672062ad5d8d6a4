"""``bncnn``: a VGG-style BatchNorm CNN, the ``best`` recipe's network."""

from __future__ import annotations

import torch
from torch import nn

from mnistcnn.models.layers import conv_bn_relu
from mnistcnn.models.registry import register_model


class BNCNN(nn.Sequential):
    """Five 3x3 conv-BN-ReLU layers in three stages, global average pooling, linear.

    278,890 parameters for 10 classes; about 22 M multiply-adds per image forward. A
    modern small CNN in the VGG style (Simonyan & Zisserman 2015) with
    BatchNorm (Ioffe & Szegedy 2015) after every convolution and global average
    pooling (Lin et al. 2014, "Network in Network") instead of large linear layers.

    Input float32 (N, in_chans, 28, 28); output logits (N, num_classes).

    Shape trace (N omitted)::

        (1, 28, 28)   conv 3x3 + BN + ReLU          -> (32, 28, 28)
                      MaxPool2d(2)                  -> (32, 14, 14)
                      2 x (conv 3x3 + BN + ReLU)    -> (64, 14, 14)
                      MaxPool2d(2)                  -> (64, 7, 7)
                      2 x (conv 3x3 + BN + ReLU)    -> (128, 7, 7)
                      AdaptiveAvgPool2d(1), Flatten -> (128,)
                      Dropout(p), Linear(128, num_classes)
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        widths: tuple[int, int, int] = (32, 64, 128),
        dropout: float = 0.1,
    ) -> None:
        a, b, c = widths
        super().__init__(
            *conv_bn_relu(in_chans, a),  # (N, a, 28, 28)
            nn.MaxPool2d(2),  # (N, a, 14, 14)
            *conv_bn_relu(a, b),
            *conv_bn_relu(b, b),  # (N, b, 14, 14)
            nn.MaxPool2d(2),  # (N, b, 7, 7)
            *conv_bn_relu(b, c),
            *conv_bn_relu(c, c),  # (N, c, 7, 7)
            nn.AdaptiveAvgPool2d(1),  # (N, c, 1, 1)
            nn.Flatten(),  # (N, c)
            nn.Dropout(dropout),
            nn.Linear(c, num_classes),  # (N, num_classes) logits
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, in_chans, 28, 28) -> logits (N, num_classes), the layers in order.

        The argument is named ``x`` as in every registered model, so
        ``torch.export.export(..., dynamic_shapes={"x": {0: batch}})`` works for all.
        """
        return super().forward(x)


@register_model("bncnn", "VGG-style BatchNorm CNN (5 conv, GAP, linear)", classifier="20")
def bncnn(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """The ``best`` recipe's network (see :class:`BNCNN`)."""
    return BNCNN(num_classes=num_classes, in_chans=in_chans)


@register_model("bncnn-wide", "bncnn at 1.5x width (48/96/192 channels)", classifier="20")
def bncnn_wide(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """:class:`BNCNN` with widths (48, 96, 192): 625,690 parameters for 10 classes.

    About 2.25x the multiply-adds of ``bncnn`` (~50 M per image forward). Tried
    for Fashion-MNIST (15 epochs of the ``best-fashion`` settings: 92.45%, no
    better than ``bncnn`` for 20 epochs at half the cost; benchmarks/README.md).
    """
    return BNCNN(num_classes=num_classes, in_chans=in_chans, widths=(48, 96, 192))
