"""torchvision ResNets adapted to 1x28x28 inputs: ``resnet18``, ``resnet34``, ``resnet50``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import nn

from mnistcnn.models.registry import register_model

if TYPE_CHECKING:
    from torchvision.models import ResNet

# torchvision is imported inside the factories: ``import torchvision`` costs about a
# second (it loads torch._dynamo through torchvision.ops), which a run of the small
# networks never needs.


def adapt_resnet(builder: Callable[..., ResNet], num_classes: int, in_chans: int) -> ResNet:
    """A torchvision ResNet (random weights) with a stem for 28x28 images.

    The ImageNet stem (7x7 stride-2 convolution, then 3x3 stride-2 max pooling)
    would shrink 28x28 to 7x7 before the first residual stage; here it is a 3x3
    stride-1 convolution and no pooling, so the four stages run at 28, 14, 7
    and 4 pixels (the CIFAR adaptation of He et al. 2016, section 4.2).

    Input float32 (N, in_chans, 28, 28); output logits (N, num_classes).
    """
    model = builder(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


@register_model("resnet18", "torchvision ResNet-18 with a 3x3 stride-1 stem", classifier="fc")
def resnet18_28(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """ResNet-18 for 28x28 inputs (see :func:`adapt_resnet`)."""
    from torchvision.models import resnet18

    return adapt_resnet(resnet18, num_classes, in_chans)


@register_model("resnet34", "torchvision ResNet-34 with a 3x3 stride-1 stem", classifier="fc")
def resnet34_28(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """ResNet-34 for 28x28 inputs (see :func:`adapt_resnet`)."""
    from torchvision.models import resnet34

    return adapt_resnet(resnet34, num_classes, in_chans)


@register_model("resnet50", "torchvision ResNet-50 with a 3x3 stride-1 stem", classifier="fc")
def resnet50_28(
    num_classes: int = 10, in_chans: int = 1, imagenet: bool = False, freeze: str = "none"
) -> nn.Module:
    """ResNet-50 for 28x28 inputs (see :func:`adapt_resnet`; bottleneck stages at 28, 14, 7, 4).

    ``imagenet=True``: torchvision's ImageNet architecture instead, input resized
    inside (:func:`mnistcnn.models.imagenet.imagenet_net`; ``freeze`` applies there).
    """
    if imagenet:
        from mnistcnn.models.imagenet import imagenet_net

        return imagenet_net("resnet50", num_classes, in_chans, freeze)
    from torchvision.models import resnet50

    return adapt_resnet(resnet50, num_classes, in_chans)
