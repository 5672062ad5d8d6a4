"""Batched, seeded data augmentation on the training device.

:class:`RandomAffine` warps a whole batch at once with one
``affine_grid`` + ``grid_sample`` call: a random rotation, translation,
isotropic scale and (optionally) horizontal mirror per sample.
:class:`RandomErasing` blanks one random rectangle per sample with a mask built
by broadcasting. No per-sample Python or PIL work, so both run where the batch
lives (CPU or GPU).

Three policies (``TrainConfig.augment``): ``affine`` for handwriting (small
rotations, shifts and zooms; never mirrors: a mirrored 2 or 7 is not a digit),
and ``affine-flip-erase`` for clothing and other photographed objects
(Fashion-MNIST): mirrors, shifts and zooms plus random erasing; ``robust``
(:mod:`mnistcnn.data.augment_robust`) for digits as people write and photograph
them: stroke width, elastic distortion, slant, scale, shift, blur, contrast, noise.

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

from mnistcnn.config import AUGMENTATIONS  # the names TrainConfig.augment accepts
from mnistcnn.data.augment_robust import HandwritingAugment


def augment_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator for the augmentation of ``epoch``.

    Seeded with ``seed * 1_000_003 + epoch + 0x5EED_0000``: independent of the
    data order's generator (:func:`mnistcnn.data.loaders.epoch_permutation`) and
    of the global RNG.
    """
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch + 0x5EED_0000)


@dataclass(frozen=True)
class RandomAffine:
    """Random rotation, translation, scale and mirror of every image in a batch.

    Per sample: angle ~ U(-degrees, degrees) (degrees), shift ~ U(-translate,
    translate) of the image size along each axis, scale ~ U(1 - scale, 1 + scale),
    and with probability ``hflip`` a left-right mirror. Bilinear sampling;
    pixels from outside the image are 0, so apply it on the 0..1 scale *before*
    normalization (background stays black).

    Attributes:
        degrees: largest rotation, degrees (>= 0).
        translate: largest shift as a fraction of width/height, in [0, 1).
        scale: largest relative zoom, in [0, 1).
        hflip: probability of a horizontal mirror, in [0, 1] (0: never; the
            random numbers of the other parameters are drawn first, so
            ``hflip=0`` gives bitwise the warps of earlier versions).
    """

    degrees: float = 10.0
    translate: float = 0.1
    scale: float = 0.1
    hflip: float = 0.0

    def __post_init__(self) -> None:
        if (
            self.degrees < 0
            or not 0 <= self.translate < 1
            or not 0 <= self.scale < 1
            or not 0 <= self.hflip <= 1
        ):
            raise ValueError(
                f"RandomAffine needs degrees >= 0, translate and scale in [0, 1), hflip in "
                f"[0, 1]; got degrees={self.degrees}, translate={self.translate}, "
                f"scale={self.scale}, hflip={self.hflip}"
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
        if self.hflip > 0:
            # mirror the output x axis: input = A @ diag(-1, 1) @ output, i.e. negate column 0
            flip = torch.rand(n, generator=generator) < self.hflip
            theta[:, :, 0] = torch.where(flip[:, None], -theta[:, :, 0], theta[:, :, 0])
        return theta

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Warp ``images`` float (B, C, H, W) -> float (B, C, H, W), same dtype and device."""
        theta = self.matrices(len(images), generator).to(images.device, images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, H, W, 2)
        return F.grid_sample(
            images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )


@dataclass(frozen=True)
class RandomErasing:
    """Blank one random rectangle in each image of a batch (Zhong et al. 2017).

    "Random Erasing Data Augmentation" (AAAI 2020, arXiv:1708.04896), the
    defaults of ``torchvision.transforms.RandomErasing`` (which erases the
    same rectangle in every image of a batched tensor; this one draws one per
    sample): with probability ``p`` an image gets a rectangle of area
    ~ U(area) of the image and aspect ratio (h / w) log-uniform in ``ratio``,
    placed uniformly where it fits, set to ``value`` (0: black, the MNIST-family
    background, before normalization).

    Attributes:
        p: probability that an image is erased, in [0, 1].
        area: (smallest, largest) erased fraction of the image, 0 < lo <= hi <= 1.
        ratio: (smallest, largest) aspect ratio h / w, 0 < lo <= hi.
        value: the fill value (same scale as the images).
    """

    p: float = 0.5
    area: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)
    value: float = 0.0

    def __post_init__(self) -> None:
        (a0, a1), (r0, r1) = self.area, self.ratio
        if not (0 <= self.p <= 1 and 0 < a0 <= a1 <= 1 and 0 < r0 <= r1):
            raise ValueError(
                f"RandomErasing needs p in [0, 1], 0 < area[0] <= area[1] <= 1 and "
                f"0 < ratio[0] <= ratio[1]; got p={self.p}, area={self.area}, ratio={self.ratio}"
            )

    def masks(self, n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
        """bool (n, 1, height, width): True where each image is erased (CPU)."""
        u = torch.rand(n, 5, generator=generator)  # (n, 5) in [0, 1)
        erase = u[:, 0] < self.p
        area = (self.area[0] + u[:, 1] * (self.area[1] - self.area[0])) * height * width
        log_r0, log_r1 = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_r0 + u[:, 2] * (log_r1 - log_r0))
        h = torch.sqrt(area * aspect).round().clamp(1, height).long()  # (n,) pixels
        w = torch.sqrt(area / aspect).round().clamp(1, width).long()
        top = (u[:, 3] * (height - h + 1)).long()  # uniform over the places it fits
        left = (u[:, 4] * (width - w + 1)).long()
        rows, cols = torch.arange(height), torch.arange(width)
        in_rows = (rows[None, :] >= top[:, None]) & (rows[None, :] < (top + h)[:, None])
        in_cols = (cols[None, :] >= left[:, None]) & (cols[None, :] < (left + w)[:, None])
        mask = in_rows[:, :, None] & in_cols[:, None, :] & erase[:, None, None]  # (n, H, W)
        return mask[:, None]

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Erase ``images`` float (B, C, H, W) -> float (B, C, H, W), same dtype and device."""
        b, _, height, width = images.shape
        mask = self.masks(b, height, width, generator).to(images.device)
        return images.masked_fill(mask, self.value)


@dataclass(frozen=True)
class Compose:
    """Apply ``steps`` in order, each with the same generator."""

    steps: tuple[RandomAffine | RandomErasing, ...]

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """float (B, C, H, W) -> float (B, C, H, W)."""
        for step in self.steps:
            images = step(images, generator)
        return images


def build_augment(
    name: str, *, degrees: float = 10.0, translate: float = 0.1, scale: float = 0.1
) -> RandomAffine | Compose | HandwritingAugment | None:
    """The augmentation called ``name`` (``none`` gives ``None``).

    * ``affine``: :class:`RandomAffine` with ``degrees``, ``translate``, ``scale``
      (handwriting: never mirrored).
    * ``affine-flip-erase``: the same warp plus a horizontal mirror with
      probability 0.5, then :class:`RandomErasing` with its defaults (p 0.5):
      for clothing and other objects whose mirror image is the same class.
    * ``robust``: :class:`~mnistcnn.data.augment_robust.HandwritingAugment` with
      ``degrees``, ``translate``, ``scale`` and its other defaults: stroke width,
      elastic distortion, slant, aspect, blur, contrast and noise (handwriting
      as people write and photograph it).

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    if name == "none":
        return None
    if name == "affine":
        return RandomAffine(degrees=degrees, translate=translate, scale=scale)
    if name == "affine-flip-erase":
        warp = RandomAffine(degrees=degrees, translate=translate, scale=scale, hflip=0.5)
        return Compose((warp, RandomErasing()))
    if name == "robust":
        return HandwritingAugment(degrees=degrees, translate=translate, scale=scale)
    raise ValueError(f"unknown augmentation {name!r}; valid: {', '.join(AUGMENTATIONS)}")
