"""Paper, pen and the clutter of real photos and scans, drawn around a written number.

The look of the pages :mod:`mnistcnn.data.numbers` writes on: light grey paper
with a gentle lighting gradient and sensor noise, a slightly blurred (lens) dark
pen, and one kind of clutter (the kinds ``mnistcnn predict`` removes,
:mod:`mnistcnn.prepare.clutter`), :data:`CLUTTER_KINDS`:

* ``frame``: a dark border around the whole picture, 2-4 % of the side thick;
* ``box``: a rectangle drawn around the number, not touching the picture's edges;
* ``strip-narrow`` / ``strip-wide``: a dark table edge along one side, 1-3 % or
  15-30 % of the side deep;
* ``shadow``: a soft shadow darkening one side by 30-45 %, its soft edge across
  the number's nearer end;
* ``ruled-lines``: pale notebook lines every 7-9 % of the height (ruled under the
  number's baseline, as on a notebook page) and a red-grey margin line;
* ``punch-holes``: two or three dark filled circles along one side;
* ``page-corner``: the table seen beyond one corner of the page;
* ``marks``: a pen dot, a short stroke and a small scribble near the corners.

All randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

CLUTTER_KINDS = (
    "frame",
    "box",
    "strip-narrow",
    "strip-wide",
    "shadow",
    "ruled-lines",
    "punch-holes",
    "page-corner",
    "marks",
)
SIDES = ("top", "bottom", "left", "right")
Box = tuple[int, int, int, int]


def ink_on_paper(
    ink: np.ndarray,
    rng: np.random.Generator,
    paper: float | None = None,
    noise: float = 2.5,
    gradient: float = 0.03,
) -> Image.Image:
    """A page: float32 ``ink`` (H, W) in [0, 1] drawn in dark pen on light grey paper.

    Paper grey level ``paper`` (0-255; drawn from 205-245 when None) with a linear
    lighting gradient of up to ``gradient`` either way, pen 10-60, a 0.6 px Gaussian blur (a lens)
    and Gaussian sensor noise of ``noise`` grey levels. Returns a mode ``L`` image.
    """
    h, w = ink.shape
    paper = float(rng.uniform(205, 245)) if paper is None else float(paper)
    pen = float(rng.uniform(10, 60))
    gx, gy = rng.uniform(-gradient, gradient, 2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1.0 + gx * (2 * xx / max(w - 1, 1) - 1) + gy * (2 * yy / max(h - 1, 1) - 1)
    page = (paper + (pen - paper) * np.clip(ink, 0, 1)) * light
    blurred = ndimage.gaussian_filter(np.clip(page, 0, 255).astype(np.float32), 0.6)
    out = blurred + rng.normal(0, noise, (h, w)).astype(np.float32)
    return Image.fromarray(np.clip(out, 0, 255).round().astype(np.uint8), "L")


def _side_box(side: str, w: int, h: int, depth: int) -> Box:
    return {
        "top": (0, 0, w - 1, depth - 1),
        "bottom": (0, h - depth, w - 1, h - 1),
        "left": (0, 0, depth - 1, h - 1),
        "right": (w - depth, 0, w - 1, h - 1),
    }[side]


def _shadow(img: Image.Image, number: Box, rng: np.random.Generator) -> Image.Image:
    """Darken one side softly; the soft edge lies across the number's nearer 15 %."""
    arr = np.asarray(img, np.float32).copy()
    h, w = arr.shape
    side = SIDES[int(rng.integers(4))]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    left, top, right, bottom = number
    dx, dy = 0.15 * (right - left), 0.3 * (bottom - top)
    coord, end = {
        "top": (yy, top + dy),
        "bottom": (h - 1 - yy, h - 1 - bottom + dy),
        "left": (xx, left + dx),
        "right": (w - 1 - xx, w - 1 - right + dx),
    }[side]
    soft = 0.08 * max(h, w)
    dark = float(rng.uniform(0.30, 0.45))
    arr *= 1.0 - dark / (1.0 + np.exp((coord - end) / (soft / 4)))
    return Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8), "L")


def _holes(draw: ImageDraw.ImageDraw, w: int, h: int, dark: int, rng: np.random.Generator) -> None:
    side = SIDES[int(rng.integers(4))]
    r = round(min(w, h) * rng.uniform(0.025, 0.035))
    inset = round(min(w, h) * 0.07)
    count = int(rng.integers(2, 4))
    for i in range(count):
        t = (i + 1) / (count + 1)
        cx, cy = {
            "top": (t * w, inset),
            "bottom": (t * w, h - inset),
            "left": (inset, t * h),
            "right": (w - inset, t * h),
        }[side]
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=dark)


def _marks(draw: ImageDraw.ImageDraw, w: int, h: int, dark: int, rng: np.random.Generator) -> None:
    places = [(0.06, 0.1), (0.9, 0.12), (0.08, 0.9), (0.9, 0.88)]
    rng.shuffle(places)
    (ax, ay), (bx, by), (cx, cy) = places[:3]
    r = 0.012 * min(w, h)
    draw.ellipse((ax * w - r, ay * h - r, ax * w + r, ay * h + r), fill=dark)
    draw.line((bx * w, by * h, bx * w + 0.05 * w, by * h + 0.02 * h), fill=dark, width=3)
    t = np.linspace(0, 2 * np.pi, 12)
    pts = [(cx * w + 0.04 * w * np.cos(a), cy * h + 0.03 * h * np.sin(3 * a)) for a in t]
    draw.line(pts, fill=dark, width=2)


def add_clutter(
    img: Image.Image, kind: str, number: Box, baseline: int, rng: np.random.Generator
) -> Image.Image:
    """``img`` (mode L) with clutter ``kind`` drawn on it (see the module docstring).

    ``number`` is the written number's box (left, top, right, bottom) and
    ``baseline`` the row its digits stand on (ruled lines run just under it).

    Raises:
        ValueError: an unknown ``kind`` (the message lists :data:`CLUTTER_KINDS`).
    """
    if kind not in CLUTTER_KINDS:
        raise ValueError(f"unknown clutter kind {kind!r}; known: {', '.join(CLUTTER_KINDS)}")
    if kind == "shadow":
        return _shadow(img, number, rng)
    img = img.copy()
    w, h = img.size
    draw = ImageDraw.Draw(img)
    dark = int(rng.integers(20, 70))
    if kind == "frame":
        t = max(2, round(min(w, h) * rng.uniform(0.02, 0.04)))
        for side in SIDES:
            draw.rectangle(_side_box(side, w, h, t), fill=dark)
    elif kind == "box":
        m = int(rng.integers(8, 16))
        left, top, right, bottom = number
        draw.rectangle((left - m, top - m, right + m, bottom + m), outline=dark, width=3)
    elif kind in ("strip-narrow", "strip-wide"):
        lo, hi = (0.01, 0.03) if kind == "strip-narrow" else (0.15, 0.30)
        side = SIDES[int(rng.integers(4))]
        depth = max(2, round((h if side in ("top", "bottom") else w) * rng.uniform(lo, hi)))
        draw.rectangle(_side_box(side, w, h, depth), fill=dark)
    elif kind == "ruled-lines":
        gap = max(8, round(h * rng.uniform(0.07, 0.09)))
        shade = int(rng.integers(150, 190))
        for y in range((baseline + 3) % gap, h, gap):
            draw.line((0, y, w, y), fill=shade, width=2)
        x = round(number[0] * rng.uniform(0.3, 0.7))
        draw.line((x, 0, x, h), fill=shade - 20, width=2)
    elif kind == "punch-holes":
        _holes(draw, w, h, dark, rng)
    elif kind == "page-corner":
        a, b = rng.uniform(0.1, 0.2) * w, rng.uniform(0.2, 0.4) * h
        corner = int(rng.integers(4))
        x0 = 0 if corner in (0, 2) else w - 1
        y0 = 0 if corner in (0, 1) else h - 1
        sx, sy = (1 if x0 == 0 else -1), (1 if y0 == 0 else -1)
        draw.polygon([(x0, y0), (x0 + sx * a, y0), (x0, y0 + sy * b)], fill=dark)
    elif kind == "marks":
        _marks(draw, w, h, dark, rng)
    return img
