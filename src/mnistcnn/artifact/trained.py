"""The trained model: an ``nn.Module`` over raw pixels that knows how it must be used.

:class:`TrainedModel` wraps an architecture (``net``) with its input
normalization as buffers (saved with the weights, as torchvision and timm bind
the transforms to the weights), so ``model(images)`` takes pixels on the 0..1
scale and nobody can forget or repeat the normalization. It also carries what
every consumer needs: class names, the dataset's picture preparation, the
calibration temperature, the precision it was trained in and its provenance
(the :class:`~mnistcnn.artifact.schema.Checkpoint` it came from).
``model.prepare(picture)`` makes a picture its input, as torchvision's
``weights.transforms()`` does for its weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from mnistcnn.artifact.model_info import ModelInfo
from mnistcnn.config import PRECISIONS
from mnistcnn.prepare import MNIST_RECORD

if TYPE_CHECKING:
    from mnistcnn.artifact.schema import Checkpoint


def precision_autocast(precision: str, device: torch.device) -> torch.autocast:
    """bfloat16 autocast on CPU/CUDA for ``precision == "bf16"``; a no-op context otherwise.

    Training (forward passes and its per-epoch evaluation) and evaluation both
    use this, so a bf16 model is measured under the rounding it was evaluated
    with during training. Other devices (MPS) always run fp32.

    Raises:
        ValueError: ``precision`` is neither ``"fp32"`` nor ``"bf16"``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
    enabled = precision == "bf16" and device.type in ("cpu", "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


#: Default class names: the ten digits.
DIGITS: tuple[str, ...] = tuple(str(d) for d in range(10))


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, with ``mean``/``std`` as buffers (saved with the weights).

    The float ops of ``torchvision.transforms.Normalize``: a subtraction, then a
    division, so results are bitwise those of normalizing in the data loader.

    Args:
        mean, std: per-channel values on the 0..1 pixel scale; ``std`` > 0.

    Raises:
        ValueError: empty or unequal lengths, or a ``std`` that is not > 0.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if not len(mean) or len(mean) != len(std) or min(std) <= 0:
            raise ValueError(f"normalization needs equal-length mean/std, std > 0: {mean}, {std}")
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, C, H, W) on the 0..1 scale -> float (N, C, H, W) normalized."""
        return (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)


class TrainedModel(ModelInfo, nn.Module):
    """An architecture with its normalization inside, and everything needed to use it.

    ``forward`` takes raw pixels float32 (N, C, 28, 28) in [0, 1] (0 background,
    1 ink for MNIST) and returns logits float32 (N, len(classes)) (no softmax,
    no temperature). The state dict holds ``net.*`` (the architecture's
    weights) and ``normalize.mean`` / ``normalize.std``.

    Attributes:
        net: the architecture (a registered model or the user's own module).
        normalize: the :class:`Normalize` applied first.
        classes: class names, one per logit.
        model_name: registry name (``"custom"`` for a user's own module).
        model_kwargs: arguments the registry builds ``net`` with.
        dataset: the dataset it was trained on (``""`` if unknown).
        input_size: [channels, height, width] it takes.
        preparation: the record of how a picture becomes its input, as the
            checkpoint stores it (``{"method": "mnist", "box": 20, "canvas": 28}``,
            :mod:`mnistcnn.prepare.records`); run it with :meth:`prepare`.
        calibration: the fitted temperature record, or None (not calibrated).
        precision: ``"fp32"`` or ``"bf16"``: the arithmetic it was trained and evaluated in.
        checkpoint: the checkpoint it was loaded from (provenance), or None.
    """

    normalize: Normalize
    net: nn.Module

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
        *,
        classes: Sequence[str] = DIGITS,
        model_name: str = "custom",
        model_kwargs: dict[str, Any] | None = None,
        dataset: str = "",
        input_size: Sequence[int] = (1, 28, 28),
        preparation: dict[str, Any] | None = None,
        calibration: dict[str, Any] | None = None,
        precision: str = "fp32",
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.classes = list(classes)
        self.model_name = model_name
        self.model_kwargs = dict(model_kwargs or {})
        self.dataset = dataset
        self.input_size = list(input_size)
        self.preparation = dict(preparation if preparation is not None else MNIST_RECORD)
        self.calibration = calibration
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        self.checkpoint: Checkpoint | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, C, H, W) pixels in [0, 1] -> logits float (N, num_classes)."""
        return self.net(self.normalize(x))

    @property
    def mean(self) -> list[float]:
        """Per-channel mean subtracted from inputs on the 0..1 scale."""
        return [float(v) for v in self.normalize.mean]

    @property
    def std(self) -> list[float]:
        """Per-channel std inputs are divided by, on the 0..1 scale."""
        return [float(v) for v in self.normalize.std]

    def autocast(self, precision: str | None = None) -> torch.autocast:
        """A context running forward passes in ``precision`` (default: the trained one).

        See :func:`precision_autocast`. Raises ValueError for a precision that
        is neither ``fp32`` nor ``bf16``.
        """
        return precision_autocast(precision or self.precision, self.normalize.mean.device)

    @torch.inference_mode()
    def probabilities(self, images: torch.Tensor, precision: str | None = None) -> torch.Tensor:
        """Calibrated probabilities ``softmax(logits / T)`` of pixels in [0, 1].

        Args:
            images: float (N, C, H, W) in [0, 1], or uint8 (N, H, W) / (N, C, H, W)
                0..255 (divided by 255).
            precision: ``fp32``/``bf16``; default: the trained one.

        Returns:
            float32 (N, C) on the model's device, rows summing to 1.
        """
        x = images
        if x.dtype == torch.uint8:
            x = x.float().div(255.0)
        if x.ndim == 3:
            x = x[:, None]  # (N, 1, H, W)
        self.eval()
        with self.autocast(precision):
            logits = self(x.to(self.normalize.mean.device))
        return F.softmax(logits.float() / self.temperature, dim=1)

    def extra_repr(self) -> str:
        return f"model={self.model_name!r}, dataset={self.dataset!r}, classes={len(self.classes)}"


def model_fields(ckpt: Checkpoint) -> dict[str, Any]:
    """The :class:`TrainedModel` arguments a checkpoint records, beside the network.

    ``mean`` and ``std`` (the normalization), classes, model name and arguments,
    dataset, input size, preparation, calibration and precision: what a loaded
    model carries whether its network is PyTorch's or an exported graph's.
    """
    return {
        "mean": ckpt.mean,
        "std": ckpt.std,
        "classes": ckpt.classes,
        "model_name": ckpt.model_name,
        "model_kwargs": ckpt.model_kwargs,
        "dataset": ckpt.dataset,
        "input_size": ckpt.input_size,
        "preparation": ckpt.preparation,
        "calibration": ckpt.calibration,
        "precision": ckpt.precision,
    }
