"""The ink-finding step: a grey page -> the cleaned ink of its one character, cropped.

For the ink-based preparations (MNIST, KMNIST, EMNIST), :func:`locate_ink`:

1. a working copy whose longest side is at most ``work_size`` px (area average);
2. :func:`mnistcnn.prepare.ink.ink_map`: background removal, polarity,
   contrast, threshold and denoise; background becomes exactly 0
   (:func:`ink_page` stops here: the cleaned page, every character kept);
3. :func:`mnistcnn.prepare.clutter.isolate`: the one character among borders,
   ruled lines and marks;
4. crop to the ink's bounding box; a character that is small in a large
   picture is found again at full resolution (the crop around it is
   re-processed).

The crop then goes to the crop -> 28x28 step (:mod:`mnistcnn.prepare.fit`).
Fashion-MNIST's product pictures are cropped by :func:`trim_product` instead
(trim to the corners' colour, negate).

A reader of several characters (``prepare/segment.py``) uses :func:`ink_page`
for the whole page and gives each character's crop to the fit step
(:meth:`mnistcnn.prepare.Preparation.fit`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnistcnn.prepare.clutter import isolate
from mnistcnn.prepare.fit import Box, bbox, resize
from mnistcnn.prepare.ink import InkMap, InvertMode, ink_map
from mnistcnn.prepare.settings import PreparationSettings


@dataclass(frozen=True)
class InkCrop:
    """What the ink-finding step found in a grey picture.

    Attributes:
        crop: float32 (h, w) in [0, 1], the character's ink (background 0) at
            the input's resolution or the working one; None when blank.
        box: the crop's box in the input picture, ``(left, top, right,
            bottom)`` in pixels, right/bottom exclusive; None when blank.
        inverted: the picture was dark-on-light (and was flipped to light ink on black).
        size: (width, height) of the input picture in pixels.
    """

    crop: np.ndarray | None
    box: Box | None
    inverted: bool
    size: tuple[int, int]


@dataclass(frozen=True)
class InkPage:
    """The cleaned ink of a whole page (:func:`ink_page`).

    Attributes:
        ink: :class:`~mnistcnn.prepare.ink.InkMap` of the working copy:
            ``ink.strength`` float32 (h, w) in [0, 1], background exactly 0;
            ``ink.inverted`` the polarity.
        scale: input pixels per working pixel (>= 1; 1 when not shrunk).
        size: (width, height) of the input picture in pixels.
    """

    ink: InkMap
    scale: float
    size: tuple[int, int]


def working_copy(gray: np.ndarray, work_size: int) -> tuple[np.ndarray, float]:
    """``gray`` shrunk so its longest side is <= ``work_size``; and input px per working px."""
    h, w = gray.shape
    scale = max(h, w) / work_size
    if scale <= 1:
        return gray, 1.0
    size = (max(1, round(w / scale)), max(1, round(h / scale)))
    return resize(gray, size), scale


def ink_page(
    gray: np.ndarray, invert: InvertMode = "auto", s: PreparationSettings | None = None
) -> InkPage:
    """Steps 1-2 of the module docstring: the cleaned ink of the whole page.

    Args:
        gray: float32 (H, W) in [0, 1], 0 black (:func:`mnistcnn.prepare.pixels.to_grayscale`).
        invert: polarity (``auto``, ``yes``: dark ink, ``no``: light ink).
        s: ``work_size`` and the ink thresholds; the defaults when None.

    Returns:
        :class:`InkPage`: the ink map at working resolution (every character
        and the clutter kept: :func:`mnistcnn.prepare.clutter.isolate` keeps one).
    """
    s = s or PreparationSettings()
    work, scale = working_copy(gray, s.work_size)
    return InkPage(ink_map(work, invert, s.ink), scale, (gray.shape[1], gray.shape[0]))


def _within(crop: np.ndarray, box: Box, near: Box) -> tuple[np.ndarray, Box]:
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
    inner = bbox(part > 0)
    if inner is None:
        return crop, box
    il, it, ir, ib = inner
    out = (nl + math.floor(il / fx), nt + math.floor(it / fy))
    out_box = (*out, nl + math.ceil(ir / fx), nt + math.ceil(ib / fy))
    return part[it:ib, il:ir], out_box


def _find_ink(
    gray: np.ndarray, invert: InvertMode, s: PreparationSettings
) -> tuple[np.ndarray | None, Box | None, bool]:
    """Ink crop (float32, input resolution or the working one), its bbox in ``gray``, inverted."""
    page = ink_page(gray, invert, s)
    ink, scale = page.ink, page.scale
    strength = ink.strength if s.clutter is None else isolate(ink.strength, s.clutter)
    box = bbox(strength > 0)
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
    gray: np.ndarray, invert: InvertMode = "auto", s: PreparationSettings | None = None
) -> InkCrop:
    """Steps 1-4 of the module docstring: the character's cleaned ink, cropped.

    Args:
        gray: float32 (H, W) in [0, 1], 0 black (:func:`mnistcnn.prepare.pixels.to_grayscale`).
        invert: polarity (``auto``, ``yes``: dark ink on light, ``no``: light ink on dark).
        s: working size, ink and clutter thresholds; the defaults when None.

    Returns:
        :class:`InkCrop` (``crop`` None when no ink was found).
    """
    s = s or PreparationSettings()
    crop, box, inverted = _find_ink(gray, invert, s)
    return InkCrop(crop, box, inverted, (gray.shape[1], gray.shape[0]))


def trim_product(gray: np.ndarray, invert: InvertMode, record: Mapping[str, Any]) -> InkCrop:
    """Fashion-MNIST's crop of a product picture (Xiao et al. 2017, section 2).

    The background is the median of the four corner pixels; the picture is
    trimmed to where it differs from it by more than ``trim_tolerance`` (0.05
    of the full range: the paper's "within 5 % of the maximum intensity").
    Negation is taken relative to the background, ``(background - pixel) /
    background`` clipped to [0, 1], which is the paper's ``255 - pixel`` on a
    white background and puts any other paper colour at exactly 0, as the
    dataset's background is; a picture whose corners are dark (light product
    on black, as the dataset's own images) is not negated:
    ``(pixel - background) / (1 - background)``.

    Args:
        gray: float32 (H, W) in [0, 1].
        invert: ``auto`` negates when the corners are light; ``yes`` always,
            ``no`` never.
        record: the preparation record (``trim_tolerance``).

    Returns:
        :class:`InkCrop`: the product float32 (h, w) in [0, 1], background 0
        (``inverted``: it was negated); ``crop`` None when nothing differs
        from the corners.
    """
    tol = float(record.get("trim_tolerance", 0.05))
    h, w = gray.shape
    bg = float(np.median(gray[[0, 0, -1, -1], [0, -1, 0, -1]]))
    negate = invert == "yes" or (invert == "auto" and bg > 0.5)
    if negate:
        product = np.clip((bg - gray) / max(bg, 1e-6), 0, 1)
    else:
        product = np.clip((gray - bg) / max(1.0 - bg, 1e-6), 0, 1)
    found = bbox(np.abs(gray - bg) > tol)
    if found is None:
        return InkCrop(None, None, negate, (w, h))
    left, top, right, bottom = found
    return InkCrop(product[top:bottom, left:right], found, negate, (w, h))
