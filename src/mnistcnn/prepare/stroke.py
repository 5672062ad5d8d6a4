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


def _morph(ink: np.ndarray, radius: int, grow: bool) -> np.ndarray:
    """Grey-level dilation (``grow``) or erosion by an octagon of ``radius`` px.

    Alternates a 3x3 square and a 3x3 cross (together they approximate a disk).
    Outside the image counts as background for dilation and is ignored for erosion.
    """
    t = np.asarray(ink, np.float32)
    if not grow:
        t = -t
    h, w = t.shape
    square = [(dy, dx) for dy in range(3) for dx in range(3)]
    cross = [(1, 1), (0, 1), (2, 1), (1, 0), (1, 2)]
    for i in range(radius):
        p = np.pad(t, 1, constant_values=-np.inf)
        t = np.max([p[dy : dy + h, dx : dx + w] for dy, dx in (square if i % 2 == 0 else cross)], 0)
    return t if grow else -t


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
