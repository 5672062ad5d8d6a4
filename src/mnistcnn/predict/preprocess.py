"""Turn any picture of one digit into a 28x28 image the way MNIST was made.

MNIST (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to
document recognition", section III-A; and http://yann.lecun.com/exdb/mnist/):
the NIST digits were "size normalized to fit in a 20x20 pixel box while
preserving their aspect ratio", anti-aliased, then "centered in a 28x28 image
by computing the center of mass of the pixels, and translating the image so as
to position this point at the center of the 28x28 field".

:func:`preprocess_image` does the same to a user's picture:

1. :func:`to_grayscale`: EXIF orientation; palette, 16-bit, CMYK, ... modes;
   transparency composited onto white (onto black for light ink on a
   transparent canvas, so the drawing stays visible); luma.
2. A working copy whose longest side is at most ``work_size`` px (area average).
3. :func:`mnistcnn.predict.ink.ink_map`: background removal, polarity,
   contrast, threshold and denoise; background becomes exactly 0.
4. Crop to the ink's bounding box; a digit that is small in a large picture is
   found again at full resolution (the crop around it is re-processed).
5. Stroke width (:mod:`mnistcnn.predict.stroke`): the crop is scaled so its
   longer side is ``box * upsample`` px, and eroded or dilated until its
   stroke width is ``stroke`` (2-3 px at 20 px, MNIST's range) times ``upsample``.
6. Resize so that the longer side is 20 px, keeping the aspect ratio (area
   averaging when shrinking, which is exact anti-aliasing; bicubic when growing).
7. Paste into 28x28 so that the intensity-weighted centre of mass lands on
   pixel (14, 14) (row, column; pixel ``i`` has coordinate ``i``). That is
   where MNIST's centres of mass are: on the first 10,000 training images the
   mean is (14.00, 14.00) with standard deviation 0.29 = 1/sqrt(12), i.e. an
   integer shift, as done here; the remaining error is at most 0.5 px per axis.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from mnistcnn._io import upright
from mnistcnn.predict.clutter import ClutterSettings, isolate
from mnistcnn.predict.ink import InkSettings, InvertMode, ink_map
from mnistcnn.predict.stroke import normalize_stroke

INVERT_MODES: tuple[str, ...] = ("auto", "yes", "no")


@dataclass(frozen=True)
class PreprocessSettings:
    """Geometry of :func:`preprocess_image` (pixels) and the ink thresholds.

    Attributes:
        field: output side, 28 (MNIST).
        box: side of the box the digit is fitted into, 20 (MNIST).
        center: target of the centre of mass, (row, col) = (14.0, 14.0): measured
            on MNIST's training images (see the module docstring).
        work_size: longest side of the working copy the ink is searched in.
        refine_below: when the ink's box is shorter than this at working
            resolution and the picture was shrunk, redo steps 2-4 on a crop.
        stroke: (low, high) stroke width in px of the ``box``-sized digit that
            step 5 brings the ink into; None skips step 5. MNIST's strokes are
            2.5 px wide (median; 5th-95th percentile 1.7-3.9 px, see
            :mod:`mnistcnn.predict.stroke`).
        upsample: step 5 works at ``upsample`` times the box size, so that
            erosion moves in quarter-pixel steps of the final image.
        ink: thresholds of :func:`~mnistcnn.predict.ink.ink_map`.
        clutter: thresholds of :func:`~mnistcnn.predict.clutter.isolate`, which
            keeps the one character among borders, lines and marks; None keeps all ink.
        centring: ``"mass"`` moves the centre of mass to ``center`` (MNIST);
            ``"box"`` puts the fitted box in the middle of the field.
    """

    field: int = 28
    box: int = 20
    center: tuple[float, float] = (14.0, 14.0)
    work_size: int = 256
    refine_below: int = 64
    stroke: tuple[float, float] | None = (2.0, 3.0)
    upsample: int = 4
    ink: InkSettings = dataclasses.field(default_factory=InkSettings)
    clutter: ClutterSettings | None = dataclasses.field(default_factory=ClutterSettings)
    centring: Literal["mass", "box"] = "mass"


@dataclass(frozen=True)
class PreprocessResult:
    """What :func:`preprocess_image` produced, and how.

    Attributes:
        image: uint8 (28, 28), 0 background .. 255 solid ink (MNIST's polarity).
            All zeros when no ink was found.
        inverted: the input was dark-on-light and was inverted.
        ink_found: False for a blank picture (nothing above the noise).
        bbox: the ink's bounding box in the (EXIF-rotated) input, in pixels,
            ``(left, top, right, bottom)`` with right/bottom exclusive; None if blank.
        center_of_mass: (row, col) of the result's intensity centre, pixel ``i``
            at coordinate ``i``; None if blank.
        size: (width, height) of the (EXIF-rotated) input in pixels.
    """

    image: np.ndarray
    inverted: bool
    ink_found: bool
    bbox: tuple[int, int, int, int] | None
    center_of_mass: tuple[float, float] | None
    size: tuple[int, int]


def _flatten_alpha(img: Image.Image) -> Image.Image:
    """RGB(A)/LA/PA image -> RGB composited onto white (black if the visible ink is light)."""
    rgba = img.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), np.float32) / 255
    luma = np.asarray(rgba.convert("L"), np.float32) / 255
    visible = float(alpha.sum())
    light_ink = visible > 0 and float((luma * alpha).sum()) / visible > 0.5 and alpha.min() < 0.5
    backdrop = Image.new("RGBA", rgba.size, (0, 0, 0, 255) if light_ink else (255,) * 4)
    return Image.alpha_composite(backdrop, rgba).convert("RGB")


def to_grayscale(img: Image.Image) -> np.ndarray:
    """Upright grayscale copy of any Pillow image: float32 (H, W) in [0, 1], 0 black.

    Handles EXIF orientation, transparency (alpha or palette transparency),
    1-bit, palette, 16-bit (``I;16``, ``I``), float (``F``), CMYK, YCbCr, LAB
    and HSV images; animated images give their current (first) frame.
    Colour is reduced to ITU-R 601 luma (Pillow's ``L``).
    """
    img = upright(img)
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img, np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if mode == "F" and arr.max(initial=0) <= 1.0:
            top = 1.0
        return np.clip(arr / top, 0, 1).astype(np.float32)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or img.mode == "RGBA":
        img = _flatten_alpha(img)
    elif img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    return np.asarray(img.convert("L"), np.float32) / 255


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize float32 (H, W) to (width, height) = ``size``: area average down, bicubic up."""
    h, w = arr.shape
    shrink = size[0] <= w and size[1] <= h
    method = Image.Resampling.BOX if shrink else Image.Resampling.BICUBIC
    out = Image.fromarray(np.ascontiguousarray(arr, np.float32), "F").resize(size, method)
    return np.clip(np.asarray(out, np.float32), 0, 1)


def _working_copy(gray: np.ndarray, work_size: int) -> tuple[np.ndarray, float]:
    """``gray`` shrunk so its longest side is <= ``work_size``; and input px per working px."""
    h, w = gray.shape
    scale = max(h, w) / work_size
    if scale <= 1:
        return gray, 1.0
    size = (max(1, round(w / scale)), max(1, round(h / scale)))
    return _resize(gray, size), scale


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom), right/bottom exclusive, of the True pixels of bool (H, W)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def center_of_mass(image: np.ndarray) -> tuple[float, float] | None:
    """Intensity-weighted (row, col) centre of (H, W); pixel ``i`` at coordinate ``i``."""
    w = image.astype(np.float64)
    total = w.sum()
    if total <= 0:
        return None
    rows, cols = np.arange(w.shape[0]), np.arange(w.shape[1])
    return float((w.sum(1) * rows).sum() / total), float((w.sum(0) * cols).sum() / total)


def fit_and_center(crop: np.ndarray, s: PreprocessSettings) -> np.ndarray:
    """Fit ink float32 (h, w) in [0, 1] into ``box``x``box`` (aspect kept) and centre it.

    Returns float32 (field, field) in [0, 1]; the centre of mass is moved to
    ``s.center`` by an integer shift, limited so that no ink leaves the field.
    """
    if s.stroke is not None:
        h, w = crop.shape
        f = s.box * s.upsample / max(h, w)
        big = _resize(crop, (max(1, round(w * f)), max(1, round(h * f))))
        big = normalize_stroke(big, s.stroke[0] * s.upsample, s.stroke[1] * s.upsample)
        box = _bbox(big > 0)
        if box is not None:
            crop = big[box[1] : box[3], box[0] : box[2]]
    h, w = crop.shape
    f = s.box / max(h, w)
    patch = _resize(crop, (max(1, round(w * f)), max(1, round(h * f))))
    com = center_of_mass(patch)
    ph, pw = patch.shape
    if com is None:
        return np.zeros((s.field, s.field), np.float32)
    if s.centring == "box":  # the box in the middle (Fashion-MNIST, EMNIST)
        top, left = (s.field - ph) // 2, (s.field - pw) // 2
    else:
        top = int(np.clip(round(s.center[0] - com[0]), 0, s.field - ph))
        left = int(np.clip(round(s.center[1] - com[1]), 0, s.field - pw))
    out = np.zeros((s.field, s.field), np.float32)
    out[top : top + ph, left : left + pw] = patch
    return out


def _within(
    crop: np.ndarray, box: tuple[int, int, int, int], near: tuple[int, int, int, int]
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The part of ``crop`` (the ink inside ``box``) that lies inside box ``near``, trimmed.

    Boxes are (left, top, right, bottom) in the same pixel coordinates; ``crop``
    may have another resolution than ``box``. Unchanged if nothing would be left.
    """
    sl, st, sr, sb = box
    nl, nt = max(sl, near[0]), max(st, near[1])
    nr, nb = min(sr, near[2]), min(sb, near[3])
    fy, fx = crop.shape[0] / max(sb - st, 1), crop.shape[1] / max(sr - sl, 1)
    y0, y1 = round((nt - st) * fy), round((nb - st) * fy)
    x0, x1 = round((nl - sl) * fx), round((nr - sl) * fx)
    part = crop[y0:y1, x0:x1] if nl < nr and nt < nb else crop[:0]
    inner = _bbox(part > 0)
    if inner is None:
        return crop, box
    il, it, ir, ib = inner
    out = (nl + math.floor(il / fx), nt + math.floor(it / fy))
    out_box = (*out, nl + math.ceil(ir / fx), nt + math.ceil(ib / fy))
    return part[it:ib, il:ir], out_box


def _find_ink(
    gray: np.ndarray, invert: InvertMode, s: PreprocessSettings
) -> tuple[np.ndarray | None, tuple[int, int, int, int] | None, bool]:
    """Ink crop (float32, input resolution or the working one), its bbox in ``gray``, inverted."""
    work, scale = _working_copy(gray, s.work_size)
    ink = ink_map(work, invert, s.ink)
    strength = ink.strength if s.clutter is None else isolate(ink.strength, s.clutter)
    box = _bbox(strength > 0)
    if box is None:
        return None, None, ink.inverted
    left, t, r, b = box
    full = (
        int(left * scale),
        int(t * scale),
        min(gray.shape[1], round(r * scale)),
        min(gray.shape[0], round(b * scale)),
    )
    if scale > 1 and max(r - left, b - t) < s.refine_below:
        mode: InvertMode = "yes" if ink.inverted else "no"
        fl, ft, fr, fb = full
        m = max(fr - fl, fb - ft)  # margin: one digit size on every side
        ox, oy = max(0, fl - m), max(0, ft - m)
        sub = gray[oy : min(gray.shape[0], fb + m), ox : min(gray.shape[1], fr + m)]
        crop, sub_box, _ = _find_ink(sub, mode, s)
        if crop is not None and sub_box is not None:
            if s.clutter is not None:  # no further than the character found at first
                pad = math.ceil(2 * scale)
                near = (fl - pad - ox, ft - pad - oy, fr + pad - ox, fb + pad - oy)
                crop, sub_box = _within(crop, sub_box, near)
            sl, st, sr, sb = sub_box
            return crop, (sl + ox, st + oy, sr + ox, sb + oy), ink.inverted
    return strength[t:b, left:r], full, ink.inverted


def locate_ink(
    image: Image.Image, invert: InvertMode, s: PreprocessSettings
) -> tuple[np.ndarray | None, tuple[int, int, int, int] | None, bool, tuple[int, int]]:
    """Steps 1-4 of the module docstring: the character's ink, cropped.

    Returns:
        ``(crop, bbox, inverted, size)``: float32 (h, w) ink in [0, 1] (None
        when blank), its box ``(left, top, right, bottom)`` in the upright
        input, whether the input was dark-on-light, and the input's (width, height).
    """
    gray = to_grayscale(image)
    crop, box, inverted = _find_ink(gray, invert, s)
    return crop, box, inverted, (gray.shape[1], gray.shape[0])


def preprocess_image(
    image: Image.Image, invert: InvertMode = "auto", settings: PreprocessSettings | None = None
) -> PreprocessResult:
    """Make an MNIST-like 28x28 image from a picture of one digit (see the module docstring).

    Args:
        image: any Pillow image (mode, size, orientation and transparency are handled).
        invert: ``auto`` (detect dark-on-light and invert it), ``yes`` (dark
            ink: always invert), ``no`` (light ink on dark, as MNIST: never).
        settings: geometry and thresholds; :class:`PreprocessSettings` defaults.

    Returns:
        :class:`PreprocessResult` with the uint8 (28, 28) image and diagnostics.

    Raises:
        ValueError: ``invert`` is not one of ``auto``, ``yes``, ``no``.
    """
    if invert not in INVERT_MODES:
        raise ValueError(f"invert must be one of {', '.join(INVERT_MODES)}, got {invert!r}")
    s = settings or PreprocessSettings()
    crop, box, inverted, size = locate_ink(image, invert, s)
    if crop is None:
        blank = np.zeros((s.field, s.field), np.uint8)
        return PreprocessResult(blank, inverted, False, None, None, size)
    out = np.round(fit_and_center(crop, s) * 255).astype(np.uint8)
    return PreprocessResult(out, inverted, True, box, center_of_mass(out), size)
