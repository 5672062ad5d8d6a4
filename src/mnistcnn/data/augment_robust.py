"""The ``robust`` augmentation: what real handwriting and its capture do to a digit, batched.

:class:`HandwritingAugment` changes every image of a batch at once, on the
batch's device, in this order (each step applied to a sample with its own
probability, its strength drawn per sample):

1. **stroke width**: a pen thicker or thinner than MNIST's. Grayscale dilation
   (3x3 max filter) or erosion (3x3 min filter), blended with the original by a
   factor ~ U(0, 1) so that the width changes continuously by up to about one
   pixel each side.
2. **elastic distortion** (Simard, Steinkraus, Platt 2003, "Best Practices for
   Convolutional Neural Networks Applied to Visual Document Analysis", ICDAR,
   section 2): a displacement field of uniform noise in [-1, 1] smoothed by a
   Gaussian of ``elastic_sigma`` px and scaled by ``alpha`` ~ U(0, ``elastic_alpha``)
   px; the paper's values are sigma 4 and alpha 34 for MNIST. Computed by
   :func:`kornia.geometry.transform.elastic_transform2d`.
3. **affine**: rotation ~ U(+-``degrees``), slant (horizontal shear, the
   tangent ~ U(+-``shear``)), scale ~ U(1 +- ``scale``) with the aspect ratio
   changed by a further U(1 +- ``aspect``), shift ~ U(+-``translate``) of the
   image size. One ``affine_grid`` + ``grid_sample``.
4. **blur** (an out-of-focus or low-resolution capture): Gaussian with
   sigma ~ U(0.3, ``blur_sigma``) px (:func:`kornia.filters.gaussian_blur2d`).
5. **contrast**: ink level ~ U(``min_ink``, 1) and paper level ~ U(0,
   ``max_paper``): a faint pen or a grey background.
6. **noise**: additive Gaussian noise with std ~ U(0, ``noise_std``), then
   everything is clipped to [0, 1].

Every random number comes from the CPU :class:`torch.Generator` given to
:meth:`HandwritingAugment.__call__` (kornia's own augmentation classes draw
from the global RNG, so only its functional API is used, with our
parameters): a run is reproducible from ``(seed, epoch)`` as with the other
policies of :mod:`mnistcnn.data.augment`. Images are float (B, C, H, W) on the
0..1 scale, light ink on a dark background (MNIST), before normalization.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from mnistcnn.errors import SettingError


@dataclass(frozen=True)
class HandwritingAugment:
    """Stroke width, elastic distortion, affine, blur, contrast and noise (module docstring).

    Attributes:
        p_stroke: probability of a stroke-width change (half thicker, half thinner), [0, 1].
        p_elastic: probability of an elastic distortion, [0, 1].
        elastic_alpha: largest displacement scale, px (Simard et al.: 34).
        elastic_sigma: smoothing of the displacement field, px (Simard et al.: 4).
        degrees: largest rotation, degrees (>= 0).
        shear: largest slant, as the tangent of the shear angle (>= 0; 0.3 is about 17 degrees).
        scale: largest relative zoom, [0, 1).
        aspect: largest relative change of the width against the height, [0, 1).
        translate: largest shift, fraction of the image size, [0, 1).
        p_blur: probability of a Gaussian blur; blur_sigma: its largest sigma, px (> 0.3).
        p_contrast: probability of a contrast change; min_ink: lowest ink level,
            (0, 1]; max_paper: highest background level, [0, 1).
        p_noise: probability of additive Gaussian noise; noise_std: its largest std, >= 0.
    """

    p_stroke: float = 0.5
    p_elastic: float = 0.5
    elastic_alpha: float = 34.0
    elastic_sigma: float = 4.0
    degrees: float = 12.0
    shear: float = 0.3
    scale: float = 0.15
    aspect: float = 0.15
    translate: float = 0.1
    p_blur: float = 0.2
    blur_sigma: float = 1.2
    p_contrast: float = 0.3
    min_ink: float = 0.4
    max_paper: float = 0.2
    p_noise: float = 0.2
    noise_std: float = 0.15

    def __post_init__(self) -> None:
        probs = (self.p_stroke, self.p_elastic, self.p_blur, self.p_contrast, self.p_noise)
        ok = (
            all(0.0 <= p <= 1.0 for p in probs)
            and self.elastic_alpha >= 0
            and self.elastic_sigma > 0
            and self.degrees >= 0
            and self.shear >= 0
            and 0 <= self.scale < 1
            and 0 <= self.aspect < 1
            and 0 <= self.translate < 1
            and self.blur_sigma > 0.3
            and 0 < self.min_ink <= 1
            and 0 <= self.max_paper < 1
            and self.noise_std >= 0
        )
        if not ok:
            raise ValueError(f"HandwritingAugment: a setting is out of its range: {self}")

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment ``images`` float (B, C, H, W) in [0, 1] -> float (B, C, H, W) in [0, 1].

        Same dtype and device; the random numbers come from ``generator`` (CPU)
        in a fixed order, so the result depends only on the images and the
        generator's state.
        """
        b, _, h, w = images.shape
        dev, dt = images.device, images.dtype
        u = torch.rand(b, 18, generator=generator).to(dev, dt)  # (B, 18) in [0, 1)
        fields = torch.rand(b, 2, h, w, generator=generator).to(dev, dt) * 2 - 1  # (B, 2, H, W)
        noise = torch.randn(b, 1, h, w, generator=generator).to(dev, dt)  # (B, 1, H, W)
        x = self._stroke(images, u[:, 0], u[:, 1], u[:, 2])
        x = self._elastic(x, fields, u[:, 3], u[:, 4])
        x = self._affine(x, u[:, 5:11])
        x = self._blur(x, u[:, 11], u[:, 12])
        x = self._contrast(x, u[:, 13], u[:, 14], u[:, 15])
        std = self.noise_std * u[:, 17] * (u[:, 16] < self.p_noise)  # (B,)
        return (x + noise * std[:, None, None, None]).clamp_(0.0, 1.0)

    def _stroke(
        self, x: torch.Tensor, pick: torch.Tensor, thicker: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        """Blend with a 3x3 dilation (thicker) or erosion (thinner) by t ~ U(0, 1)."""
        chosen = torch.nonzero(pick < self.p_stroke).flatten()  # only these are computed
        if len(chosen) == 0:
            return x
        part = x[chosen]  # (K, C, H, W)
        dilated = F.max_pool2d(part, 3, stride=1, padding=1)
        eroded = -F.max_pool2d(-part, 3, stride=1, padding=1)
        target = torch.where((thicker[chosen] < 0.5)[:, None, None, None], dilated, eroded)
        amount = t[chosen][:, None, None, None]  # (K, 1, 1, 1)
        return x.index_copy(0, chosen, part + amount * (target - part))

    def _elastic(self, x: torch.Tensor, fields: torch.Tensor, pick: torch.Tensor,
                 strength: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """Simard et al.'s elastic distortion with alpha ~ U(0, elastic_alpha) px, per sample."""
        elastic_transform2d = _kornia().geometry.transform.elastic_transform2d
        chosen = torch.nonzero(pick < self.p_elastic).flatten()  # only these are computed
        if len(chosen) == 0:
            return x
        h, w = x.shape[-2:]
        alpha_px = self.elastic_alpha * strength[chosen]  # (K,)
        noise = fields[chosen] * alpha_px[:, None, None, None]  # (K, 2, H, W), px after smoothing
        sigma = self.elastic_sigma
        k = 2 * math.ceil(3 * sigma) + 1  # odd kernel covering +-3 sigma
        # kornia displaces in normalized units (the image spans 2): alpha turns px into them
        warped = elastic_transform2d(
            x[chosen], noise, kernel_size=(k, k), sigma=(sigma, sigma), alpha=(2.0 / w, 2.0 / h)
        )
        return x.index_copy(0, chosen, warped)

    def _affine(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Rotation, slant, anisotropic scale and shift; ``u`` (B, 6) in [0, 1)."""
        s = u * 2 - 1  # (B, 6) in [-1, 1)
        angle = s[:, 0] * math.radians(self.degrees)
        slant = s[:, 1] * self.shear
        zoom = 1.0 + s[:, 2] * self.scale
        stretch = 1.0 + s[:, 3] * self.aspect
        shift = s[:, 4:6] * (2 * self.translate)  # (B, 2), normalized units
        cos, sin = torch.cos(angle), torch.sin(angle)
        one, zero = torch.ones_like(cos), torch.zeros_like(cos)
        rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
        shear = torch.stack([torch.stack([one, slant], 1), torch.stack([zero, one], 1)], 1)
        scaling = torch.diag_embed(torch.stack([zoom * stretch, zoom / stretch], 1))
        forward = rotation @ shear @ scaling  # (B, 2, 2): input -> output coordinates
        inverse = torch.linalg.inv(forward.float()).to(x.dtype)  # grid_sample maps output -> input
        offset = -(inverse @ shift[:, :, None])  # (B, 2, 1)
        theta = torch.cat([inverse, offset], 2)  # (B, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _blur(self, x: torch.Tensor, pick: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
        """Gaussian blur, sigma ~ U(0.3, blur_sigma) px, for the picked samples."""
        gaussian_blur2d = _kornia().filters.gaussian_blur2d
        chosen = pick < self.p_blur
        if not bool(chosen.any()):
            return x
        sigma = 0.3 + strength * (self.blur_sigma - 0.3)  # (B,)
        k = 2 * math.ceil(3 * self.blur_sigma) + 1
        blurred = gaussian_blur2d(x, (k, k), torch.stack([sigma, sigma], 1), border_type="constant")
        return torch.where(chosen[:, None, None, None], blurred, x)

    def _contrast(
        self, x: torch.Tensor, pick: torch.Tensor, ink: torch.Tensor, paper: torch.Tensor
    ) -> torch.Tensor:
        """``paper + x * (ink - paper)``: ink ~ U(min_ink, 1), paper ~ U(0, max_paper)."""
        chosen = (pick < self.p_contrast)[:, None, None, None]
        hi = (self.min_ink + ink * (1 - self.min_ink))[:, None, None, None]
        lo = (paper * self.max_paper)[:, None, None, None]
        lo = torch.minimum(lo, hi * 0.5)  # the ink stays at least twice the paper's level
        return torch.where(chosen, lo + x * (hi - lo), x)


def _kornia() -> Any:
    """The kornia package, or an error that says how to install it."""
    try:
        import kornia
    except ImportError as exc:
        raise SettingError(
            "the robust augmentation needs kornia: pip install 'mnistcnn[robust]' "
            "(or pip install kornia)",
            setting="augment",
        ) from exc
    return kornia
