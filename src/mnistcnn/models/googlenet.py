"""torchvision GoogLeNet (Inception v1) adapted to 1x28x28 inputs: ``googlenet``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from mnistcnn.models.registry import register_model

if TYPE_CHECKING:
    from torchvision.models import GoogLeNet


def adapt_googlenet(net: GoogLeNet, in_chans: int) -> GoogLeNet:
    """A torchvision GoogLeNet (random weights) for 28x28 images.

    Its stem shrinks 224 to 28 before the first inception block (a 7x7
    stride-2 convolution and two stride-2 max-pools: 8x). Here the stem keeps
    28x28: the first convolution is 3x3 stride 1 (``in_chans`` channels in) and
    ``maxpool1``/``maxpool2`` are dropped, so the inception blocks run at the
    sizes they have on ImageNet (3a-3b at 28, 4a-4e at 14, 5a-5b at 7), and so
    do the auxiliary classifiers (on 4a and 4d, 14x14 maps pooled to 4x4).

    In training mode the network returns torchvision's ``GoogLeNetOutputs(logits,
    aux_logits2, aux_logits1)``; the training loop adds the auxiliary losses with
    weight 0.3 (Szegedy et al. 2015, section 5; :func:`mnistcnn.models.outputs.training_loss`).
    In eval mode it returns the logits only.

    Input float32 (N, in_chans, 28, 28); output logits (N, num_classes).
    """
    from torchvision.models.googlenet import BasicConv2d

    net.conv1 = BasicConv2d(in_chans, 64, kernel_size=3, stride=1, padding=1)
    net.maxpool1 = nn.Identity()
    net.maxpool2 = nn.Identity()
    return net


@register_model(
    "googlenet",
    "torchvision GoogLeNet with a 3x3 stride-1 stem and aux classifiers",
    classifier="fc",
)
def googlenet_28(
    num_classes: int = 10, in_chans: int = 1, imagenet: bool = False, freeze: str = "none"
) -> nn.Module:
    """GoogLeNet (Szegedy et al. 2015) for 28x28 inputs (:func:`adapt_googlenet`).

    ``imagenet=True``: torchvision's ImageNet architecture instead, input resized
    inside, no auxiliary classifiers (:func:`mnistcnn.models.imagenet.imagenet_net`).
    """
    if imagenet:
        from mnistcnn.models.imagenet import imagenet_net

        return imagenet_net("googlenet", num_classes, in_chans, freeze)
    from torchvision.models import googlenet  # here: importing torchvision costs about a second

    net = googlenet(weights=None, num_classes=num_classes, aux_logits=True, init_weights=True)
    return adapt_googlenet(net, in_chans)
