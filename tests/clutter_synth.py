"""Seeded generator of digit photos and scans with clutter around the digit.

Each picture is a page (light grey paper, a little sensor noise) with one dark
digit (DejaVu Sans, from matplotlib) near its middle, and one kind of clutter
that real photos and scans have (issue 11): :data:`KINDS`.

* ``frame``: a dark border around the whole picture (a scanner's lid, a photo's
  black edge), 2-4 % of the side thick;
* ``box``: a rectangle drawn around the digit, not touching the picture's edges;
* ``strip-narrow`` / ``strip-wide``: a dark table edge along one side, 1-3 % or
  15-30 % of the side deep;
* ``shadow``: a soft shadow (a hand, a phone) darkening one side by 30-45 %,
  its soft edge across the nearer third of the digit;
* ``ruled-lines``: a notebook's pale blue-grey lines every 7-9 % of the height
  across the whole page, one of them through the digit, and a red margin line;
* ``punch-holes``: two or three dark filled circles along one side, as a
  scanned binder page shows them;
* ``page-corner``: the table seen beyond one corner of the page (a dark triangle
  whose legs are 20-40 % of the sides);
* ``marks``: a pen dot, a short stroke and a small scribble away from the digit.

:func:`make_clutter` returns the cluttered picture and the same page without
the clutter, so a test can compare what preparation makes of both.
Everything is drawn from ``numpy.random.default_rng([seed, index])``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from digits_synth import FONT_DIR

KINDS = (
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


@dataclass(frozen=True)
class Cluttered:
    """One generated page: ``picture`` (with clutter) and ``clean`` (without), both mode L."""

    label: int
    kind: str
    picture: Image.Image
    clean: Image.Image
    digit_box: tuple[int, int, int, int]  # (left, top, right, bottom) of the digit's ink


def _page(rng: np.random.Generator) -> tuple[Image.Image, int, int, float]:
    w, h = int(rng.integers(320, 480)), int(rng.integers(320, 480))
    paper = float(rng.uniform(215, 245))
    return Image.new("L", (w, h), round(paper)), w, h, paper


def _digit(img: Image.Image, label: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Draw ``label`` dark near the middle of ``img``; returns its ink box."""
    w, h = img.size
    size = int(min(w, h) * rng.uniform(0.35, 0.5))
    font = ImageFont.truetype(str(FONT_DIR / "DejaVuSans.ttf"), size)
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = draw.textbbox((0, 0), str(label), font=font)
    cx = w / 2 + rng.uniform(-0.08, 0.08) * w
    cy = h / 2 + rng.uniform(-0.08, 0.08) * h
    at = (round(cx - (left + right) / 2), round(cy - (top + bottom) / 2))
    ink = int(rng.integers(10, 60))
    draw.text(at, str(label), fill=ink, font=font)
    box = draw.textbbox(at, str(label), font=font)
    return box[0], box[1], box[2], box[3]


def _side_box(side: str, w: int, h: int, depth: int) -> tuple[int, int, int, int]:
    return {
        "top": (0, 0, w - 1, depth - 1),
        "bottom": (0, h - depth, w - 1, h - 1),
        "left": (0, 0, depth - 1, h - 1),
        "right": (w - depth, 0, w - 1, h - 1),
    }[side]


def _shadow(arr: np.ndarray, digit: tuple[int, int, int, int], rng: np.random.Generator) -> None:
    """Darken one side softly; the shadow's soft edge lies across the digit's nearer third."""
    h, w = arr.shape
    side = SIDES[int(rng.integers(4))]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    left, top, right, bottom = digit
    dx, dy = 0.3 * (right - left), 0.3 * (bottom - top)
    pos = {  # (coordinate growing into the page, where the shadow ends: over the digit)
        "top": (yy, top + dy),
        "bottom": (h - 1 - yy, h - 1 - bottom + dy),
        "left": (xx, left + dx),
        "right": (w - 1 - xx, w - 1 - right + dx),
    }
    coord, end = pos[side]
    soft = 0.08 * max(h, w)
    dark = float(rng.uniform(0.30, 0.45))
    factor = 1.0 - dark / (1.0 + np.exp((coord - end) / (soft / 4)))
    arr *= factor


def _clutter(img: Image.Image, kind: str, digit: tuple[int, int, int, int], rng) -> Image.Image:
    w, h = img.size
    draw = ImageDraw.Draw(img)
    dark = int(rng.integers(20, 70))
    if kind == "frame":
        t = max(2, round(min(w, h) * rng.uniform(0.02, 0.04)))
        for side in SIDES:
            draw.rectangle(_side_box(side, w, h, t), fill=dark)
    elif kind == "box":
        m = int(rng.integers(15, 30))
        left, top, right, bottom = digit
        draw.rectangle((left - m, top - m, right + m, bottom + m), outline=dark, width=3)
    elif kind in ("strip-narrow", "strip-wide"):
        lo, hi = (0.01, 0.03) if kind == "strip-narrow" else (0.15, 0.30)
        side = SIDES[int(rng.integers(4))]
        depth = max(2, round((h if side in ("top", "bottom") else w) * rng.uniform(lo, hi)))
        draw.rectangle(_side_box(side, w, h, depth), fill=dark)
    elif kind == "shadow":
        arr = np.asarray(img, np.float32).copy()
        _shadow(arr, digit, rng)
        img = Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8), "L")
    elif kind == "ruled-lines":
        gap = max(8, round(h * rng.uniform(0.07, 0.09)))
        mid = (digit[1] + digit[3]) // 2
        shade = int(rng.integers(150, 190))
        for y in range(mid % gap, h, gap):
            draw.line((0, y, w, y), fill=shade, width=2)
        x = round(w * rng.uniform(0.08, 0.14))
        draw.line((x, 0, x, h), fill=shade - 20, width=2)
    elif kind == "punch-holes":
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
    elif kind == "page-corner":
        a, b = rng.uniform(0.2, 0.4) * w, rng.uniform(0.2, 0.4) * h
        corner = int(rng.integers(4))
        x0 = 0 if corner in (0, 2) else w - 1
        y0 = 0 if corner in (0, 1) else h - 1
        sx, sy = (1 if x0 == 0 else -1), (1 if y0 == 0 else -1)
        draw.polygon([(x0, y0), (x0 + sx * a, y0), (x0, y0 + sy * b)], fill=dark)
    elif kind == "marks":
        places = [(0.12, 0.15), (0.85, 0.2), (0.2, 0.85), (0.82, 0.82)]
        rng.shuffle(places)
        (ax, ay), (bx, by), (cx, cy) = places[:3]
        r = 0.012 * min(w, h)
        draw.ellipse((ax * w - r, ay * h - r, ax * w + r, ay * h + r), fill=dark)
        draw.line((bx * w, by * h, bx * w + 0.06 * w, by * h + 0.02 * h), fill=dark, width=3)
        pts = [(cx * w + 0.05 * w * np.cos(t), cy * h + 0.03 * h * np.sin(3 * t)) for t in
               np.linspace(0, 2 * np.pi, 12)]  # fmt: skip
        draw.line(pts, fill=dark, width=2)
    return img


def _finish(img: Image.Image, noise: np.ndarray) -> Image.Image:
    """Slight blur (a lens) and the page's sensor noise."""
    blurred = np.asarray(img.filter(ImageFilter.GaussianBlur(0.8)), np.float32)
    return Image.fromarray(np.clip(blurred + noise, 0, 255).round().astype(np.uint8), "L")


def make_clutter(kind: str, seed: int = 0, index: int = 0, label: int | None = None) -> Cluttered:
    """Page ``index`` with clutter ``kind`` (one of :data:`KINDS`), deterministic for ``seed``."""
    if kind not in KINDS:
        raise ValueError(f"unknown clutter kind {kind!r}; known: {', '.join(KINDS)}")
    rng = np.random.default_rng([seed, KINDS.index(kind), index])
    label = index % 10 if label is None else label
    page, w, h, _ = _page(rng)
    box = _digit(page, label, rng)
    noise = rng.normal(0, 3.0, (h, w)).astype(np.float32)
    clean = _finish(page, noise)
    picture = _finish(_clutter(page.copy(), kind, box, rng), noise)
    return Cluttered(label, kind, picture, clean, box)
