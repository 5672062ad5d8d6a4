"""Find the ink in a grayscale picture: background, polarity, contrast, clean-up.

The model was trained on MNIST: light ink (up to 1.0) on an exactly black (0.0)
background. A user's picture is usually the opposite (dark pen on paper), lit
unevenly, with paper texture, sensor noise and JPEG artefacts. :func:`ink_map`
turns it into an "ink strength" map in [0, 1] whose background is exactly 0:

1. **Background**: a smooth surface (a quadratic in x and y, which models a
   linear lighting gradient or a vignette) fitted robustly: first to the
   border pixels near the picture's median brightness (the paper covers most
   of a picture: a dark frame or table edge along the border is left out; all
   border pixels when few are near it), then re-fitted to every pixel within 2.5 robust standard
   deviations of the surface (the ink are the outliers).
2. **Polarity**: the ink is whichever side (darker or lighter than the
   background) holds more mass beyond the noise; ``invert="yes"``/``"no"``
   force it. "Inverted" means dark-on-light input, flipped to MNIST's polarity.
3. **Contrast**: strength relative to the local paper brightness (dark ink:
   ``(bg - g) / bg``; light ink: ``(g - bg) / (1 - bg)``, i.e. the ink's alpha
   over the local background), so uneven lighting cancels; then stretched so
   that solid ink is 1.0.
4. **Threshold and denoise**: a soft ramp from a low threshold (above the
   noise) to the ink level keeps anti-aliased edges; hysteresis keeps weak
   pixels only where they connect to strong ink, so a thin or faint stroke
   survives while isolated noise and texture specks go to 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

#: Polarity handling: ``auto`` (detect dark-on-light and invert it), ``yes`` (dark ink:
#: always invert), ``no`` (light ink on dark, as MNIST: never).
InvertMode = Literal["auto", "yes", "no"]
INVERT_MODES: tuple[str, ...] = ("auto", "yes", "no")

#: 1.4826 * MAD estimates the standard deviation of Gaussian noise.
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class InkSettings:
    """Thresholds of :func:`ink_map` (all on the 0..1 intensity scale unless noted).

    Attributes:
        min_contrast: ink must differ from the local paper by at least this
            fraction of the available range (12 %: a light pencil line on white
            paper still counts, JPEG ringing and paper grain do not).
        min_abs_contrast: and by at least this much in absolute terms (0.08, about
            20 grey levels), so that a background fitted a little off near
            white (or black), where the relative contrast divides by almost
            nothing, does not turn into ink.
        noise_k: and by at least this many noise standard deviations.
        strong: pixels above this fraction of the ink level seed the hysteresis.
        weak: pixels above this fraction of the ink level (and above the noise)
            are kept when connected to strong ones; also the ramp's zero point.
        ink_level_percentile: percentile of the candidate ink pixels taken as
            "solid ink" (1.0 after stretching).
        min_ink_pixels: fewer candidate pixels than this (at working resolution)
            means the picture is blank.
        fit_size: longest side (px) of the coarse copy the background is fitted on.
        local_background: side of the square of :func:`local_background`, as a
            fraction of the picture's longest side (0: the quadratic fit alone).
        blur, blur_reference: noise is smoothed with a Gaussian of ``blur`` px
            on a picture whose longest side is ``blur_reference`` px, in
            proportion on smaller ones (so a 28x28 MNIST-sized picture is not
            blurred: sigma 0.08 px, below 0.25 px nothing is done).
    """

    min_contrast: float = 0.12
    min_abs_contrast: float = 0.08
    noise_k: float = 4.0
    strong: float = 0.5
    weak: float = 0.2
    ink_level_percentile: float = 90.0
    min_ink_pixels: int = 4
    fit_size: int = 48
    local_background: float = 0.25
    blur: float = 0.7
    blur_reference: int = 256


@dataclass(frozen=True)
class InkMap:
    """Result of :func:`ink_map`.

    Attributes:
        strength: float32 (H, W) in [0, 1]; 0 = background, 1 = solid ink.
        inverted: the picture was dark-on-light (and was flipped).
        ink_found: some ink survived the thresholds (else ``strength`` is all 0).
        background: float32 (H, W), the fitted paper brightness in [0, 1].
        noise: robust standard deviation of the non-ink pixels (0..1 scale).
    """

    strength: np.ndarray
    inverted: bool
    ink_found: bool
    background: np.ndarray
    noise: float


def _design(h: int, w: int) -> np.ndarray:
    """Quadratic surface basis (h*w, 6): 1, x, y, x^2, xy, y^2 with x, y in [-1, 1]."""
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    x, y = xx.ravel(), yy.ravel()
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)


def _coarse(gray: np.ndarray, size: int) -> np.ndarray:
    """Area-averaged copy of ``gray`` whose longest side is at most ``size`` px (at least 2x2)."""
    h, w = gray.shape
    f = max(h, w) / size
    if f <= 1:
        return gray
    small = (max(2, round(w / f)), max(2, round(h / f)))
    img = Image.fromarray(np.ascontiguousarray(gray, np.float32), "F")
    return np.asarray(img.resize(small, Image.Resampling.BOX), np.float32)


def fit_background(gray: np.ndarray, fit_size: int = 48) -> np.ndarray:
    """Robust quadratic fit of the paper brightness.

    Args:
        gray: float32 (H, W) in [0, 1].
        fit_size: longest side of the coarse copy that is fitted.

    Returns:
        float32 (H, W), the fitted background clipped to [0, 1].
    """
    small = _coarse(gray, fit_size).astype(np.float64)
    h, w = small.shape
    a, z = _design(h, w), small.ravel()
    band = max(1, min(h, w) // 12)
    frame = np.zeros((h, w), bool)
    frame[:band], frame[-band:], frame[:, :band], frame[:, -band:] = True, True, True, True
    inl = frame.ravel()
    median = float(np.median(z))
    near = np.abs(z - median) <= max(2.5 * robust_sigma(z), 0.05)  # most pixels: paper
    if (inl & near).sum() >= max(6, inl.sum() // 4):
        inl = inl & near  # the border less what is not paper (a table edge)
    elif abs(float(np.median(z[inl])) - median) > 0.25:
        inl = near  # the border is all something else (a dark frame)
    coef = np.zeros(6)
    for _ in range(6):
        if inl.sum() < 6:
            break
        coef = np.linalg.lstsq(a[inl], z[inl], rcond=None)[0]
        res = z - a @ coef
        mad = np.median(np.abs(res[inl] - np.median(res[inl])))
        new = np.abs(res) <= max(2.5 * _MAD_TO_SIGMA * mad, 0.02)
        if np.array_equal(new, inl):
            break
        inl = new
    full = _surface(coef, *gray.shape)
    return np.clip(full, 0.0, 1.0).astype(np.float32)


def _surface(coef: np.ndarray, h: int, w: int) -> np.ndarray:
    """float64 (h, w): the quadratic ``coef`` of :func:`_design`'s basis on the full grid,
    evaluated row by column (the (h*w, 6) design matrix is never built)."""
    y = np.linspace(-1, 1, h)[:, None]  # (h, 1)
    x = np.linspace(-1, 1, w)[None, :]  # (1, w)
    return coef[0] + coef[1] * x + coef[2] * y + coef[3] * x * x + coef[4] * x * y + coef[5] * y * y


def local_background(
    gray: np.ndarray, fitted: np.ndarray, inverted: bool, fraction: float
) -> np.ndarray:
    """The background where it is darker (lighter) than the fit over wide areas.

    A grey-level closing (dark ink) or opening (light ink) with a flat square
    ``fraction`` of the longest side wide (``scipy.ndimage.grey_closing``) removes
    every feature narrower than the square, strokes included, and keeps what is
    wider: a shadow, a table beyond the page's edge, the page's dark corner. The
    background is the fit where the paper is, and those areas where they are
    (the minimum of the two for dark ink, the maximum for light ink), so they are
    not taken for ink (a morphological background estimate: Gonzalez & Woods,
    "Digital Image Processing", 4th ed., 9.6, the top-hat transformation).

    Args:
        gray: float32 (H, W) in [0, 1].
        fitted: float32 (H, W), :func:`fit_background`'s surface.
        inverted: the ink is dark (closing) rather than light (opening).
        fraction: the square's side over the picture's longest side, in (0, 1].

    Returns:
        float32 (H, W) in [0, 1].
    """
    from scipy import ndimage  # here: a picture already in MNIST's format needs no SciPy

    size = max(3, round(fraction * max(gray.shape)))
    if inverted:
        wide = ndimage.grey_closing(gray, size=(size, size), mode="nearest")
        return np.minimum(fitted, wide).astype(np.float32)
    wide = ndimage.grey_opening(gray, size=(size, size), mode="nearest")
    return np.maximum(fitted, wide).astype(np.float32)


def border_band(shape: tuple[int, int], fraction: float = 0.08) -> np.ndarray:
    """bool (H, W): the outer ``fraction`` of each side (at least 1 px), where paper usually is."""
    h, w = shape
    bh, bw = max(1, round(h * fraction)), max(1, round(w * fraction))
    band = np.ones((h, w), bool)
    band[bh : h - bh, bw : w - bw] = False
    return band


def robust_sigma(values: np.ndarray) -> float:
    """1.4826 * median absolute deviation: the noise std if most values are background."""
    if values.size == 0:
        return 0.0
    return float(_MAD_TO_SIGMA * np.median(np.abs(values - np.median(values))))


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of float32 (H, W); ``sigma`` in px.

    The kernel is truncated at ``ceil(3 sigma)``; borders are mirrored (the edge
    pixel repeated instead when the image is smaller than the kernel's radius).
    Written out rather than ``scipy.ndimage.gaussian_filter``: SciPy sums in
    float64, this in float32, and the last bit of the blurred residual decides
    some threshold comparisons: kept so that prepared pictures stay as they were.
    """
    if sigma <= 0:
        return img
    r = max(1, math.ceil(3 * sigma))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-(x**2) / (2 * sigma * sigma))
    k = (k / k.sum()).astype(np.float32)
    out = np.asarray(img, np.float32)
    h, w = out.shape
    mode: Literal["reflect", "edge"] = "reflect" if min(h, w) > r else "edge"
    p = np.pad(out, ((0, 0), (r, r)), mode=mode)
    out = sum((k[i] * p[:, i : i + w] for i in range(2 * r + 1)), np.zeros((h, w), np.float32))
    p = np.pad(out, ((r, r), (0, 0)), mode=mode)
    return sum((k[i] * p[i : i + h] for i in range(2 * r + 1)), np.zeros((h, w), np.float32))


def hysteresis(weak: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """Pixels of ``weak`` 8-connected (through ``weak``) to a pixel of ``strong``.

    Both bool (H, W). The 8-connected components of ``weak``
    (``scipy.ndimage.label``) that hold a pixel of ``strong & weak`` are kept:
    the geodesic reconstruction of the strong seeds inside ``weak`` (Canny's
    hysteresis; ``skimage.filters.apply_hysteresis_threshold`` does the same
    for two thresholds of one image, with 4-connected components).
    """
    from scipy import ndimage

    labels, n = ndimage.label(weak, structure=np.ones((3, 3), bool))
    if n == 0:
        return np.zeros_like(weak, dtype=bool)
    seeded = np.zeros(n + 1, bool)
    seeded[labels[strong & weak]] = True
    seeded[0] = False
    return seeded[labels]


def choose_polarity(residual: np.ndarray, threshold: float, invert: InvertMode) -> bool:
    """True when the ink is darker than the background (so the picture must be inverted).

    ``auto`` compares the mass of the residual beyond ``threshold`` on each side.
    """
    if invert != "auto":
        return invert == "yes"
    dark = np.clip(-residual - threshold, 0, None).sum()
    light = np.clip(residual - threshold, 0, None).sum()
    return bool(dark > light)


def ink_map(gray: np.ndarray, invert: InvertMode = "auto", s: InkSettings | None = None) -> InkMap:
    """Ink strength of a grayscale picture, background exactly 0 (see the module docstring).

    Args:
        gray: float32 (H, W) in [0, 1] (0 black, 1 white).
        invert: ``auto`` detects dark-on-light; ``yes`` treats dark as ink;
            ``no`` treats light as ink (MNIST's own polarity).
        s: thresholds; the defaults of :class:`InkSettings` when ``None``.
    """
    s = s or InkSettings()
    sigma = s.blur * min(1.0, max(gray.shape) / s.blur_reference)
    sigma = sigma if sigma >= 0.25 else 0.0
    bg = fit_background(gray, s.fit_size)
    residual = gaussian_blur(gray - bg, sigma)
    # the noise of the paper: along the border, or over the whole picture when
    # the border is mostly something else (a dark frame, a table edge)
    noise = min(robust_sigma(residual[border_band(gray.shape)]), robust_sigma(residual))
    inverted = choose_polarity(residual, max(s.noise_k * noise, s.min_contrast / 2), invert)
    if s.local_background > 0:
        bg = local_background(gray, bg, inverted, s.local_background)
        residual = gaussian_blur(gray - bg, sigma)
    paper = np.maximum(bg if inverted else 1.0 - bg, 0.05)  # room the ink has to differ
    strength = (bg - gray if inverted else gray - bg) / paper
    strength = gaussian_blur(np.clip(strength, 0, 1).astype(np.float32), sigma)
    noise_a = noise / float(np.median(paper))
    visible = (-residual if inverted else residual) > s.min_abs_contrast
    cand = (strength > max(s.noise_k * noise_a, s.min_contrast)) & visible
    if cand.sum() < s.min_ink_pixels:
        return InkMap(np.zeros_like(gray), inverted, False, bg, noise)
    level = float(np.percentile(strength[cand], s.ink_level_percentile))
    lo = max(s.weak * level, 2.5 * noise_a)
    hi = max(s.strong * level, s.noise_k * noise_a, s.min_contrast)
    keep = hysteresis(strength > lo, (strength > hi) & visible)
    out = np.clip((strength - lo) / max(level - lo, 1e-6), 0, 1) * keep
    return InkMap(out.astype(np.float32), inverted, bool(keep.any()), bg, noise)
