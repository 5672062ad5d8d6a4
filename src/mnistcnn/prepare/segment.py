"""Find the characters of a written number in an ink map: lines, digits, separators.

The geometry of reading (no model here; :mod:`mnistcnn.prepare.split` cuts
touching digits apart with a classifier it is given). From the ink map of a
picture (:func:`mnistcnn.prepare.ink.ink_map`, ruled lines removed), in the order
of document-image analysis (Casey & Lecolinet 1996, "A survey of methods and
strategies in character segmentation", IEEE PAMI 18(7): connected components,
then dissection of what is too wide, recognition deciding):

1. **Components**: 8-connected components of the ink (``skimage.measure.label``).
   Frames (a component whose holes hold others) and clutter along the border (a
   component touching the picture's edge, when others do not) are dropped.
2. **Digit height** ``H``: the median height of the tall components (at least
   half as tall as the tallest).
3. **Lines**: components at least ``tall`` x ``H`` high are grouped by vertical
   overlap (each pair overlapping by half the shorter one's height joins a line;
   chains of such pairs follow a drifting baseline); lines are read top to bottom.
4. **Slant**: each line's slant is the mass-weighted median of its tall
   components' second-moment slant ``mu11 / mu02`` (the deslanting of MNIST's
   own deskewing); horizontal positions are taken along that slant.
5. **Pieces**: a smaller component lying over a digit (a 5's bar, the second
   stroke of a 4 or a 7, a broken stroke) joins it when at least ``merge``
   of its width lies within the digit's columns; two tall pieces join when they
   overlap that much and together are no wider than ``one_digit`` x ``H``.
6. **Separators**, between two digits: a dash (a flat stroke in the middle
   band), a dot (a round blob on the baseline, at least ``dot`` x ``H`` across),
   a slash (a straight stroke taller than the line's digits, leaning right by
   more than ``slash_angle`` degrees from the line's slant and twice that from
   upright) and a space (an ink gap wider than ``space`` x ``H``). Anything
   else small is a speck: ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.measure import label, regionprops

from mnistcnn.prepare.ink import InvertMode
from mnistcnn.prepare.settings import PreparationSettings

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class SegmentSettings:
    """Thresholds of :func:`find_characters` (fractions of the digit height ``H`` unless noted).

    Attributes:
        tall: a component at least this high is a digit or part of one (step 3).
        merge: a piece joins a digit when this fraction of its width lies in the
            digit's columns (step 5).
        one_digit: two tall pieces joined are at most this wide.
        dot: a dot is at least this wide and high (a speck is smaller).
        dot_max: and at most this.
        dash_min: a dash is at least this long, and 1.5 times as long as thick.
        slash_angle: degrees a slash leans right of the line's slant, at least
            (and twice this from upright).
        slash_height: a slash is at least this many times the line's median digit height.
        space: an ink gap at least this wide between two characters is a space.
        edge_contact: a component covering more than this fraction of one edge
            of the picture is clutter (a table edge, a frame).
    """

    tall: float = 0.5
    merge: float = 0.5
    one_digit: float = 0.95
    dot: float = 0.07
    dot_max: float = 0.35
    dash_min: float = 0.15
    slash_angle: float = 10.0
    slash_height: float = 1.06
    space: float = 0.75
    edge_contact: float = 0.5


@dataclass
class Glyph:
    """One character candidate: a set of ink components.

    Attributes:
        box: (left, top, right, bottom) in the ink map's pixels, right/bottom exclusive.
        mask: bool (bottom - top, right - left): its pixels within ``box``.
        kind: ``"digit"`` (may still hold several touching digits), ``"-"``,
            ``"."``, ``"/"`` or ``" "`` (a space: empty mask).
    """

    box: Box
    mask: np.ndarray = field(repr=False)
    kind: str = "digit"

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


@dataclass
class Line:
    """One line of characters, left to right.

    Attributes:
        glyphs: the characters in reading order.
        slant: x shift per row (positive: the tops lean right), the line's slant.
        height: the median height of its digits, px.
        top, bottom: the line's rows (bottom exclusive).
    """

    glyphs: list[Glyph]
    slant: float
    height: float
    top: int
    bottom: int


def _union(a: Glyph, b: Glyph) -> Glyph:
    """The glyph made of both glyphs' pixels."""
    box = (
        min(a.box[0], b.box[0]),
        min(a.box[1], b.box[1]),
        max(a.box[2], b.box[2]),
        max(a.box[3], b.box[3]),
    )
    mask = np.zeros((box[3] - box[1], box[2] - box[0]), bool)
    for g in (a, b):
        y, x = g.box[1] - box[1], g.box[0] - box[0]
        mask[y : y + g.height, x : x + g.width] |= g.mask
    return Glyph(box, mask, a.kind)


def _edge_contact(g: Glyph, shape: tuple[int, int]) -> tuple[bool, float]:
    """Whether ``g`` touches the picture's edge, and the largest fraction of an edge it covers."""
    h, w = shape
    left, top, right, bottom = g.box
    cover = []
    if top == 0:
        cover.append(g.mask[0].sum() / w)
    if bottom == h:
        cover.append(g.mask[-1].sum() / w)
    if left == 0:
        cover.append(g.mask[:, 0].sum() / h)
    if right == w:
        cover.append(g.mask[:, -1].sum() / h)
    return bool(cover), float(max(cover, default=0.0))


def components(ink: np.ndarray, s: SegmentSettings) -> list[Glyph]:
    """Step 1: the ink's 8-connected components, frames and border clutter dropped.

    Args:
        ink: float32 (H, W) in [0, 1], background exactly 0.
        s: thresholds.

    Returns:
        One :class:`Glyph` per kept component (unordered).
    """
    lab = label(ink > 0, connectivity=2)
    regions = regionprops(lab)
    glyphs, holed = [], []
    for r in regions:
        top, left, bottom, right = r.bbox
        g = Glyph((left, top, right, bottom), r.image.copy())
        glyphs.append(g)
        holed.append(r.euler_number < 1 and _holds_others(r, regions))
    kept = [g for g, frame in zip(glyphs, holed) if not frame]
    inside: list[Glyph] = []
    touching: list[Glyph] = []
    for g in kept:
        touches, cover = _edge_contact(g, ink.shape)
        if cover > s.edge_contact:
            continue
        (touching if touches else inside).append(g)
    if not inside:
        return touching or kept  # the number fills the picture: keep its ink
    return inside  # what touches the edge is the page's (a corner, a table, a shadow)


def _holds_others(region, regions) -> bool:
    """Whether another component lies in ``region``'s holes (a frame, a box around the number)."""
    top, left, bottom, right = region.bbox
    holes = region.image_filled & ~region.image
    for b in regions:
        if b.label == region.label or b.area < 0.05 * region.area:
            continue
        bt, bl, bb, br = b.bbox
        if top <= bt and left <= bl and bb <= bottom and br <= right:
            rows, cols = b.coords[:, 0] - top, b.coords[:, 1] - left
            if holes[rows, cols].mean() >= 0.9 and (bb - bt) < 0.9 * (bottom - top):
                return True
    return False


def digit_height(glyphs: list[Glyph], tall: float = 0.5) -> float:
    """Step 2: the median height of the components at least ``tall`` x the tallest one's (px)."""
    if not glyphs:
        return 0.0
    top = max(g.height for g in glyphs)
    return float(np.median([g.height for g in glyphs if g.height >= tall * top]))


def slant_of(g: Glyph) -> float:
    """x shift per row of the glyph's ink (second moments: ``-mu11 / mu02``), tops right > 0."""
    ys, xs = np.nonzero(g.mask)
    if ys.size < 3:
        return 0.0
    dy, dx = ys - ys.mean(), xs - xs.mean()
    mu02 = float((dy * dy).mean())
    return float(-(dx * dy).mean() / mu02) if mu02 > 0 else 0.0


def deslanted_span(g: Glyph, slant: float, ref_row: float) -> tuple[float, float]:
    """The glyph's horizontal extent after removing ``slant`` about row ``ref_row``."""
    ys, xs = np.nonzero(g.mask)
    if ys.size == 0:
        return float(g.box[0]), float(g.box[0])
    x = xs + g.box[0] + slant * (ys + g.box[1] - ref_row)
    return float(x.min()), float(x.max() + 1)


def _group_lines(tall: list[Glyph]) -> list[list[Glyph]]:
    """Step 3: tall glyphs grouped by vertical overlap (union-find), top line first."""
    parent = list(range(len(tall)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(tall):
        for j in range(i + 1, len(tall)):
            b = tall[j]
            over = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
            if over >= 0.5 * min(a.height, b.height):
                parent[find(i)] = find(j)
    groups: dict[int, list[Glyph]] = {}
    for i, g in enumerate(tall):
        groups.setdefault(find(i), []).append(g)
    lines = list(groups.values())
    lines.sort(key=lambda gs: float(np.median([(g.box[1] + g.box[3]) / 2 for g in gs])))
    return lines


def _line_slant(gs: list[Glyph], ink: np.ndarray) -> float:
    """Step 4: the slant of a line.

    With three digits or more, the median of their second-moment slants (one
    vote each: a slash or a long 1 does not outweigh the rest). Otherwise the
    mass-weighted median, over the edges of the line's near-vertical strokes
    (Sobel gradient at least twice as horizontal as vertical: strokes within
    27 degrees of upright), of the stroke's lean ``gy / gx`` (a stroke ``x = x0 - s (y - c)``
    has its gradient along ``(1, s)``): the edge-direction slant estimate (Ding,
    Kimura et al. 1999, "Slant estimation for handwritten words by directionally
    refined chain code"). It holds for touching digits too, where one glyph's
    moments would measure the digits' arrangement. Limited to [-0.6, 0.6].
    """
    if len(gs) >= 3:
        return float(np.clip(np.median([slant_of(g) for g in gs]), -0.6, 0.6))
    gx_all, gy_all = [], []
    for g in gs:
        left, top, right, bottom = g.box
        patch = np.pad(np.where(g.mask, ink[top:bottom, left:right], 0.0), 1)
        gx, gy = ndimage.sobel(patch, 1), ndimage.sobel(patch, 0)
        gx_all.append(gx.ravel())
        gy_all.append(gy.ravel())
    gx, gy = np.concatenate(gx_all), np.concatenate(gy_all)
    mag = np.hypot(gx, gy)
    use = (np.abs(gx) > 2 * np.abs(gy)) & (mag > 0.25 * (mag.max() if mag.size else 0))
    if use.sum() < 5:
        return 0.0
    lean, weight = gy[use] / gx[use], mag[use]
    order = np.argsort(lean)
    cum = np.cumsum(weight[order])
    return float(np.clip(lean[order][np.searchsorted(cum, cum[-1] / 2)], -0.6, 0.6))


def _straightness(g: Glyph) -> float:
    """sqrt(minor / major) second-moment eigenvalue ratio: near 0 for a straight thin stroke."""
    ys, xs = np.nonzero(g.mask)
    if ys.size < 3:
        return 1.0
    cov = np.cov(np.stack([xs, ys]).astype(float))
    lo, hi = np.linalg.eigvalsh(cov)
    return float(math.sqrt(max(lo, 0.0) / hi)) if hi > 0 else 1.0


def _is_slash(g: Glyph, slant: float, height: float, s: SegmentSettings) -> bool:
    """A straight stroke taller than the digits, leaning right of them and of upright."""
    angle = math.degrees(math.atan(slant_of(g)))
    lean = angle - math.degrees(math.atan(slant))
    tall = g.height >= s.slash_height * height
    return tall and angle >= 2 * s.slash_angle and lean >= s.slash_angle and _straightness(g) < 0.15


def _separator(g: Glyph, rel_y: float, height: float, s: SegmentSettings) -> str | None:
    """``"-"``, ``"."`` or None (a speck) for a small glyph between two digits.

    ``rel_y``: its centre's row within the neighbouring digits' band, 0 top .. 1 bottom.
    """
    w, h = g.width, g.height
    if w >= s.dash_min * height and w >= 1.5 * h and h <= 0.3 * height and 0.25 <= rel_y <= 0.8:
        return "-"
    small, large = s.dot * height, s.dot_max * height
    roundish = max(w, h) <= 2.5 * min(w, h)
    if small <= w <= large and small <= h <= large and roundish and rel_y >= 0.6:
        return "."
    return None


def _merge_pieces(
    tall: list[Glyph],
    small: list[Glyph],
    spans: dict[int, tuple[float, float]],
    height: float,
    s: SegmentSettings,
) -> tuple[list[Glyph], list[Glyph]]:
    """Step 5: small pieces joined to the digit they lie over; tall pieces joined pairwise."""
    rest = []
    for p in small:
        pl, pr = spans[id(p)]
        best, best_ov = None, 0.0
        for t in tall:
            tl, tr = spans[id(t)]
            ov = (min(pr, tr) - max(pl, tl)) / max(pr - pl, 1.0)
            vgap = max(t.box[1] - p.box[3], p.box[1] - t.box[3], 0)
            if ov >= s.merge and ov > best_ov and vgap <= 0.25 * height:
                best, best_ov = t, ov
        if best is None:
            rest.append(p)
            continue
        merged = _union(best, p)
        spans[id(merged)] = (min(pl, spans[id(best)][0]), max(pr, spans[id(best)][1]))
        tall[tall.index(best)] = merged
    tall.sort(key=lambda g: spans[id(g)][0])
    i = 0
    while i + 1 < len(tall):
        (al, ar), (bl, br) = spans[id(tall[i])], spans[id(tall[i + 1])]
        ov = min(ar, br) - max(al, bl)
        narrow = min(ar - al, br - bl)
        if ov >= s.merge * narrow and max(ar, br) - min(al, bl) <= s.one_digit * height:
            merged = _union(tall[i], tall[i + 1])
            spans[id(merged)] = (min(al, bl), max(ar, br))
            tall[i : i + 2] = [merged]
        else:
            i += 1
    return tall, rest


def _read_line(tall: list[Glyph], small: list[Glyph], ink: np.ndarray, s: SegmentSettings) -> Line:
    """Steps 4-6 for one line: slant, pieces, separators and spaces, in reading order."""
    top, bottom = min(g.box[1] for g in tall), max(g.box[3] for g in tall)
    slant = _line_slant(tall, ink)
    ref = (top + bottom) / 2
    height = float(np.median([g.height for g in tall]))
    spans = {id(g): deslanted_span(g, slant, ref) for g in tall + small}
    tall, rest = _merge_pieces(list(tall), small, spans, height, s)
    marks = []
    for g in tall:
        if _is_slash(g, slant, height, s):
            g.kind = "/"
    digits = [g for g in tall if g.kind == "digit"]
    for p in rest:
        pl, pr = spans[id(p)]
        left = [d for d in digits if spans[id(d)][1] <= (pl + pr) / 2]
        right = [d for d in digits if spans[id(d)][0] >= (pl + pr) / 2]
        if not left or not right:
            continue  # a speck or a mark outside the number
        a = max(left, key=lambda d: spans[id(d)][1])
        b = min(right, key=lambda d: spans[id(d)][0])
        band_top, band_bottom = (a.box[1] + b.box[1]) / 2, (a.box[3] + b.box[3]) / 2
        rel = ((p.box[1] + p.box[3]) / 2 - band_top) / max(band_bottom - band_top, 1.0)
        kind = _separator(p, rel, height, s)
        if kind is not None:
            p.kind = kind
            marks.append(p)
    chars = sorted(tall + marks, key=lambda g: sum(spans[id(g)]))
    out: list[Glyph] = []
    for g in chars:
        if out and out[-1].kind == "digit" and g.kind == "digit":
            gap = spans[id(g)][0] - spans[id(out[-1])][1]
            if gap >= s.space * height:
                box = (out[-1].box[2], top, max(g.box[0], out[-1].box[2] + 1), bottom)
                out.append(Glyph(box, np.zeros((0, 0), bool), " "))
        out.append(g)
    return Line(out, slant, height, top, bottom)


def find_characters(ink: np.ndarray, settings: SegmentSettings | None = None) -> list[Line]:
    """The lines of characters of an ink map, top to bottom (see the module docstring).

    Args:
        ink: float32 (H, W) in [0, 1], background exactly 0, ruled lines removed
            (:func:`mnistcnn.prepare.clutter.remove_lines`).
        settings: thresholds; :class:`SegmentSettings` defaults when None.

    Returns:
        The lines, each with its characters left to right; a ``"digit"`` glyph
        may still hold several touching digits (:mod:`mnistcnn.prepare.split`
        cuts it). Empty when there is no ink.
    """
    s = settings or SegmentSettings()
    glyphs = components(ink, s)
    if not glyphs:
        return []
    h = digit_height(glyphs, s.tall)
    tall = [g for g in glyphs if g.height >= s.tall * h]
    small = [g for g in glyphs if g.height < s.tall * h]
    lines = []
    groups = _group_lines(tall)
    bands = [(min(g.box[1] for g in gs), max(g.box[3] for g in gs)) for gs in groups]
    owned: list[list[Glyph]] = [[] for _ in groups]
    for p in small:
        cy = (p.box[1] + p.box[3]) / 2
        near = [
            (abs(cy - (t + b) / 2), i)
            for i, (t, b) in enumerate(bands)
            if t - 0.15 * (b - t) <= cy <= b + 0.15 * (b - t)
        ]
        if near:
            owned[min(near)[1]].append(p)
    for gs, own in zip(groups, owned):
        lines.append(_read_line(gs, own, ink, s))
    return lines


def digits_on_page(
    gray: np.ndarray, invert: InvertMode = "auto", settings: PreparationSettings | None = None
) -> int:
    """How many digit glyphs a picture holds (``predict`` asks before answering one digit).

    The whole page's ink (:func:`~mnistcnn.prepare.locate.ink_page`, at the
    preparation's working size), ruled lines removed, its characters found by
    :func:`find_characters`: the number of ``"digit"`` glyphs on all lines.
    Touching digits are one glyph, so this counts at least the digits standing apart.

    Args:
        gray: float32 (H, W) in [0, 1], 0 black.
        invert: polarity, as the preparation's.
        settings: the preparation's settings (working size, ink thresholds).

    Returns:
        The count, 0 for a blank page.
    """
    from mnistcnn.prepare.clutter import ClutterSettings, remove_lines
    from mnistcnn.prepare.locate import ink_page

    page = ink_page(gray, invert, settings)
    if not page.ink.ink_found:
        return 0
    ink = remove_lines(page.ink.strength, ClutterSettings())
    return sum(g.kind == "digit" for line in find_characters(ink) for g in line.glyphs)
