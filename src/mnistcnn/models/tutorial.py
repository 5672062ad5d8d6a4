"""The classic MNIST tutorial CNN, layer for layer."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mnistcnn.models.fused_ops import relu_avg_pool2x2
from mnistcnn.models.registry import register_model

#: Smallest batch for which :meth:`TutorialCNN.fast_forward` is used: below it the
#: extra layout conversions cost more than they save (break-even at about 8 images,
#: forward and backward, measured with one thread; benchmarks/README.md).
FAST_MIN_BATCH = 16


class TutorialCNN(nn.Sequential):
    """The tutorial's network exactly: 156,640 parameters for 10 classes.

    Input float32 (N, in_chans, 28, 28); output logits float32 (N, num_classes).

    Shape trace (N omitted)::

        (1, 28, 28) Conv2d(1, 10, 5, padding=2) -> (10, 28, 28)   28 - 5 + 2*2 + 1 = 28
                    ReLU, AvgPool2d(2, 2)       -> (10, 14, 14)
                    Conv2d(10, 20, 5)           -> (20, 10, 10)   14 - 5 + 1 = 10
                    ReLU, AvgPool2d(2, 2)       -> (20, 5, 5)
                    Flatten                     -> (500,)         20 * 5 * 5 = 500
                    Linear(500, 250), ReLU, Linear(250, 100), ReLU, Linear(100, 10)

    On the CPU, for batches of at least ``FAST_MIN_BATCH`` images, :meth:`forward`
    computes the same function faster (see :meth:`fast_forward`) unless a hook
    is registered on the model or a layer (the explain tools and torchinfo then
    see every layer run) or it is being traced.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_chans, 10, kernel_size=5, padding=2),  # (N, 10, 28, 28)
            nn.ReLU(),
            nn.AvgPool2d(kernel_size=2, stride=2),  # (N, 10, 14, 14)
            nn.Conv2d(10, 20, kernel_size=5),  # (N, 20, 10, 10)
            nn.ReLU(),
            nn.AvgPool2d(kernel_size=2, stride=2),  # (N, 20, 5, 5)
            nn.Flatten(),  # (N, 500)
            nn.Linear(20 * 5 * 5, 250),
            nn.ReLU(),
            nn.Linear(250, 100),
            nn.ReLU(),
            nn.Linear(100, num_classes),  # (N, num_classes) logits
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, in_chans, 28, 28) -> logits float (N, num_classes)."""
        small = x.shape[0] < FAST_MIN_BATCH
        if small or x.device.type != "cpu" or torch.jit.is_tracing() or self._hooked():
            return super().forward(x)
        return self.fast_forward(x)

    def fast_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The same function as the layer-by-layer forward, computed faster on the CPU.

        Same parameters, same math, other kernels (measured one step at a time
        in ``benchmarks/README.md``): ReLU + 2x2 average pooling as strided adds
        with a GEMM backward (:func:`~mnistcnn.models.fused_ops.relu_avg_pool2x2`);
        the first convolution in NCHW (oneDNN's channels-last backward of a
        1-channel convolution is slow), the second in channels-last. Equal to the
        plain forward, and its gradients, up to float rounding (tests/test_speed_recipes.py).

        Args:
            x: float (N, in_chans, 28, 28).

        Returns:
            float (N, num_classes) logits, contiguous.
        """
        conv1, conv2 = self[0], self[3]
        cl = torch.channels_last
        w1, w2 = conv1.weight.contiguous(), conv2.weight.contiguous(memory_format=cl)
        h = F.conv2d(x.contiguous(), w1, conv1.bias, padding=conv1.padding)  # (N, 10, 28, 28)
        h = relu_avg_pool2x2(h)  # (N, 10, 14, 14)
        h = F.conv2d(h.contiguous(memory_format=cl), w2, conv2.bias)  # (N, 20, 10, 10)
        h = relu_avg_pool2x2(h)  # (N, 20, 5, 5)
        h = F.relu(self[7](h.flatten(1)))  # (N, 250)
        h = F.relu(self[9](h))  # (N, 100)
        return self[11](h)  # (N, num_classes)

    def _hooked(self) -> bool:
        """True when a module hook (here or global) would miss layers skipped by fast_forward."""
        from torch.nn.modules import module as _module

        global_hooks = (_module._global_forward_hooks, _module._global_forward_pre_hooks)
        if any(global_hooks):
            return True
        return any(m._forward_hooks or m._forward_pre_hooks for m in self.modules())


@register_model(
    "tutorial", "The classic tutorial CNN (2 conv + 3 linear, avg-pool), 156,640 params"
)
def tutorial(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """The classic tutorial CNN."""
    return TutorialCNN(num_classes=num_classes, in_chans=in_chans)
