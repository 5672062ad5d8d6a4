"""torchvision VGG-19 adapted to 1x28x28 inputs: ``vgg19``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from mnistcnn.models.registry import register_model

if TYPE_CHECKING:
    from torchvision.models import VGG


def adapt_vgg(net: VGG, in_chans: int) -> VGG:
    """A torchvision VGG (random weights) for 28x28 images.

    VGG halves the map five times (224 -> 7); on 28x28 the fifth max-pool would
    get a 1x1 map (28 -> 14 -> 7 -> 3 -> 1 -> error). Here the first max-pool
    is dropped, as the ResNets here drop their stem's downsampling: the five
    stages run at 28, 28, 14, 7 and 3 pixels and end at 512x1x1. The 7x7
    adaptive average pooling before the classifier would copy that 1x1 map 49
    times into ``Linear(25088, 4096)``; it is a 1x1 pooling and the first
    linear layer is ``Linear(512, 4096)`` (the rest of torchvision's classifier,
    4096 -> 4096 -> classes with dropout, is kept). The first convolution takes
    ``in_chans`` channels.

    Input float32 (N, in_chans, 28, 28); output logits (N, num_classes).
    """
    first = net.features[0]
    assert isinstance(first, nn.Conv2d)
    net.features[0] = nn.Conv2d(in_chans, first.out_channels, kernel_size=3, padding=1)
    pools = [i for i, m in enumerate(net.features) if isinstance(m, nn.MaxPool2d)]
    net.features[pools[0]] = nn.Identity()  # keeps the indices (and state-dict keys) of the rest
    net.avgpool = nn.AdaptiveAvgPool2d(1)
    fc = net.classifier[0]
    assert isinstance(fc, nn.Linear)
    net.classifier[0] = nn.Linear(512, fc.out_features)
    return net


@register_model(
    "vgg19",
    "torchvision VGG-19 without its first max-pool (28x28 input)",
    classifier="classifier.6",
)
def vgg19_28(
    num_classes: int = 10, in_chans: int = 1, imagenet: bool = False, freeze: str = "none"
) -> nn.Module:
    """VGG-19 (Simonyan & Zisserman 2015, configuration E) for 28x28 inputs (:func:`adapt_vgg`).

    ``imagenet=True``: torchvision's ImageNet architecture instead, input resized
    inside (:func:`mnistcnn.models.imagenet.imagenet_net`; ``freeze`` applies there).
    """
    if imagenet:
        from mnistcnn.models.imagenet import imagenet_net

        return imagenet_net("vgg19", num_classes, in_chans, freeze)
    from torchvision.models import vgg19  # here: importing torchvision costs about a second

    return adapt_vgg(vgg19(weights=None, num_classes=num_classes), in_chans)
