"""Teach a model one writer's hand: fine-tuning on 1, 5 and 20 labelled pictures per digit.

The writer is :func:`mnistcnn.data.styles.writer_digits`' continental hand
(slashed 0, flagged 1, looped 2, open 4, crossed 7, 9 with a curled tail; the
other digits plain), drawn from template variants and seeds the styles
training never draws. The script writes, as a user would lay them out, dark
ink on white paper at 84x84 px:

* ``OUT/teach-K/<digit>/*.png``: K pictures per digit (seed 1), for K in ``--shots``;
* ``OUT/held-out/<digit>/*.png``: 50 other pictures per digit (seed 2);

then runs the commands a user runs, printing each and its figures:

1. ``mnistcnn evaluate CKPT --images OUT/held-out`` (before);
2. per K: ``mnistcnn train --recipe robust --outlier-exposure 0 --dataset
   folder:OUT/teach-K --init CKPT --val-fraction 0.1 --epochs 15 --lr 0.01
   --batch-size B --out OUT/run-K`` (B = 16, 9 for K = 1: at most the training
   split), then ``evaluate OUT/run-K/last.pt --images OUT/held-out`` and
   ``evaluate OUT/run-K/last.pt --dataset mnist`` (MNIST's test split: what the model
   forgot).

Usage::

    MNISTCNN_MIRROR=../shared/datasets OMP_NUM_THREADS=1 .venv/bin/python \\
        benchmarks/bench_fewshot.py runs/robust-styles-s0/last.pt --out fewshot/
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from _common import write_json
from PIL import Image

from mnistcnn.data.styles import writer_digits

TRAIN = [
    "--recipe", "robust", "--outlier-exposure", "0", "--val-fraction", "0.1", "--epochs", "15",
    "--lr", "0.01", "--no-progress",
]  # fmt: skip


def _write(folder: Path, per_class: int, seed: int) -> None:
    """``per_class`` pictures of every digit as dark ink on white paper, 84x84 px."""
    images, labels = writer_digits(per_class, seed)
    for i, (image, label) in enumerate(zip(images.numpy(), labels.tolist(), strict=True)):
        d = folder / str(label)
        d.mkdir(parents=True, exist_ok=True)
        paper = np.full((36, 36), 255, np.uint8)
        paper[4:32, 4:32] = 255 - image
        Image.fromarray(paper).resize((84, 84), Image.Resampling.BICUBIC).save(d / f"{i:04d}.png")


def _cli(*args: str) -> dict:
    """Run ``mnistcnn ARGS --json`` (evaluate) and return its JSON."""
    cmd = [sys.executable, "-m", "mnistcnn", *args]
    print("$ mnistcnn " + " ".join(args), flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    if out.returncode:
        sys.exit(f"failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout) if "--json" in args else {"output": out.stdout}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--out", type=Path, required=True, help="folder for the pictures and runs")
    p.add_argument("--shots", default="1,5,20", help="pictures per digit to teach")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    shots = [int(k) for k in args.shots.split(",")]
    held = args.out / "held-out"
    _write(held, 50, seed=2)
    ev = _cli("evaluate", args.checkpoint, "--images", str(held), "--json")
    rows = [{"shots": 0, "held_out": ev["accuracy"], "mnist": None}]
    print(f"before: {ev['accuracy']:.2%} on {ev['num_samples']} held-out pictures", flush=True)
    for k in shots:
        teach, run = args.out / f"teach-{k}", args.out / f"run-{k}"
        _write(teach, k, seed=1)
        batch = str(min(16, 9 * k))  # at most the training split (90 % of 10 K pictures)
        _cli("train", *TRAIN, "--batch-size", batch, "--dataset", f"folder:{teach}",
             "--init", args.checkpoint, "--out", str(run))  # fmt: skip
        after = _cli("evaluate", str(run / "last.pt"), "--images", str(held), "--json")
        mnist = _cli("evaluate", str(run / "last.pt"), "--dataset", "mnist", "--json")
        rows.append({"shots": k, "held_out": after["accuracy"], "mnist": mnist["accuracy"]})
        print(
            f"{k} per digit: {after['accuracy']:.2%} held-out, MNIST test {mnist['accuracy']:.2%}",
            flush=True,
        )
    write_json(args.json, {"checkpoint": args.checkpoint, "rows": rows})


if __name__ == "__main__":
    main()
