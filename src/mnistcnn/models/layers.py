"""Building blocks shared by the BatchNorm CNNs (``fastcnn``, ``bncnn``)."""

from __future__ import annotations

from torch import nn


def conv_bn_relu(in_chans: int, out_chans: int, kernel_size: int = 3) -> list[nn.Module]:
    """``Conv2d`` (no bias, 'same' padding) + ``BatchNorm2d`` + ``ReLU``.

    Keeps the spatial size (odd ``kernel_size``, padding ``kernel_size // 2``);
    the convolution has no bias because BatchNorm's shift replaces it.
    Parameters: ``in * out * k * k`` (conv) + ``2 * out`` (BatchNorm affine).
    """
    return [
        nn.Conv2d(in_chans, out_chans, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_chans),
        nn.ReLU(inplace=True),
    ]
