"""Stroke width: measure it, and bring it into MNIST's range.

MNIST digits were written with pens: in the 20x20 box their strokes are about
2.5 px wide (median over the training set; 5th-95th percentile 1.7-3.9 px,
estimated as below). A bold font, a marker or a thick brush on a drawing
canvas gives strokes twice as wide, which fills the loops of 6, 8, 9 and 0;
a fine pen in a large picture gives hairlines that anti-aliasing fades away.
:func:`normalize_stroke` erodes (or dilates) the ink by a whole number of
pixels so that the estimated width lands inside MNIST's range.

The width is estimated as ``2 * area / perimeter`` of the ink thresholded at
0.5 (a stroke of width ``w`` and length ``L`` has area ``w L`` and perimeter
about ``2 L``); the perimeter is the count of ink/background pixel edges
times pi/4, the mean ratio of a curve's length to its city-block length.
"""

from __future__ import annotations

import math

import numpy as np


def stroke_width(ink: np.ndarray) -> float:
    """Estimated stroke width of float (H, W) ink in [0, 1], in pixels (0.0 if no ink)."""
    m = np.pad(ink > 0.5, 1)
    area = int(m.sum())
    edges = int((m[:, 1:] != m[:, :-1]).sum() + (m[1:] != m[:-1]).sum())
    if edges == 0:
        return 0.0
    return 2.0 * area / (edges * math.pi / 4)


#: The two 3x3 structuring elements :func:`_morph` alternates (together they approximate a disk).
_SQUARE = np.ones((3, 3), bool)
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)


def _morph(ink: np.ndarray, radius: int, grow: bool) -> np.ndarray:
    """Grey-level dilation (``grow``) or erosion by an octagon of ``radius`` px.

    Alternates a 3x3 square and a 3x3 cross (together they approximate a disk),
    ``scipy.ndimage.grey_dilation`` / ``grey_erosion``; outside the image is
    ignored (``mode="nearest"``: with a 3x3 element the nearest pixel is in the
    window already).
    """
    from scipy import ndimage  # here: a picture already in MNIST's format needs no SciPy

    t = np.asarray(ink, np.float32)
    op = ndimage.grey_dilation if grow else ndimage.grey_erosion
    for i in range(radius):
        t = op(t, footprint=_SQUARE if i % 2 == 0 else _CROSS, mode="nearest")
    return t


def dilate_disk(ink: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation of float (H, W) by a disk of ``radius`` px; outside the image counts as 0.

    The disk: the offsets (dy, dx) with ``hypot(dy, dx) <= radius``
    (``scipy.ndimage.grey_dilation``). Same shape and dtype as ``ink``.
    """
    from scipy import ndimage

    offsets = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = np.hypot(*offsets) <= radius  # (2r + 1, 2r + 1)
    return ndimage.grey_dilation(ink, footprint=disk, mode="constant", cval=0.0)


def normalize_stroke(ink: np.ndarray, low: float, high: float) -> np.ndarray:
    """Erode or dilate ``ink`` so its :func:`stroke_width` moves into ``[low, high]`` px.

    Args:
        ink: float32 (H, W) in [0, 1], background 0.
        low, high: accepted widths in pixels of ``ink``'s own resolution.

    Returns:
        float32 (H + 2p, W + 2p): padded by ``p`` px on every side so that
        dilation never clips; unchanged (but padded) when already in range.
        Erosion never removes all ink: it stops one step before that would happen.
    """
    w = stroke_width(ink)
    pad = max(1, math.ceil(max(low - w, 0) / 2) + 1)
    out = np.pad(ink.astype(np.float32), pad)
    if w == 0 or low <= w <= high:
        return out
    target = (low + high) / 2
    radius = max(1, round(abs(w - target) / 2))
    grow = w < low
    for r in range(radius, 0, -1):
        res = _morph(out, r, grow)
        if grow or (res > 0.5).any():
            return res
    return out
