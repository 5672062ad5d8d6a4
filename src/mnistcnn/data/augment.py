"""Batched, seeded data augmentation on the training device.

:class:`RandomAffine` warps a whole batch at once with one
``affine_grid`` + ``grid_sample`` call: a random rotation, translation and
isotropic scale per sample. No per-sample Python or PIL work, so it runs where
the batch lives (CPU or GPU).

The random parameters come from a CPU :class:`torch.Generator` that the batch
source seeds from ``(seed, epoch)`` (see :func:`augment_generator`), so a run
is reproducible and independent of the global RNG. Augmentation is applied to
training batches only; evaluation sources never get one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

#: Augmentation names accepted by ``TrainConfig.augment``.
AUGMENTATIONS = ("none", "affine")


def augment_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator for the augmentation of ``epoch``.

    Seeded with ``seed * 1_000_003 + epoch + 0x5EED_0000``: independent of the
    data order's generator (:func:`mnistcnn.data.loaders.epoch_permutation`) and
    of the global RNG.
    """
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch + 0x5EED_0000)


@dataclass(frozen=True)
class RandomAffine:
    """Random rotation, translation and scale of every image in a batch.

    Per sample: angle ~ U(-degrees, degrees) (degrees), shift ~ U(-translate,
    translate) of the image size along each axis, scale ~ U(1 - scale, 1 + scale).
    Bilinear sampling; pixels from outside the image are 0, so apply it on the
    0..1 scale *before* normalization (background stays black).

    Attributes:
        degrees: largest rotation, degrees (>= 0).
        translate: largest shift as a fraction of width/height, in [0, 1).
        scale: largest relative zoom, in [0, 1).
    """

    degrees: float = 10.0
    translate: float = 0.1
    scale: float = 0.1

    def __post_init__(self) -> None:
        if self.degrees < 0 or not 0 <= self.translate < 1 or not 0 <= self.scale < 1:
            raise ValueError(
                f"RandomAffine needs degrees >= 0, translate and scale in [0, 1); got "
                f"degrees={self.degrees}, translate={self.translate}, scale={self.scale}"
            )

    def matrices(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """float32 (n, 2, 3) sampling matrices (output -> input, normalized coordinates)."""
        u = torch.rand(n, 4, generator=generator) * 2 - 1  # (n, 4) in [-1, 1)
        angle = u[:, 0] * math.radians(self.degrees)
        zoom = 1.0 + u[:, 1] * self.scale
        # grid_sample maps output to input coordinates: the inverse of the forward warp
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        shift = u[:, 2:] * (2 * self.translate)  # a fraction f of the size is 2f in [-1, 1] units
        theta = torch.stack(
            [
                torch.stack([cos, -sin, shift[:, 0]], dim=1),
                torch.stack([sin, cos, shift[:, 1]], dim=1),
            ],
            dim=1,
        )  # (n, 2, 3)
        return theta

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Warp ``images`` float (B, C, H, W) -> float (B, C, H, W), same dtype and device."""
        theta = self.matrices(len(images), generator).to(images.device, images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, H, W, 2)
        return F.grid_sample(
            images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )


def build_augment(
    name: str, *, degrees: float = 10.0, translate: float = 0.1, scale: float = 0.1
) -> RandomAffine | None:
    """The augmentation called ``name`` (``none`` gives ``None``).

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    if name == "none":
        return None
    if name == "affine":
        return RandomAffine(degrees=degrees, translate=translate, scale=scale)
    raise ValueError(f"unknown augmentation {name!r}; valid: {', '.join(AUGMENTATIONS)}")
