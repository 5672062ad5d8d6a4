"""Find the one character among the clutter of a real photo or scan.

:func:`mnistcnn.prepare.ink.ink_map` keeps everything that stands out from the
paper: the digit, but also a table edge along one side, the page's corner, a
scanner's dark border, ruled lines, punch holes, stray pen marks. Cropping to
all of that ink shrinks the digit to a corner of the 20x20 box. :func:`isolate`
keeps the digit only, from the ink map's connected components (8-connected,
``skimage.measure.label``/``regionprops``), in the order of document-image
clean-up (e.g. Gonzalez & Woods, "Digital Image Processing", 4th ed., 9.6:
border clearing and reconstruction by connected components):

1. **Ruled lines**: a horizontal (vertical) line is a band of rows (columns)
   at most ``line_thickness`` of the shorter side thick, each covered by ink on
   at least ``line_span`` of its length (a projection profile) and reaching
   across ``line_reach`` of the picture. Its pixels are removed (unless the
   lines hold most of the ink: a tightly cropped 1), except where the
   remaining ink continues on both sides (a stroke that crossed the line is
   bridged again by a closing across it).
2. **Frames**: a component whose holes hold another component (at least 90 %
   of its pixels) of at least ``inside_mass`` of its own mass (a border, a box
   drawn around the digit).
3. **Border clutter**: a component that covers more than ``edge_contact`` of
   one edge of the picture (a table edge, a shadow's edge, a frame).
4. **The digit**: the remaining component of the highest score, mass (summed
   ink strength) times ``exp(-d^2 / (2 sigma^2))``, d the distance of its
   centre of mass from the picture's centre in half-diagonals, times
   ``border_weight`` when it touches the edge (the page's corner, holes and
   marks are off-centre; people centre what they photograph).
5. **Its other strokes**: components within ``gap`` times the digit's size of
   the kept ones, and of at least ``join_mass`` of its mass, are added,
   repeatedly (a 5's bar, a broken stroke).

When nothing is left after steps 2-3 (the digit itself fills the picture and
touches an edge along its length), the ink is kept as it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClutterSettings:
    """Thresholds of :func:`isolate` (fractions of the picture unless noted).

    Attributes:
        line_span: ink covers at least this fraction of a line's rows (columns).
        line_reach: and reaches across at least this fraction of the picture.
        line_thickness: a line is at most this thick (fraction of the shorter
            side): ruled lines are thin, a digit's bar is not.
        line_mass: lines holding more than this fraction of all ink are the
            character itself (a tightly cropped 1) and are kept.
        inside_mass: a frame holds a component of at least this fraction of its mass.
        edge_contact: a component covering more than this fraction of one edge is clutter.
        sigma: width of the centre weighting, in half-diagonals.
        border_weight: score factor of a component touching the picture's edge.
        gap: components closer than this times the kept ink's size join it,
        join_mass: when they hold at least this fraction of the digit's mass
            (faint specks and the remains of a line do not widen the crop).
    """

    line_span: float = 0.5
    line_reach: float = 0.9
    line_mass: float = 0.5
    line_thickness: float = 0.03
    inside_mass: float = 0.1
    edge_contact: float = 0.5
    sigma: float = 0.5
    border_weight: float = 0.2
    gap: float = 0.2
    join_mass: float = 0.02


def _lines(mask: np.ndarray, s: ClutterSettings, axis: int) -> np.ndarray:
    """bool mask of the thin straight lines of ``mask`` running along ``axis`` (1: horizontal).

    A row (column) belongs to a line when ink covers at least ``line_span`` of
    it, counting a pixel as ink when it or a neighbour across the line is (a
    faint line breaks up; a photographed one wanders by a pixel); consecutive
    such rows make one line if there are at most ``line_thickness`` of the
    shorter side of them (a 7's bar across a tightly cropped picture is thicker)
    and their ink reaches across ``line_reach`` of the picture (a ruled line
    runs from edge to edge, a digit's stroke stops inside its margins).
    """
    from scipy import ndimage  # SciPy and scikit-image load when a picture is prepared

    m = mask if axis == 1 else mask.T  # lines run along the rows of m
    near = ndimage.binary_dilation(m, structure=np.ones((3, 1), bool))
    hit = near.mean(axis=1) >= s.line_span  # (rows,)
    out = np.zeros_like(m)
    thickest = max(1.0, s.line_thickness * min(m.shape))
    runs, n = ndimage.label(hit)
    for i in range(1, n + 1):
        rows = np.flatnonzero(runs == i)
        cols = np.flatnonzero(m[rows].any(axis=0))
        reach = (cols[-1] - cols[0] + 1) / m.shape[1] if cols.size else 0.0
        if len(rows) - 2 <= thickest and reach >= s.line_reach:  # the window adds 2 rows
            out[rows] = m[rows]
    return out if axis == 1 else out.T


def remove_lines(strength: np.ndarray, s: ClutterSettings) -> np.ndarray:
    """``strength`` without ruled lines (step 1 of the module docstring); a copy."""
    from scipy import ndimage

    mask = strength > 0
    out = strength.copy()
    total = float(strength.sum())
    for axis in (1, 0):
        lines = _lines(mask, s, axis)
        if not lines.any():
            continue
        across = (3, 1) if axis == 1 else (1, 3)  # the lines' fringe: one pixel either side
        band = ndimage.binary_dilation(lines, structure=np.ones(across, bool)) & mask
        rest = mask & ~band
        thick = int(band.sum(axis=1 - axis).max()) if band.any() else 1
        bridge = np.ones((thick + 3, 1) if axis == 1 else (1, thick + 3), bool)
        keep = ndimage.binary_closing(rest, structure=bridge) & band
        out[band & ~keep] = 0.0
        mask = out > 0
    if float(out.sum()) < (1 - s.line_mass) * total:  # the "lines" were the character
        return strength.copy()
    return out


def _edge_contact(region_mask: np.ndarray) -> float:
    """Largest fraction of one picture edge covered by ``region_mask`` (bool (H, W))."""
    edges = (region_mask[0], region_mask[-1], region_mask[:, 0], region_mask[:, -1])
    return max(float(e.mean()) for e in edges)


def _frames(regions: list, mass: dict[int, float], s: ClutterSettings) -> set[int]:
    """Labels of components whose holes hold another component (step 2)."""
    out = set()
    for a in regions:
        if a.euler_number >= 1:  # no holes
            continue
        top, left, bottom, right = a.bbox
        holes = a.image_filled & ~a.image
        for b in regions:
            if b.label == a.label or mass[b.label] < s.inside_mass * mass[a.label]:
                continue
            bt, bl, bb, br = b.bbox
            if not (top <= bt and left <= bl and bb <= bottom and br <= right):
                continue
            rows, cols = b.coords[:, 0] - top, b.coords[:, 1] - left
            if holes[rows, cols].mean() >= 0.9:  # b lies in a's holes
                out.add(a.label)
                break
    return out


def _gap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    """Chessboard gap in px between two (top, left, bottom, right) boxes (0 if they overlap)."""
    dy = max(a[0] - b[2], b[0] - a[2], 0)
    dx = max(a[1] - b[3], b[1] - a[3], 0)
    return max(dx, dy)


def isolate(strength: np.ndarray, s: ClutterSettings | None = None) -> np.ndarray:
    """The ink of the one character of an ink map, clutter set to 0 (see the module docstring).

    Args:
        strength: float32 (H, W) in [0, 1], background exactly 0
            (:func:`mnistcnn.prepare.ink.ink_map`).
        s: thresholds; :class:`ClutterSettings` defaults when None.

    Returns:
        float32 (H, W): ``strength`` where the character is, 0 elsewhere.
    """
    from skimage.measure import label, regionprops

    s = s or ClutterSettings()
    h, w = strength.shape
    if not strength.any() or min(h, w) < 8:
        return strength
    ink = remove_lines(strength, s)
    lab = label(ink > 0, connectivity=2)
    regions = regionprops(lab, intensity_image=ink)
    if not regions:
        return strength
    mass = {r.label: float(r.intensity_mean * r.area) for r in regions}
    dropped = _frames(regions, mass, s)
    half_diag = math.hypot(h, w) / 2
    scored = []
    for r in regions:
        if r.label in dropped:
            continue
        own = lab == r.label
        if _edge_contact(own) > s.edge_contact:
            continue
        top, left, bottom, right = r.bbox
        touches = top == 0 or left == 0 or bottom == h or right == w
        cy, cx = r.centroid_weighted
        d = math.hypot(cy - (h - 1) / 2, cx - (w - 1) / 2) / half_diag
        weight = math.exp(-(d**2) / (2 * s.sigma**2)) * (s.border_weight if touches else 1)
        score = mass[r.label] * weight
        scored.append((score, r))
    if not scored:
        return strength
    scored.sort(key=lambda t: -t[0])
    kept = [scored[0][1]]
    box = kept[0].bbox
    least = s.join_mass * mass[kept[0].label]
    rest = [r for _, r in scored[1:] if mass[r.label] >= least]
    grew = True
    while grew:
        grew = False
        size = max(box[2] - box[0], box[3] - box[1])
        for r in list(rest):
            if _gap(box, r.bbox) <= s.gap * size:
                kept.append(r)
                rest.remove(r)
                box = (
                    min(box[0], r.bbox[0]),
                    min(box[1], r.bbox[1]),
                    max(box[2], r.bbox[2]),
                    max(box[3], r.bbox[3]),
                )
                grew = True
    keep = np.isin(lab, [r.label for r in kept])
    return np.where(keep, ink, 0.0).astype(np.float32)
