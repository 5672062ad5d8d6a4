"""The classic MNIST tutorial CNN, layer for layer."""

from __future__ import annotations

from torch import nn

from mnistcnn.models.registry import register_model


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


@register_model(
    "tutorial", "The classic tutorial CNN (2 conv + 3 linear, avg-pool), 156,640 params"
)
def tutorial(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """The classic tutorial CNN."""
    return TutorialCNN(num_classes=num_classes, in_chans=in_chans)
