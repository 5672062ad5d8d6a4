"""Digits among clutter: how often a trained MNIST model reads them right through predict.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_clutter.py CHECKPOINT [--pages 20]

For each clutter kind of mnistcnn.data.page_clutter (seed 0, ``--pages`` pages per
kind, digits cycling 0-9) it prints how many pages ``predict``'s preparation gets
right, how many it gets right with all ink kept (clutter removal and the
morphological background off: ``PreparationSettings(clutter=None,
ink=InkSettings(local_background=0))``), and on the same pages without clutter.
Then the page of the issue: a 400x400 grey (235) page with a dark DejaVu Sans
digit in the middle and a dark 8-px strip along the bottom edge, digits 0-9.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from clutter_synth import make_clutter  # noqa: E402
from digits_synth import FONT_DIR  # noqa: E402
from mnistcnn.data.page_clutter import CLUTTER_KINDS  # noqa: E402
from mnistcnn.predict import Predictor  # noqa: E402
from mnistcnn.prepare import InkSettings, Preparation, PreparationSettings  # noqa: E402


def strip_page(digit: int) -> Image.Image:
    img = Image.new("L", (400, 400), 235)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(FONT_DIR / "DejaVuSans.ttf"), 160)
    left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=font)
    draw.text(
        (200 - (left + right) // 2, 200 - (top + bottom) // 2), str(digit), fill=30, font=font
    )
    draw.rectangle([0, 392, 399, 399], fill=30)
    return img


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--pages", type=int, default=20)
    args = p.parse_args()
    predictor = Predictor.from_checkpoint(args.checkpoint, threshold=0.0)
    keep_all = PreparationSettings(clutter=None, ink=InkSettings(local_background=0))
    print(f"{'kind':14s} predict  all-ink-kept  clean   ({args.pages} pages each)")
    for kind in CLUTTER_KINDS:
        pages = [make_clutter(kind, 0, i) for i in range(args.pages)]
        labels = np.array([pg.label for pg in pages])
        made = {
            "predict": [Preparation().apply(pg.picture).image for pg in pages],
            "kept": [Preparation(settings=keep_all).apply(pg.picture).image for pg in pages],
            "clean": [Preparation().apply(pg.clean).image for pg in pages],
        }
        right = {k: int((predictor.probabilities(np.stack(v)).argmax(1) == labels).sum())
                 for k, v in made.items()}  # fmt: skip
        print(f"{kind:14s} {right['predict']:4d}  {right['kept']:9d}  {right['clean']:9d}")
    preds = predictor.predict([strip_page(d) for d in range(10)])
    shown = ", ".join(f"{d}->{p.topk[0][0]} ({p.topk[0][1]:.1%})" for d, p in enumerate(preds))
    print(f"strip page: {shown}")


if __name__ == "__main__":
    main()
