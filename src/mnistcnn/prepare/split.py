"""Cut touching and overlapping digits apart, the classifier choosing the cuts.

Recognition-driven segmentation (Casey & Lecolinet 1996, section 4,
"recognition-based" dissection with an over-segmentation lattice; the same
scheme as LeCun et al. 1998, section V, "heuristic over-segmentation"):

1. The glyph's ink is deslanted (each row shifted by the line's slant), so the
   gaps between digits run vertically.
2. **Candidate cuts**: seams, and in a glyph wider than ``straight_from`` x
   ``H`` straight vertical cuts every ``straight`` x ``H`` (plain dissection,
   for digits whose strokes interleave). A **seam**
   is the path from the top row to the bottom row that crosses the least ink,
   moving at most one column per row and staying within ``reach`` x ``H`` of
   its start (dynamic programming, as in seam carving: Avidan & Shamir 2007),
   so a cut follows the valley between two overlapping digits instead of a
   straight line through them; the seams kept are the local minima of that
   cost over the start columns (at most ``max_cuts``).
3. Every run of pieces between two seams whose ink is between ``min_width`` and
   ``max_width`` x ``H`` wide is shown to the classifier.
4. The cuts chosen are the path through the seams that maximises the sum of the
   pieces' log top probability, less ``cut_cost`` per stroke a cut crosses
   (a cut's ink over the stroke width), ``piece_cost`` per extra piece and
   ``wide_cost`` per ``H`` a piece is wider than ``wide`` x ``H``; the whole
   glyph (no cut) is one of the paths.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

log = logging.getLogger(__name__)

#: Ink crops float32 (h, w) in [0, 1] -> float32 (N, C) class probabilities.
Classify = Callable[[Sequence[np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class SplitSettings:
    """Thresholds of :func:`split_glyph` (fractions of the digit height ``H`` unless noted).

    Attributes:
        wide: a glyph wider than this is tried as several digits.
        unsure: a narrower glyph whose top probability is below this is tried too,
        narrow: if it is at least this wide (two touching 1s).
        min_width: a piece is at least this wide (a 1).
        max_width: and at most this.
        min_height: and at least this high (a 5's bar cut off is no digit).
        reach: a seam stays within this distance of its start column.
        max_cuts: candidate cuts per glyph, at most.
        cut_cost: log-probability cost per stroke a cut crosses.
        piece_cost: log-probability cost per piece beyond the first.
        wide_cost: log-probability cost per ``H`` of a piece's width beyond ``wide``
            (handwritten digits are rarely wider than high: two read as one are).
        stroke: the stroke width, a fraction of ``H`` (MNIST: 2.5 px of 20).
        straight: also straight vertical cuts every this x ``H`` (0: none),
        straight_from: in a glyph wider than this x ``H`` (two digits or more).
    """

    wide: float = 0.8
    unsure: float = 0.6
    narrow: float = 0.3
    min_width: float = 0.12
    max_width: float = 1.4
    min_height: float = 0.6
    reach: float = 0.3
    max_cuts: int = 10
    cut_cost: float = 0.3
    piece_cost: float = 0.2
    wide_cost: float = 3.0
    stroke: float = 0.125
    straight: float = 0.2
    straight_from: float = 1.1


def deslant(ink: np.ndarray, slant: float) -> tuple[np.ndarray, np.ndarray]:
    """Shift each row of float32 (h, w) ``ink`` right by ``round(slant * (y - centre))``.

    Returns the deslanted float32 (h, w + spread) image and int (h,) each row's
    offset (column ``x`` of row ``y`` of the input is ``x + offset[y]`` in the output).
    """
    h, w = ink.shape
    shift = np.round(slant * (np.arange(h) - (h - 1) / 2)).astype(int)  # (h,)
    offset = shift - shift.min()  # >= 0
    out = np.zeros((h, w + int(offset.max(initial=0))), np.float32)
    for y in range(h):
        out[y, offset[y] : offset[y] + w] = ink[y]
    return out, offset


def seams_of(img: np.ndarray, starts: Sequence[int], reach: int) -> list[np.ndarray]:
    """int (h,) each: the columns of the least-ink top-to-bottom path near each start column.

    A path moves at most one column per row and stays in
    ``[start - reach, start + reach]``; a move sideways costs a little (so a free
    path runs straight). ``img``: float32 (h, w), ink >= 0. All paths are found
    in one dynamic-programming pass over the rows.
    """
    h, w = img.shape
    if not starts:
        return []
    k = 2 * reach + 1
    lo = np.asarray(starts) - reach  # (n,)
    cols = lo[:, None] + np.arange(k)[None, :]  # (n, k)
    inside = (cols >= 0) & (cols < w)
    padded = np.pad(img.astype(np.float64), ((0, 0), (reach, reach)))
    cost = padded[:, cols + reach] + 1e-3  # (h, n, k)
    cost[:, ~inside] = np.inf
    step = 2e-3
    cum = cost[0] + 1e-3 * np.abs(np.arange(k) - reach)[None, :]
    back = np.zeros((h, len(starts), k), np.int8)
    inf = np.full((len(starts), 1), np.inf)
    for y in range(1, h):
        left = np.concatenate([inf, cum[:, :-1] + step], axis=1)
        right = np.concatenate([cum[:, 1:] + step, inf], axis=1)
        best = np.minimum(cum, np.minimum(left, right))
        back[y] = np.where(best == cum, 0, np.where(best == left, -1, 1))
        cum = cost[y] + best
    path = np.empty((h, len(starts)), int)
    path[-1] = np.argmin(cum, axis=1)
    rows = np.arange(len(starts))
    for y in range(h - 1, 0, -1):
        path[y - 1] = path[y] + back[y, rows, path[y]]
    return [path[:, i] + lo[i] for i in range(len(starts))]


def _candidates(img: np.ndarray, height: float, s: SplitSettings) -> list[np.ndarray]:
    """The seams worth trying: the cheapest local minima of the seam cost over start columns.

    A seam starts every 2 px across the ink; the cost of each is the ink it
    crosses. Kept: seams whose cost is a local minimum over the start columns,
    cheapest first, distinct, starting ``min_width / 2`` x ``H`` apart, at most
    ``max_cuts``.
    """
    cols = np.flatnonzero(img.any(0))
    if cols.size == 0:
        return []
    gap = max(1, round(s.min_width * height))
    starts = list(range(int(cols[0]) + 2, int(cols[-1]) - 1, 2))
    if not starts:
        return []
    paths = seams_of(img, starts, max(1, round(s.reach * height)))
    rows = np.arange(img.shape[0])
    cost = np.array([float(img[rows, p].sum()) for p in paths])
    order = [
        i
        for i in np.argsort(cost, kind="stable")
        if (i == 0 or cost[i] <= cost[i - 1]) and (i == len(cost) - 1 or cost[i] <= cost[i + 1])
    ]
    chosen: list[int] = []
    for i in order:
        if all(abs(starts[i] - starts[c]) >= gap // 2 for c in chosen) and not any(
            np.array_equal(paths[i], paths[c]) for c in chosen
        ):
            chosen.append(i)
        if len(chosen) == s.max_cuts:
            break
    return [paths[i] for i in sorted(chosen, key=lambda c: starts[c])]


def _piece(img: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """bool (h, w): the pixels right of seam ``left`` up to seam ``right`` (inclusive)."""
    cols = np.arange(img.shape[1])[None, :]
    return (cols > left[:, None]) & (cols <= right[:, None]) & (img > 0)


def _clean(mask: np.ndarray, ink: np.ndarray, keep: float = 0.04) -> np.ndarray:
    """``mask`` without the 8-connected bits holding less than ``keep`` of its ink."""
    lab, n = ndimage.label(mask, np.ones((3, 3), bool))
    if n <= 1:
        return mask
    mass = ndimage.sum_labels(ink, lab, np.arange(1, n + 1))
    big = np.flatnonzero(mass >= keep * mass.sum()) + 1
    return np.isin(lab, big)


def _extent(mask: np.ndarray, axis: int) -> int:
    """The mask's extent in px along columns (``axis`` 0: its width) or rows (1: its height)."""
    idx = np.flatnonzero(mask.any(axis))
    return int(idx[-1] - idx[0] + 1) if idx.size else 0


def _reslant(mask: np.ndarray, offset: np.ndarray, w: int) -> np.ndarray:
    """A deslanted mask back in the glyph's own columns: bool (h, w)."""
    return np.stack([mask[y, offset[y] : offset[y] + w] for y in range(mask.shape[0])])


def split_glyph(
    ink: np.ndarray,
    slant: float,
    height: float,
    classify: Classify,
    settings: SplitSettings | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Cut one glyph into digits (see the module docstring).

    Args:
        ink: float32 (h, w) in [0, 1]: the glyph's ink, 0 outside it.
        slant: the line's slant (x shift per row, tops right > 0).
        height: the line's digit height ``H`` in px.
        classify: ink crops -> float32 (N, C) probabilities (the reader's model,
            each crop prepared as the model's dataset was).
        settings: thresholds; :class:`SplitSettings` defaults when None.

    Returns:
        ``(masks, probabilities)``: bool (h, w) masks of the digits left to
        right (one mask, the whole glyph, when no cut is better), and float32
        (len(masks), C) the classifier's probabilities of each.
    """
    s = settings or SplitSettings()
    h, w = ink.shape
    img, offset = deslant(ink, slant)
    inner = _candidates(img, height, s)
    if s.straight > 0 and w > s.straight_from * height:  # straight cuts too (dissection)
        cols = np.flatnonzero(img.any(0))
        step = max(2, round(s.straight * height))
        for x in range(int(cols[0]) + step, int(cols[-1]) - step // 2, step):
            if all(abs(int(p.mean()) - x) > step // 3 for p in inner):
                inner.append(np.full(h, x))
        inner.sort(key=lambda p: float(p.mean()))
    seams = [np.full(h, -1), *inner, np.full(h, img.shape[1])]
    stroke = max(1.0, s.stroke * height)
    crossing = [0.0] + [float(img[np.arange(h), sm].sum()) / stroke for sm in seams[1:-1]] + [0.0]
    lo, hi = s.min_width * height, s.max_width * height
    n = len(seams)
    whole = img > 0
    pieces: dict[tuple[int, int], np.ndarray] = {}
    if _extent(whole, 0) <= hi:
        pieces[(0, n - 1)] = whole
    for i in range(n - 1):
        for j in range(i + 1, n):
            if (i, j) == (0, n - 1):
                continue
            mask = _piece(img, seams[i], seams[j])
            width = _extent(mask, 0)
            if width > hi:
                break
            if width >= lo:
                mask = _clean(mask, img)
                if _extent(mask, 1) >= s.min_height * height:
                    pieces[(i, j)] = mask
    keys = list(pieces)
    log.debug("pieces %s", [(k, _extent(pieces[k], 0), _extent(pieces[k], 1)) for k in keys])
    masks = {k: _reslant(pieces[k], offset, w) for k in keys}
    probs = classify([np.where(masks[k], ink, 0.0).astype(np.float32) for k in keys])
    score = {
        k: math.log(max(float(p.max()), 1e-9))
        - s.wide_cost * max(0.0, _extent(pieces[k], 0) / height - s.wide)
        for k, p in zip(keys, probs)
    }
    row = {k: r for r, k in enumerate(keys)}
    best = [-math.inf] * n
    came = [-1] * n
    best[0] = 0.0
    for j in range(1, n):
        for i in range(j):
            if (i, j) in score and best[i] > -math.inf:
                v = best[i] + score[(i, j)] - s.cut_cost * crossing[j] - (s.piece_cost if i else 0)
                if v > best[j]:
                    best[j], came[j] = v, i
    path, j = [], n - 1
    while j > 0 and came[j] >= 0:
        path.append((came[j], j))
        j = came[j]
    path.reverse()
    if not path or path[0][0] != 0:  # no cuts make digits: the glyph as it is
        return [_reslant(whole, offset, w)], classify([ink])
    return [masks[k] for k in path], np.stack([probs[row[k]] for k in path])
