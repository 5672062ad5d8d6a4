"""Seeded pictures that are not digits: drawings, letters and noise (for out-of-distribution tests).

What people bring to a digit recognizer that is not a digit: a doodle (a house,
a star, a smiley...), a letter, a blank or noisy scan. Everything is drawn with
Pillow from a ``numpy.random.Generator`` seeded with ``(seed, index)``, so a
set is the same on every machine; letters use the DejaVu fonts bundled with
matplotlib (no system font needed).

* :func:`drawings`: black strokes 6-16 px wide on white paper, 160-320 px,
  one of :data:`SHAPES` at a random place, size and rotation;
* :func:`letters`: capital letters that do not look like digits
  (:data:`LETTERS`; no O/D/Q for 0, I for 1, Z for 2, S for 5, G for 6, B for 8),
  dark on light, random font, size and place;
* :func:`noise`: uint8 (N, 28, 28) in the datasets' own format: uniform,
  Gaussian-blurred and salt-and-pepper noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

#: The kinds of drawing :func:`drawings` makes, in turn. No circle: a circle is a fair 0
#: (a model trained with outlier exposure on circles called round zeros "unsure").
SHAPES = ("house", "square", "triangle", "star", "smiley", "cross", "arrow",
          "spiral", "grid", "heart", "cloud")  # fmt: skip
#: Capital letters that no digit resembles.
LETTERS = "ACEFHJKLMNPRTUVWXY"
_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
          "DejaVuSansMono.ttf", "DejaVuSans-Oblique.ttf")  # fmt: skip


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


def drawings(n: int, seed: int = 0) -> list[Image.Image]:
    """``n`` RGB pictures of simple non-digit drawings (see the module docstring).

    Raises:
        ValueError: ``n`` < 0.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [_drawing(SHAPES[i % len(SHAPES)], _rng(seed, i)) for i in range(n)]


def _drawing(shape: str, rng: np.random.Generator) -> Image.Image:
    size = int(rng.integers(160, 321))
    img = Image.new("L", (size, size), int(rng.integers(215, 256)))
    draw = ImageDraw.Draw(img)
    width = int(rng.integers(6, 17))
    extent = size * rng.uniform(0.45, 0.8) / 2  # half the drawing's size, px
    cx = size / 2 + rng.uniform(-1, 1) * (size / 2 - extent - width)
    cy = size / 2 + rng.uniform(-1, 1) * (size / 2 - extent - width)
    ink = int(rng.integers(0, 70))
    for points, closed in _strokes(shape, rng):
        pts = [(cx + extent * x, cy + extent * y) for x, y in _rotate(points, rng)]
        if closed:
            pts.append(pts[0])
        draw.line(pts, fill=ink, width=width, joint="curve")
    return img.convert("RGB")


def _rotate(
    points: list[tuple[float, float]], rng: np.random.Generator
) -> list[tuple[float, float]]:
    a = math.radians(rng.uniform(-20, 20))
    c, s = math.cos(a), math.sin(a)
    return [(c * x - s * y, s * x + c * y) for x, y in points]


def _arc(
    cx: float, cy: float, r: float, a0: float, a1: float, k: int = 24
) -> list[tuple[float, float]]:
    return [
        (cx + r * math.cos(a0 + (a1 - a0) * t / k), cy + r * math.sin(a0 + (a1 - a0) * t / k))
        for t in range(k + 1)
    ]


def _strokes(shape: str, rng: np.random.Generator) -> list[tuple[list[tuple[float, float]], bool]]:
    """Polylines in [-1, 1]^2 (y down) making ``shape``; ``True`` closes a line."""
    if shape == "house":
        return [([(-0.8, 1), (-0.8, -0.1), (0, -0.9), (0.8, -0.1), (0.8, 1)], True),
                ([(-0.2, 1), (-0.2, 0.4), (0.2, 0.4), (0.2, 1)], False)]  # fmt: skip
    if shape == "square":
        return [([(-0.9, -0.9), (0.9, -0.9), (0.9, 0.9), (-0.9, 0.9)], True)]
    if shape == "triangle":
        return [([(0, -0.9), (0.9, 0.8), (-0.9, 0.8)], True)]
    if shape == "star":
        angles = [math.pi * (0.5 + 0.8 * k) for k in range(5)]  # every second corner
        return [([(0.95 * math.cos(a), -0.95 * math.sin(a)) for a in angles], True)]
    if shape == "smiley":
        return [(_arc(0, 0, 0.9, 0, 2 * math.pi, 48)[:-1], True),
                (_arc(0, 0.1, 0.5, 0.2 * math.pi, 0.8 * math.pi), False),
                ([(-0.35, -0.35), (-0.3, -0.3)], False),
                ([(0.3, -0.35), (0.35, -0.3)], False)]  # fmt: skip
    if shape == "cross":
        return [([(-0.9, -0.9), (0.9, 0.9)], False), ([(0.9, -0.9), (-0.9, 0.9)], False)]
    if shape == "arrow":
        return [([(-0.9, 0), (0.9, 0)], False), ([(0.4, -0.5), (0.9, 0), (0.4, 0.5)], False)]
    if shape == "spiral":
        turns = [(0.9 * t / 80, 5 * math.pi * t / 80) for t in range(81)]  # (radius, angle)
        return [([(r * math.cos(a), r * math.sin(a)) for r, a in turns], False)]
    if shape == "grid":
        lines = [([(-0.9, y), (0.9, y)], False) for y in (-0.9, -0.3, 0.3, 0.9)]
        return lines + [([(x, -0.9), (x, 0.9)], False) for x in (-0.9, -0.3, 0.3, 0.9)]
    if shape == "heart":
        left = _arc(-0.42, -0.3, 0.45, math.pi, 2 * math.pi)
        right = _arc(0.42, -0.3, 0.45, math.pi, 2 * math.pi)
        return [(left + right + [(0, 0.9)], True)]
    if shape == "cloud":  # three bumps that meet, on a flat base
        bumps = [_arc(x, 0.2, 0.3, math.pi, 2 * math.pi, 16) for x in (-0.6, 0.0, 0.6)]
        return [([p for bump in bumps for p in bump] + [(0.9, 0.5), (-0.9, 0.5)], True)]
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def letters(n: int, seed: int = 0) -> list[Image.Image]:
    """``n`` RGB pictures of one capital letter each (from :data:`LETTERS`).

    Raises:
        ValueError: ``n`` < 0.
    """
    return glyphs(LETTERS, _FONTS, n, lambda i: _rng(seed, i))


def glyphs(
    chars: str,
    fonts: Sequence[str],
    n: int,
    rng_of: Callable[[int], np.random.Generator],
) -> list[Image.Image]:
    """``n`` RGB pictures of one character each (``chars`` in turn), dark on light.

    Picture ``i`` draws everything from ``rng_of(i)``: a square canvas of 96-256
    px, paper grey 215-255, one of ``fonts`` (matplotlib's bundled TrueType files)
    at 45-75 % of the side, the character anywhere it fits, ink grey 0-69.

    Raises:
        ValueError: ``n`` < 0.
    """
    import matplotlib

    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    out = []
    for i in range(n):
        rng = rng_of(i)
        size = int(rng.integers(96, 257))
        img = Image.new("L", (size, size), int(rng.integers(215, 256)))
        font = ImageFont.truetype(str(folder / fonts[int(rng.integers(len(fonts)))]),
                                  int(size * rng.uniform(0.45, 0.75)))  # fmt: skip
        char = chars[i % len(chars)]
        left, top, right, bottom = font.getbbox(char)
        x = rng.uniform(0, max(1, size - (right - left))) - left
        y = rng.uniform(0, max(1, size - (bottom - top))) - top
        ImageDraw.Draw(img).text((x, y), char, fill=int(rng.integers(0, 70)), font=font)
        out.append(img.convert("RGB"))
    return out


def noise(n: int, seed: int = 0) -> np.ndarray:
    """uint8 (n, 28, 28) noise images, light on dark as the datasets store digits.

    A third each: uniform 0..255, uniform noise blurred (Gaussian, sigma 1-2 px),
    and salt-and-pepper (5-30 % of pixels at 255).

    Raises:
        ValueError: ``n`` < 0.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        rng = _rng(seed, i)
        kind = i % 3
        if kind == 0:
            out[i] = rng.integers(0, 256, (28, 28))
        elif kind == 1:
            img = Image.fromarray(rng.integers(0, 256, (28, 28)).astype(np.uint8))
            blurred = np.asarray(img.filter(ImageFilter.GaussianBlur(rng.uniform(1, 2))), float)
            span = max(1.0, float(np.ptp(blurred)))
            out[i] = np.round(255 * (blurred - blurred.min()) / span).astype(np.uint8)
        else:
            out[i] = np.where(rng.random((28, 28)) < rng.uniform(0.05, 0.3), 255, 0)
    return out
