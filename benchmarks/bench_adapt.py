"""Accuracy with and without adapting to a batch without labels (``predict --adapt``).

For one checkpoint, each batch below is given as a whole to
:func:`mnistcnn.predict.adapt.adapt` (AdaBN, and TENT then AdaBN), and the
adapted copy's top-1 accuracy on that same batch is compared with the model's:

* ``writer``: one continental hand (slashed 0, flagged 1, looped 2, open 4,
  crossed 7, curled 9; :func:`mnistcnn.data.styles.writer_digits`, seed 3), 20
  of each digit: the case ``--adapt`` is for (one writer, all digits);
* ``pen-thin``, ``pen-thick``, ``plain``: those styles of the held-out styles set
  (200 pictures, all ten digits);
* ``styles set``: all 2,200 pictures of the held-out styles set in one batch;
* each MNIST-C corruption: its first ``--limit`` test images (seed 0), and the
  clean first ``--limit``: what adapting does where nothing is wrong.

Usage (one thread, as every figure in docs/robustness.md)::

    MNISTCNN_MIRROR=../shared/datasets OMP_NUM_THREADS=1 .venv/bin/python \\
        benchmarks/bench_adapt.py runs/robust-styles-s0/last.pt --json adapt.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import add_data_args, write_json

from mnistcnn import data as mdata
from mnistcnn.artifact import TrainedModel, load
from mnistcnn.data.corruption_cache import corrupted_images
from mnistcnn.data.corruptions import CORRUPTIONS
from mnistcnn.data.styles import styles_set, writer_digits
from mnistcnn.predict.adapt import adapt


def _answers(model: TrainedModel, images: torch.Tensor) -> torch.Tensor:
    """Top-1 class of uint8 (N, 28, 28) images, int64 (N,)."""
    return torch.cat(
        [
            model.probabilities(images[i : i + 1000]).argmax(1).cpu()
            for i in range(0, len(images), 1000)
        ]
    )


def _row(name: str, model: TrainedModel, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """Accuracy of the model and of its adapted copies on one batch; answers changed."""
    start = time.perf_counter()
    before = _answers(model, images)
    row = {"batch": name, "pictures": len(images), "none": float((before == labels).float().mean())}
    for method in ("adabn", "tent"):
        after = _answers(adapt(model, images, method), images)
        row[method] = float((after == labels).float().mean())
        row[f"{method}_changed"] = int((after != before).sum())
    row["seconds"] = round(time.perf_counter() - start, 1)
    print(
        f"{name:>16} {len(images):>6} {row['none']:>8.2%} {row['adabn']:>8.2%} "
        f"{row['tent']:>8.2%} {row['adabn_changed']:>8} {row['tent_changed']:>8}",
        flush=True,
    )
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--limit", type=int, default=2000, help="MNIST(-C) test images per batch")
    add_data_args(p)
    args = p.parse_args()
    torch.set_num_threads(1)
    model = load(args.checkpoint, map_location="cpu").eval()
    print(
        f"{'batch':>16} {'images':>6} {'none':>8} {'adabn':>8} {'tent':>8} "
        f"{'changed':>8} {'(tent)':>8}"
    )
    rows = []
    x, y = writer_digits(20, seed=3)
    rows.append(_row("writer", model, x, y))
    data = styles_set()
    groups = dict(data.groups())
    for name in ("pen-thin", "pen-thick", "plain"):
        rows.append(_row(name, model, data.images[groups[name]], data.labels[groups[name]]))
    rows.append(_row("styles set", model, data.images, data.labels))
    test, labels = mdata.load_arrays("mnist", train=False, root=args.data_root, mirror=args.mirror)
    clean, labels = test[: args.limit], labels[: args.limit]
    rows.append(_row("clean", model, clean, labels))
    for name in CORRUPTIONS:  # the cache of `evaluate --corruptions` (all 10,000), its first ones
        bad = corrupted_images(
            test.numpy(), name, dataset="mnist", root=args.data_root, count=args.limit
        )
        rows.append(_row(name, model, torch.from_numpy(np.asarray(bad.images)), labels))
    corrupted = [r for r in rows if r["batch"] in CORRUPTIONS]
    means = {m: float(np.mean([r[m] for r in corrupted])) for m in ("none", "adabn", "tent")}
    print(
        f"{'MNIST-C mean':>16} {'':>6} {means['none']:>8.2%} {means['adabn']:>8.2%} "
        f"{means['tent']:>8.2%}"
    )
    write_json(args.json, {"checkpoint": args.checkpoint, "rows": rows, "mnist_c_mean": means})


if __name__ == "__main__":
    main()
