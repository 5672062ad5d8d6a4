"""Accuracy of one model, an ensemble, and each with test-time augmentation (TTA).

Scores top-1 accuracy on the MNIST test set (10,000 IDX images, as
``mnistcnn predict CKPT t10k-images-idx3-ubyte`` predicts them) and on generated
realistic pictures (``tests/digits_synth.py``, as ``mnistcnn predict`` prepares
them; a picture found blank counts as wrong), for:

* each checkpoint alone, with and without ``--tta``;
* the ensemble of all checkpoints, with and without ``--tta``;
* with ``--candidates``: other view sets, to choose ``DEFAULT_VIEWS`` by
  measurement (on a seed other than the reported one).

Pictures are prepared once per set (the preparation does not depend on the
model), then every predictor scores the prepared 28x28 images.

    .venv/bin/python benchmarks/bench_ensemble_tta.py --data-root ~/.cache/mnistcnn \
        --synth-seed 0 /work/bench/fast/best.pt /work/bench/tutorial/best.pt ...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from digits_synth import make_digits  # noqa: E402
from mnistcnn.data.idx import read_idx  # noqa: E402
from mnistcnn.predict import Predictor  # noqa: E402
from mnistcnn.predict.ensemble import EnsemblePredictor  # noqa: E402
from mnistcnn.predict.tta import DEFAULT_VIEWS, IDENTITY, View  # noqa: E402
from mnistcnn.prepare import Preparation, PreparationSettings  # noqa: E402


def _shifts(k: int) -> list[View]:
    return [View(dx=k), View(dx=-k), View(dy=k), View(dy=-k)]


def _rots(a: float) -> list[View]:
    return [View(angle=a), View(angle=-a)]


CANDIDATES: dict[str, tuple[View, ...]] = {
    "none": IDENTITY,
    "shift1": (View(), *_shifts(1)),
    "rot5": (View(), *_rots(5)),
    "rot8": (View(), *_rots(8)),
    "rot12": (View(), *_rots(12)),
    "shift1+rot5": (View(), *_shifts(1), *_rots(5)),
    "shift1+rot8": (View(), *_shifts(1), *_rots(8)),
    "shift1+rot12": (View(), *_shifts(1), *_rots(12)),
    "shift2+rot8": (View(), *_shifts(2), *_rots(8)),
    "rot8+rot15": (View(), *_rots(8), *_rots(15)),
}


def synth_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Prepared uint8 (n, 28, 28) of the generated pictures (blank: all zero) and labels."""
    digits = make_digits(n, seed=seed)
    images = np.zeros((n, 28, 28), np.uint8)
    for i, d in enumerate(digits):
        r = Preparation(invert="auto", settings=PreparationSettings()).apply(d.image)
        if r.ink_found:
            images[i] = r.image
    return images, np.array([d.label for d in digits])


def accuracy(pred: Predictor, images: np.ndarray, labels: np.ndarray) -> float:
    probs = pred.probabilities(images)
    blank = ~images.reshape(len(images), -1).any(1)
    top = probs.argmax(1)
    return float(np.mean((top == labels) & ~blank))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--data-root", default=str(Path.home() / ".cache/mnistcnn"))
    ap.add_argument("--synth-seed", type=int, default=0)
    ap.add_argument("--synth-count", type=int, default=300)
    ap.add_argument("--mnist-count", type=int, default=10_000)
    ap.add_argument("--candidates", action="store_true", help="score every candidate view set")
    ap.add_argument("--no-singles", action="store_true", help="score only the ensemble")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()

    raw = Path(args.data_root) / "MNIST" / "raw"
    mnist = (
        read_idx(raw / "t10k-images-idx3-ubyte")[: args.mnist_count],
        read_idx(raw / "t10k-labels-idx1-ubyte")[: args.mnist_count].astype(np.int64),
    )
    t = time.perf_counter()
    synth = synth_set(args.synth_count, args.synth_seed)
    print(f"prepared {args.synth_count} generated pictures in {time.perf_counter() - t:.1f} s")
    members = [Predictor.from_checkpoint(c) for c in args.checkpoints]
    sets = {"mnist": mnist, f"synth{args.synth_seed}": synth}
    views = CANDIDATES if args.candidates else {"none": IDENTITY, "tta": DEFAULT_VIEWS}
    rows = []
    groups = [] if args.no_singles else [[m] for m in members]
    groups += [members] if len(members) > 1 else []
    for group in groups:
        name = "+".join(str(m.checkpoint.path) for m in group if m.checkpoint)  # type: ignore[union-attr]
        for vname, vs in views.items():
            ens = EnsemblePredictor(group, vs)
            row = {"models": name, "views": vname}
            for sname, (x, y) in sets.items():
                row[sname] = accuracy(ens, x, y)
            rows.append(row)
            figs = "  ".join(f"{k} {100 * v:6.2f}%" for k, v in row.items() if k in sets)
            print(f"{name:70s} {vname:13s} {figs}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
