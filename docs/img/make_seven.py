"""Draw docs/img/seven.jpg: the picture the README's quick start predicts on.

    .venv/bin/python docs/img/make_seven.py

A 7 written with a blue pen on off-white paper (a wobbly, tapering stroke with a
bar across), under uneven light with paper grain, saved as a JPEG as a phone would:
what a user's own picture looks like, not an MNIST image. Deterministic (seed 7).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parent / "seven.jpg"


def stroke(pen: ImageDraw.ImageDraw, points: list[tuple[float, float]], width: float,
           rng: np.random.Generator) -> None:  # fmt: skip
    """A pen stroke through ``points``: many short segments, width tapering at the end."""
    path = np.array(points, np.float64)
    t = np.linspace(0, 1, 80)
    seg = np.interp(t * (len(path) - 1), np.arange(len(path)), np.arange(len(path)))
    i = np.minimum(seg.astype(int), len(path) - 2)
    f = (seg - i)[:, None]
    xy = path[i] * (1 - f) + path[i + 1] * f + rng.normal(0, 0.8, (len(t), 2)).cumsum(0) * 0.3
    for k in range(len(t) - 1):
        w = width * (1.0 - 0.45 * t[k] ** 2)
        pen.line([tuple(xy[k]), tuple(xy[k + 1])], fill=0, width=max(2, round(w)))
        pen.ellipse([xy[k][0] - w / 2, xy[k][1] - w / 2, xy[k][0] + w / 2, xy[k][1] + w / 2], 0)


def main() -> None:
    rng = np.random.default_rng(7)
    h, w = 320, 260
    mask = Image.new("L", (w, h), 255)
    pen = ImageDraw.Draw(mask)
    stroke(pen, [(62, 78), (120, 70), (188, 66), (160, 140), (128, 210), (108, 262)], 15, rng)
    stroke(pen, [(98, 168), (150, 162), (178, 160)], 12, rng)
    ink = 1 - np.asarray(mask.filter(ImageFilter.GaussianBlur(1.2)), np.float32) / 255
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    light = 1.0 - 0.28 * (xx * 0.7 + yy * 0.5) + rng.normal(0, 0.015, (h, w))
    paper, blue = np.array([242, 236, 222], np.float32), np.array([28, 40, 120], np.float32)
    rgb = (paper * (1 - ink[..., None]) + blue * ink[..., None]) * light[..., None]
    Image.fromarray(np.clip(rgb, 0, 255).round().astype(np.uint8)).save(OUT, quality=80)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
