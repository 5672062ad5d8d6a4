"""``s2dcnn``: a space-to-depth stem, then three 3x3 convolutions; the ``fast`` recipe's network.

Chosen for the whole ``mnistcnn train --recipe fast`` command's time to 99 %
(``benchmarks/README.md``, "Time to 99 %"). A small CPU spends most of a training
step of the earlier ``tinycnn`` on its first stage: a 5x5 convolution over the
24x24 positions of a one-channel picture, then max pooling over a 16-channel 24x24
feature map, both far from the arithmetic rate of the machine. Here each 2x2 block
of pixels is first stacked into 4 channels (space-to-depth, ``nn.PixelUnshuffle(2)``:
the picture's information unchanged, at 14x14), so the first convolution works on
144 positions and its pooling on a 12x12 map: 0.40 M multiply-adds per image
against ``tinycnn``'s 0.86 M, and a training step about half the CPU time, for the
same held-out accuracy after one epoch. The stem is TResNet's "SpaceToDepth" (Ridnik
et al., 2021, https://arxiv.org/abs/2003.13630) at block size 2.
"""

from __future__ import annotations

import torch
from torch import nn

from mnistcnn.models.registry import register_model


def _bn_relu(channels: int) -> tuple[nn.Module, nn.Module]:
    return nn.BatchNorm2d(channels), nn.ReLU(inplace=True)


class S2DCNN(nn.Sequential):
    """Space-to-depth, three 3x3 convolutions (valid padding), global max pooling, a linear layer.

    Input float32 (N, in_chans, H, W) with H and W even and at least 24 (28x28 for
    MNIST); output logits (N, num_classes). Convolutions have no bias: the
    BatchNorm after each holds the shift.

    Shape trace for 28x28 (N omitted), multiply-adds per image::

        (1, 28, 28) PixelUnshuffle(2)     -> (4, 14, 14)
                    Conv2d 3x3            -> (24, 12, 12)   144 * 36 * 24  = 0.12 M
                    MaxPool2d(2), BN, ReLU -> (24, 6, 6)
                    Conv2d 3x3, BN, ReLU  -> (48, 4, 4)     16 * 216 * 48  = 0.17 M
                    Conv2d 3x3, BN, ReLU  -> (64, 2, 2)     4 * 432 * 64   = 0.11 M
                    AdaptiveMaxPool2d(1), Flatten -> (64,)
                    Linear(64, num_classes)

    39,802 parameters for 10 classes.
    """

    def __init__(
        self, num_classes: int = 10, in_chans: int = 1, widths: tuple[int, int, int] = (24, 48, 64)
    ) -> None:
        a, b, c = widths
        super().__init__(
            nn.PixelUnshuffle(2),  # (N, 4 * in_chans, 14, 14): each 2x2 block as channels
            nn.Conv2d(4 * in_chans, a, 3, bias=False),  # (N, a, 12, 12)
            nn.MaxPool2d(2),  # (N, a, 6, 6)
            *_bn_relu(a),
            nn.Conv2d(a, b, 3, bias=False),  # (N, b, 4, 4)
            *_bn_relu(b),
            nn.Conv2d(b, c, 3, bias=False),  # (N, c, 2, 2)
            *_bn_relu(c),
            nn.AdaptiveMaxPool2d(1),  # (N, c, 1, 1)
            nn.Flatten(),  # (N, c)
            nn.Linear(c, num_classes),  # (N, num_classes) logits
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, in_chans, H, W) -> logits (N, num_classes), the layers in order."""
        return super().forward(x)


@register_model(
    "s2dcnn",
    "space-to-depth stem, three 3x3 convolutions, global max pool (the fast recipe's)",
    classifier="13",
)
def s2dcnn(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """The ``fast`` recipe's network (see :class:`S2DCNN`)."""
    return S2DCNN(num_classes=num_classes, in_chans=in_chans)
