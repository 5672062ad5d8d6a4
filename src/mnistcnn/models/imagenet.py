"""ImageNet-pretrained torchvision networks adapted to grayscale digits (``--pretrained``).

:func:`imagenet_net` keeps torchvision's architecture as its ImageNet weights
expect it (the 224x224 stems are not touched) and changes three things:

* **one input channel**: the first convolution's RGB kernels are summed into one
  grayscale kernel (``W_gray = W_r + W_g + W_b``), as timm adapts input
  convolutions (``timm.models._manipulate.adapt_input_conv``): a gray picture
  fed as R = G = B gives the same first-layer response;
* **the classifier** (``fc`` of ResNet-50 and GoogLeNet, ``classifier.6`` of
  VGG-19) is a new ``nn.Linear`` for the dataset's classes;
* **the input size**: the 28x28 pixels are resized (bilinear) inside the model
  to :data:`INPUT_SIZES` (ResNet-50 and GoogLeNet: 112, 4x; their global average
  pooling takes any size and 112 costs a quarter of 224; VGG-19: 224, because its
  classifier's first ``Linear(25088, 4096)`` was trained on exactly the 7x7 map a
  224 input gives: at 112 the adaptive pooling would copy a 3x3 map into 7x7).

The ImageNet normalization is inside the model too, as the
:class:`~mnistcnn.artifact.TrainedModel`'s ``Normalize`` buffers
(:func:`imagenet_normalization`). ``freeze="backbone"`` trains only the new
classifier: every other parameter has ``requires_grad=False`` and every
BatchNorm is a ``torchvision.ops.FrozenBatchNorm2d`` (its running statistics
stay ImageNet's: a frozen layer must not drift in train mode either).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models import get_model
from torchvision.ops.misc import FrozenBatchNorm2d

from mnistcnn.config.training import FREEZE_CHOICES
from mnistcnn.errors import SettingError
from mnistcnn.models.weights import (
    TORCHVISION_BUILD_KWARGS,
    check_imagenet_model,
    load_imagenet_state_dict,
)

#: The side the 28x28 input is resized to inside each pretrained model (see the module docstring).
INPUT_SIZES = {"vgg19": 224, "resnet50": 112, "googlenet": 112}
#: Dotted names of the first convolution and of the classifier that is replaced.
FIRST_CONV = {"vgg19": "features.0", "resnet50": "conv1", "googlenet": "conv1.conv"}
CLASSIFIER = {"vgg19": "classifier.6", "resnet50": "fc", "googlenet": "fc"}
#: torchvision's ImageNet mean and std (``weights.transforms()``), RGB, on the 0..1 scale.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ResizedInput(nn.Module):
    """Resize (N, C, h, w) inputs to (N, C, size, size) (bilinear), then run ``net``.

    ``F.interpolate(mode="bilinear", align_corners=False)``, the interpolation of
    torchvision's ImageNet ``Resize``; no antialiasing (it only enlarges 28x28).
    """

    def __init__(self, net: nn.Module, size: int) -> None:
        super().__init__()
        self.size = int(size)
        self.net = net

    def forward(self, x: torch.Tensor) -> Any:
        """float (N, C, h, w) -> what ``net`` returns for (N, C, size, size)."""
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.net(x)

    def extra_repr(self) -> str:
        return f"size={self.size}"


def imagenet_normalization(model: str, in_chans: int = 1) -> tuple[tuple[float, ...], ...]:
    """(mean, std) per input channel that ``model``'s ImageNet weights expect, 0..1 scale.

    VGG-19, ResNet-50: torchvision's ImageNet mean/std; for one channel their
    averages (0.449, 0.226): with summed kernels the gray response is then
    that of R = G = B up to the channels' differences (std 0.224..0.229, mean
    0.406..0.485). GoogLeNet: 0.5, 0.5 (its weights come from the original
    Inception, which took ``(x - 0.5) / 0.5``; torchvision's ``transform_input``
    converts ImageNet-normalized inputs to exactly that), exact for one channel.
    """
    if model == "googlenet":
        return (0.5,) * in_chans, (0.5,) * in_chans
    if in_chans == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    mean, std = round(sum(IMAGENET_MEAN) / 3, 4), round(sum(IMAGENET_STD) / 3, 4)
    return (mean,) * in_chans, (std,) * in_chans


def _set(root: nn.Module, dotted: str, module: nn.Module) -> None:
    parent, _, name = dotted.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def sum_input_channels(conv: nn.Conv2d) -> nn.Conv2d:
    """A copy of ``conv`` taking one channel: its kernels summed over the input channels.

    (C_out, C_in, k, k) -> (C_out, 1, k, k); stride, padding, dilation and bias kept.
    """
    gray = nn.Conv2d(
        1,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        gray.weight.copy_(conv.weight.sum(dim=1, keepdim=True))  # (C_out, 1, k, k)
        if conv.bias is not None and gray.bias is not None:
            gray.bias.copy_(conv.bias)
    return gray


def freeze_backbone(net: nn.Module, keep: str) -> None:
    """Freeze every parameter of ``net`` outside submodule ``keep``; BatchNorms frozen too.

    ``requires_grad=False`` everywhere but ``keep``; every ``nn.BatchNorm2d``
    becomes a ``FrozenBatchNorm2d`` with the same statistics, affine and eps.
    """
    for name, module in list(net.named_modules()):
        if isinstance(module, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
            frozen.load_state_dict(module.state_dict(), strict=False)
            _set(net, name, frozen)
    kept = {id(p) for p in net.get_submodule(keep).parameters()}
    for p in net.parameters():
        p.requires_grad_(id(p) in kept)


def imagenet_net(
    model: str,
    num_classes: int = 10,
    in_chans: int = 1,
    freeze: str = "none",
    state_dict: dict[str, torch.Tensor] | None = None,
) -> nn.Module:
    """torchvision's ``model`` with ImageNet weights, adapted (see the module docstring).

    Args:
        model: ``vgg19``, ``resnet50`` or ``googlenet``.
        num_classes: outputs of the new classifier.
        in_chans: 1 (kernels summed) or 3 (kept).
        freeze: ``none`` or ``backbone`` (only the classifier trains).
        state_dict: torchvision's 1,000-class tensors to start from; None when
            a checkpoint's weights will be loaded over the result anyway.

    Returns:
        A :class:`ResizedInput`: float (N, in_chans, h, w) -> logits (N, num_classes).

    Raises:
        SettingError: unknown ``model`` (setting ``model``), ``freeze`` or ``in_chans``.
    """
    check_imagenet_model(model)
    if freeze not in FREEZE_CHOICES:
        raise SettingError(f"freeze must be none or backbone, got {freeze!r}", setting="freeze")
    if in_chans not in (1, 3):
        raise SettingError(
            f"pretrained models take 1 or 3 channels, got {in_chans}", setting="in_chans"
        )
    kwargs = TORCHVISION_BUILD_KWARGS.get(model, {})
    net = get_model(model, weights=None, num_classes=1000, **kwargs)
    if state_dict is not None:
        net.load_state_dict(state_dict)
    if model == "googlenet":  # as torchvision does after loading: no auxiliary classifiers
        net.aux_logits, net.aux1, net.aux2 = False, None, None
    if in_chans == 1:
        _set(net, FIRST_CONV[model], sum_input_channels(net.get_submodule(FIRST_CONV[model])))
    old = net.get_submodule(CLASSIFIER[model])
    assert isinstance(old, nn.Linear)
    _set(net, CLASSIFIER[model], nn.Linear(old.in_features, num_classes))
    if freeze == "backbone":
        freeze_backbone(net, CLASSIFIER[model])
    return ResizedInput(net, INPUT_SIZES[model])


def pretrained_net(
    model: str,
    num_classes: int,
    *,
    weights: str | os.PathLike[str] | None = None,
    freeze: str = "none",
    download: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """:func:`imagenet_net` started from torchvision's ImageNet weights, and its registry kwargs.

    The weights come from :func:`~mnistcnn.models.weights.locate_weights`
    (``weights`` file, hub cache, download). The kwargs rebuild the same
    architecture from the registry (``create_model(model, **kwargs)``) without
    the ImageNet file, for loading a checkpoint.

    Raises:
        WeightsError (and subclasses): no usable weights file.
        SettingError: as :func:`imagenet_net`.
    """
    check_imagenet_model(model)
    state = load_imagenet_state_dict(model, weights, download=download)
    net = imagenet_net(model, num_classes, 1, freeze, state)
    return net, {"num_classes": num_classes, "in_chans": 1, "imagenet": True, "freeze": freeze}


def torchvision_net(model: str, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """torchvision's ImageNet ``model`` unchanged (1,000 classes, RGB 224x224), from ``state_dict``.

    Built as torchvision's builder builds it for its weights (GoogLeNet with
    ``transform_input=True``: it takes ImageNet-normalized input, and without its
    auxiliary classifiers); for predicting and explaining photos.
    """
    check_imagenet_model(model)
    kwargs = dict(TORCHVISION_BUILD_KWARGS.get(model, {}))
    if model == "googlenet":
        kwargs["transform_input"] = True
    net = get_model(model, weights=None, num_classes=1000, **kwargs)
    net.load_state_dict(state_dict)
    if model == "googlenet":
        net.aux_logits, net.aux1, net.aux2 = False, None, None
    return net
