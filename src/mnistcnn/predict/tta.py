"""Test-time augmentation (TTA): a few small shifts and rotations of the prepared 28x28 image.

A model trained without augmentation answers a digit one pixel off centre, or
a few degrees tilted, a little differently; averaging the probabilities of a
few such views of each picture (Krizhevsky et al. 2012, "ImageNet
Classification with Deep Convolutional Neural Networks", section 4.1: the
average over ten patches at test time; Simonyan & Zisserman 2015, section 3.2)
evens that out. Here the views are of the *prepared* image (the 28x28 uint8
the model sees, white ink on black): :data:`DEFAULT_VIEWS`, chosen by
measurement (docs/ensembles.md).

Each view is one affine map of the whole batch through
:func:`torchvision.transforms.v2.functional.affine` (bilinear, zero fill,
centre of rotation the image centre); uint8 in, uint8 out (rounded), like any
28x28 picture. Whole-pixel shifts are exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF


@dataclass(frozen=True)
class View:
    """One test-time view of a prepared image.

    Attributes:
        dx: shift right, whole pixels (negative: left).
        dy: shift down, whole pixels (negative: up).
        angle: rotation in degrees, clockwise (the convention of
            :func:`torchvision.transforms.v2.functional.affine`), about the image centre.
    """

    dx: int = 0
    dy: int = 0
    angle: float = 0.0

    @property
    def name(self) -> str:
        """``identity``, ``shift(+1,0)`` (dx, dy in pixels), ``rotate(-8)`` (degrees), or both."""
        parts = []
        if self.dx or self.dy:
            parts.append(f"shift({self.dx:+d},{self.dy:+d})")
        if self.angle:
            parts.append(f"rotate({self.angle:+g})")
        return " ".join(parts) or "identity"

    @property
    def identity(self) -> bool:
        """True when the view leaves the image unchanged."""
        return not (self.dx or self.dy or self.angle)


#: The identity alone: the same probabilities as without TTA.
IDENTITY: tuple[View, ...] = (View(),)

#: ``--tta``: the image itself and one pixel right, left, down and up (5 views,
#: 5x the model work). Chosen among ten sets (shifts of 1 or 2 px, rotations of
#: 5 to 15 degrees, and combinations) on generated pictures of seeds 1 and 2,
#: not the reported seed 0 nor the MNIST test set: the cheapest set with a gain
#: for single models; rotations added nothing measurable (docs/ensembles.md;
#: ``benchmarks/bench_ensemble_tta.py --candidates``).
DEFAULT_VIEWS: tuple[View, ...] = (View(), View(dx=1), View(dx=-1), View(dy=1), View(dy=-1))


def apply_views(images: np.ndarray, views: Sequence[View]) -> np.ndarray:
    """Every view of every image, view-major.

    Args:
        images: uint8 (N, 28, 28) (or any (N, H, W)), 0 background .. 255 ink.
        views: the views; an identity view gives the images themselves.

    Returns:
        uint8 (len(views) * N, H, W): rows ``v * N .. (v + 1) * N - 1`` are view
        ``v`` of the N images, in order; pixels moved in from outside are 0.

    Raises:
        ValueError: no views, or images that are not (N, H, W).
    """
    if not views:
        raise ValueError("give at least one view")
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W), got shape {images.shape}")
    x = torch.from_numpy(np.ascontiguousarray(images, np.uint8))[:, None]  # (N, 1, H, W)
    out = []
    for v in views:
        if v.identity:
            out.append(x)
            continue
        out.append(
            TF.affine(
                x,
                angle=float(v.angle),
                translate=[int(v.dx), int(v.dy)],
                scale=1.0,
                shear=[0.0, 0.0],
                interpolation=InterpolationMode.BILINEAR,
                fill=0.0,
            )
        )
    return torch.cat(out)[:, 0].numpy()  # (V * N, H, W)
