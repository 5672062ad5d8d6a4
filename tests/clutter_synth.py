"""Seeded pages with one printed digit, clean and with one kind of clutter around it.

The paper and the clutter are the project's own (:mod:`mnistcnn.data.page_clutter`:
:func:`~mnistcnn.data.page_clutter.ink_on_paper` and
:func:`~mnistcnn.data.page_clutter.add_clutter`, the kinds of
:data:`~mnistcnn.data.page_clutter.CLUTTER_KINDS`); this helper only writes the
digit: DejaVu Sans (from matplotlib), 35-50 % of the shorter side, near the
middle of a 320-480 px page. :func:`make_clutter` returns the cluttered
picture and the same page without the clutter, so a test can compare what
preparation makes of both. Everything is drawn from
``numpy.random.default_rng([seed, kind's index, index])``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digits_synth import FONT_DIR
from mnistcnn.data.page_clutter import CLUTTER_KINDS, add_clutter, ink_on_paper


@dataclass(frozen=True)
class Cluttered:
    """One generated page: ``picture`` (with clutter) and ``clean`` (without), both mode L."""

    label: int
    kind: str
    picture: Image.Image
    clean: Image.Image
    digit_box: tuple[int, int, int, int]  # (left, top, right, bottom) of the digit's ink


def _digit_ink(
    label: int, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[int, int, int, int], int]:
    """A page's ink: float32 (H, W) in [0, 1] with ``label`` near the middle; its box, baseline."""
    w, h = int(rng.integers(320, 480)), int(rng.integers(320, 480))
    font = ImageFont.truetype(
        str(FONT_DIR / "DejaVuSans.ttf"), int(min(w, h) * rng.uniform(0.35, 0.5))
    )
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), str(label), font=font)
    cx = w / 2 + rng.uniform(-0.08, 0.08) * w
    cy = h / 2 + rng.uniform(-0.08, 0.08) * h
    at = (round(cx - (left + right) / 2), round(cy - (top + bottom) / 2))
    draw.text(at, str(label), fill=255, font=font)
    box = draw.textbbox(at, str(label), font=font)
    ink = np.asarray(canvas, np.float32) / 255.0
    return ink, (box[0], box[1], box[2], box[3]), box[3]


def make_clutter(kind: str, seed: int = 0, index: int = 0, label: int | None = None) -> Cluttered:
    """Page ``index`` with clutter ``kind`` (one of ``CLUTTER_KINDS``), deterministic for ``seed``.

    Raises:
        ValueError: an unknown ``kind``.
    """
    if kind not in CLUTTER_KINDS:
        raise ValueError(f"unknown clutter kind {kind!r}; known: {', '.join(CLUTTER_KINDS)}")
    rng = np.random.default_rng([seed, CLUTTER_KINDS.index(kind), index])
    label = index % 10 if label is None else label
    ink, box, baseline = _digit_ink(label, rng)
    clean = ink_on_paper(ink, rng, paper=float(rng.uniform(215, 245)))
    picture = add_clutter(clean, kind, box, baseline, rng)
    return Cluttered(label, kind, picture, clean, box)
