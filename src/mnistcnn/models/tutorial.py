"""The classic MNIST tutorial CNN, layer for layer, with torchvision-style layer names."""

# no "from __future__ import annotations": torch.jit.script reads the real annotations
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mnistcnn.models.fused_ops import relu_avg_pool2x2
from mnistcnn.models.registry import register_model

#: Smallest batch for which :meth:`TutorialCNN.fast_forward` is used when the
#: fast path is on: below it the extra layout conversions cost more than they save
#: (break-even at about 8 images, forward and backward, measured with one thread;
#: benchmarks/README.md).
FAST_MIN_BATCH = 16

#: Layer names of the parameterized layers in checkpoints written when
#: :class:`TutorialCNN` was an ``nn.Sequential`` (``0.weight``, ...) -> today's names.
LEGACY_LAYER_NAMES = {"0": "conv1", "3": "conv2", "7": "fc1", "9": "fc2", "11": "fc3"}


class TutorialCNN(nn.Module):
    """The tutorial's network exactly: 156,640 parameters for 10 classes.

    Input float32 (N, in_chans, 28, 28); output logits float32 (N, num_classes).
    Other float dtypes work too (the output has the parameters' dtype).

    Shape trace (N omitted)::

        (1, 28, 28) conv1 Conv2d(1, 10, 5, padding=2) -> (10, 28, 28)   28 - 5 + 2*2 + 1 = 28
                    relu1, pool1 AvgPool2d(2, 2)      -> (10, 14, 14)
                    conv2 Conv2d(10, 20, 5)           -> (20, 10, 10)   14 - 5 + 1 = 10
                    relu2, pool2 AvgPool2d(2, 2)      -> (20, 5, 5)
                    flatten                           -> (500,)         20 * 5 * 5 = 500
                    fc1 Linear(500, 250), relu3       -> (250,)
                    fc2 Linear(250, 100), relu4       -> (100,)
                    fc3 Linear(100, num_classes)      -> (num_classes,)

    Layers are named as torchvision names them (``conv1``, ``pool1``, ...,
    ``fc3``). State dicts written when this class was an ``nn.Sequential``
    (keys ``0.weight``, ``3.bias``, ``7.*``, ``9.*``, ``11.*``) still load, also
    with :meth:`load_state_dict` ``strict=True`` and when the model is nested in
    another module (``net.0.weight``): a load pre-hook renames them.

    ``fast_path`` (default False; set it with
    :func:`mnistcnn.models.set_fast_path`): when True, :meth:`forward` computes
    the same function faster with :meth:`fast_forward` on the CPU for batches of
    at least ``FAST_MIN_BATCH`` images. Hooks on the inner layers then do not see
    ``relu*``/``pool*``/``flatten`` run, so the explain tools, torchinfo and
    exporters use the default (off). It is never taken while scripting
    (``torch.jit.script``), tracing (``torch.jit.trace``) or compiling
    (``torch.compile``, ``torch.export``, the ONNX exporter), on other devices,
    or for smaller batches.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1) -> None:
        super().__init__()
        self.fast_path: bool = False  # public; see set_fast_path
        # created in this order so that seeded weights equal the nn.Sequential's
        self.conv1 = nn.Conv2d(in_chans, 10, kernel_size=5, padding=2)  # (N, 10, 28, 28)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.AvgPool2d(kernel_size=2, stride=2)  # (N, 10, 14, 14)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)  # (N, 20, 10, 10)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.AvgPool2d(kernel_size=2, stride=2)  # (N, 20, 5, 5)
        self.flatten = nn.Flatten()  # (N, 500)
        self.fc1 = nn.Linear(20 * 5 * 5, 250)  # (N, 250)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(250, 100)  # (N, 100)
        self.relu4 = nn.ReLU()
        self.fc3 = nn.Linear(100, num_classes)  # (N, num_classes) logits
        self.register_load_state_dict_pre_hook(_rename_legacy_keys)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, in_chans, 28, 28) -> logits float (N, num_classes).

        Raises:
            RuntimeError: ``x`` has another shape (from the layer that cannot take it).
        """
        if not torch.jit.is_scripting() and self._takes_fast_path(x):
            return self.fast_forward(x)
        x = self.pool1(self.relu1(self.conv1(x)))  # (N, 10, 14, 14)
        x = self.pool2(self.relu2(self.conv2(x)))  # (N, 20, 5, 5)
        x = self.flatten(x)  # (N, 500)
        x = self.relu3(self.fc1(x))  # (N, 250)
        x = self.relu4(self.fc2(x))  # (N, 100)
        return self.fc3(x)  # (N, num_classes)

    @torch.jit.unused
    def _takes_fast_path(self, x: torch.Tensor) -> bool:
        """True when :meth:`forward` may use :meth:`fast_forward` for ``x``.

        The batch size is read last: while tracing or exporting it may be a
        symbolic size, and comparing it would specialize the graph to it.
        """
        return (
            self.fast_path
            and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling()
            and x.device.type == "cpu"
            and x.shape[0] >= FAST_MIN_BATCH
        )

    @torch.jit.unused
    def fast_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The same function as the layer-by-layer forward, computed faster on the CPU.

        Same parameters, same math, other kernels (measured one step at a time
        in ``benchmarks/README.md``): ReLU + 2x2 average pooling as strided adds
        with a GEMM backward (:func:`~mnistcnn.models.fused_ops.relu_avg_pool2x2`);
        the first convolution in NCHW (oneDNN's channels-last backward of a
        1-channel convolution is slow), the second in channels-last. Equal to the
        plain forward, and its gradients, up to float rounding (tests/test_speed_recipes.py).
        Forward hooks of the inner layers do not run (the ``conv*`` and ``fc*``
        modules are not called, their parameters are used directly). Not
        scriptable (``torch.jit.script`` compiles :meth:`forward` without it).

        Args:
            x: float (N, in_chans, 28, 28), any batch size and device.

        Returns:
            float (N, num_classes) logits, contiguous.

        Raises:
            RuntimeError: ``x`` has another shape.
        """
        cl = torch.channels_last
        w1 = self.conv1.weight.contiguous()
        w2 = self.conv2.weight.contiguous(memory_format=cl)
        h = F.conv2d(x.contiguous(), w1, self.conv1.bias, padding=self.conv1.padding)
        h = relu_avg_pool2x2(h)  # (N, 10, 14, 14)
        h = F.conv2d(h.contiguous(memory_format=cl), w2, self.conv2.bias)  # (N, 20, 10, 10)
        h = relu_avg_pool2x2(h)  # (N, 20, 5, 5)
        h = F.relu(F.linear(h.flatten(1), self.fc1.weight, self.fc1.bias))  # (N, 250)
        h = F.relu(F.linear(h, self.fc2.weight, self.fc2.bias))  # (N, 100)
        return F.linear(h, self.fc3.weight, self.fc3.bias)  # (N, num_classes)


def _rename_legacy_keys(
    module: nn.Module,
    state_dict: dict[str, Any],
    prefix: str,
    local_metadata: dict[str, Any],
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """Load pre-hook: ``{prefix}0.weight`` -> ``{prefix}conv1.weight`` etc. (in place).

    Only keys under this module's ``prefix`` are renamed (the model may be
    nested, e.g. ``net.0.weight``), and only when the new name is not in the
    state dict too (then the old key stays and ``strict=True`` reports it as
    unexpected).
    """
    for key in [k for k in state_dict if k.startswith(prefix)]:
        layer, dot, rest = key[len(prefix) :].partition(".")
        if dot and layer in LEGACY_LAYER_NAMES:
            new = f"{prefix}{LEGACY_LAYER_NAMES[layer]}.{rest}"
            if new not in state_dict:
                state_dict[new] = state_dict.pop(key)


@register_model(
    "tutorial", "The classic tutorial CNN (2 conv + 3 linear, avg-pool)", classifier="fc3"
)
def tutorial(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """The classic tutorial CNN (see :class:`TutorialCNN`)."""
    return TutorialCNN(num_classes=num_classes, in_chans=in_chans)
