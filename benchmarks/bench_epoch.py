"""Seconds per training epoch of the ``tutorial`` recipe: the seed's code path vs mnistcnn's.

Rows, all in this one process, interleaved ``--repeats`` times (the best of
each is kept, so a noisy neighbour hurts every row alike):

* ``seed code``: the tutorial's own loop: torchvision MNIST + ``ToTensor`` +
  DataLoader (batch 64, shuffled), the tutorial model layer by layer (fast path off),
  ``torch.optim.Adam`` (default implementation) and ``loss.item()`` every step.
  This is the baseline.
* ``mnistcnn dataloader``: ``mnistcnn.engine.loop.fit`` with ``--loader dataloader``.
* ``mnistcnn tensor``: ``fit`` with ``--loader tensor`` (the default): the
  whole split as a uint8 tensor, batches by indexing, the tutorial model's
  fast forward (``fit`` turns it on), fused Adam. Target: <= 2.5 s/epoch and >= 3x the seed code.

Every row trains the same math (batch 64, Adam lr 0.01, fp32). By default each
row times ``--steps`` steps and scales to a full epoch (938 steps); ``--full``
times whole epochs. Wall and process CPU seconds are both reported: on a
shared machine the CPU seconds show the work, the wall seconds what you wait.

Example::

    python benchmarks/bench_epoch.py --mirror /work/shared/datasets --json out.json
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from typing import Any

import torch
from _common import add_data_args, write_json
from torch.nn import functional as F

from mnistcnn import data as mdata
from mnistcnn.config import recipe_config
from mnistcnn.engine.loop import fit
from mnistcnn.engine.sources import build_sources
from mnistcnn.engine.utils import seed_everything, versions
from mnistcnn.models import create_model

Row = Callable[[int | None], tuple[float, float, int]]


def seed_code(args: argparse.Namespace) -> Row:
    """The tutorial's loop as it was written (the baseline); returns a timing function."""
    from torch.utils.data import DataLoader
    from torchvision import transforms

    ds = mdata.load_dataset(
        "mnist",
        train=True,
        root=args.data_root,
        mirror=args.mirror,
        transform=transforms.ToTensor(),
    )

    def run(steps: int | None) -> tuple[float, float, int]:
        seed_everything(0)
        model = create_model("tutorial")  # fast path off: the plain layer-by-layer forward
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        loader = DataLoader(ds, batch_size=64, shuffle=True)
        model.train()
        n = 0
        wall, cpu = time.perf_counter(), time.process_time()
        for images, labels in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            opt.step()
            _ = loss.item()  # the tutorial logs the running loss
            n += 1
            if steps is not None and n >= steps:
                break
        return time.perf_counter() - wall, time.process_time() - cpu, n

    return run


def mnistcnn_fit(args: argparse.Namespace, loader: str) -> Row:
    """``fit`` on the tutorial recipe with ``loader``; returns a timing function."""
    device = torch.device("cpu")
    base = recipe_config("tutorial", loader=loader, device="cpu", epochs=1)
    sources = build_sources(base, device, data_root=args.data_root, mirror=args.mirror)

    def run(steps: int | None) -> tuple[float, float, int]:
        config = base.replace(max_steps=steps)
        seed_everything(0)
        model = create_model("tutorial").to(device)
        cpu = time.process_time()
        history = fit(model, sources.train, {}, config)
        return history.last["train_seconds"], time.process_time() - cpu, history.steps

    return run


def measure(rows: dict[str, Row], steps: int | None, repeats: int) -> dict[str, dict[str, Any]]:
    """Run every row ``repeats`` times, interleaved; keep each row's best (per epoch)."""
    per_epoch = math.ceil(60000 / 64)
    out: dict[str, dict[str, Any]] = {name: {"wall": [], "cpu": []} for name in rows}
    for _ in range(repeats):
        for name, run in rows.items():
            wall, cpu, n = run(steps)
            out[name]["wall"].append(wall / n * per_epoch)
            out[name]["cpu"].append(cpu / n * per_epoch)
            out[name]["steps"] = n
    for r in out.values():
        r["wall_s_per_epoch"], r["cpu_s_per_epoch"] = min(r["wall"]), min(r["cpu"])
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options (see ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--steps",
        type=int,
        default=300,
        help="steps timed per row, scaled to an epoch of 938 (300)",
    )
    p.add_argument("--full", action="store_true", help="time whole epochs instead of --steps")
    p.add_argument("--repeats", type=int, default=2, help="interleaved rounds; best kept (2)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (torch's)")
    add_data_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write ``--json``; returns the results."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    mdata.fetch_dataset("mnist", args.data_root, args.mirror)
    rows = {
        "seed code": seed_code(args),
        "mnistcnn dataloader": mnistcnn_fit(args, "dataloader"),
        "mnistcnn tensor": mnistcnn_fit(args, "tensor"),
    }
    load0 = os.getloadavg()[0]
    timings = measure(rows, None if args.full else args.steps, args.repeats)
    base = timings["seed code"]
    for r in timings.values():
        r["speedup_wall"] = base["wall_s_per_epoch"] / r["wall_s_per_epoch"]
        r["speedup_cpu"] = base["cpu_s_per_epoch"] / r["cpu_s_per_epoch"]
    result = {
        "rows": timings,
        "threads": torch.get_num_threads(),
        "full": args.full,
        "loadavg_1min": [load0, os.getloadavg()[0]],
        "versions": versions(),
        "target": {"tensor_s_per_epoch": 2.5, "speedup": 3.0},
    }
    _print(result)
    write_json(args.json, result)
    return result


def _print(result: dict[str, Any]) -> None:
    how = "whole epochs" if result["full"] else "scaled to 938 steps"
    load = result["loadavg_1min"]
    print(
        f"tutorial recipe, s/epoch ({how}; {result['threads']} threads; "
        f"load {load[0]:.1f} -> {load[1]:.1f})"
    )
    print(f"{'path':<22} {'wall s':>7} {'cpu s':>7} {'x wall':>7} {'x cpu':>7}")
    for name, r in result["rows"].items():
        print(
            f"{name:<22} {r['wall_s_per_epoch']:>7.2f} {r['cpu_s_per_epoch']:>7.2f} "
            f"{r['speedup_wall']:>7.2f} {r['speedup_cpu']:>7.2f}"
        )
    t = result["rows"]["mnistcnn tensor"]
    met = t["wall_s_per_epoch"] <= 2.5 and t["speedup_wall"] >= 3.0
    print(f"target (tensor <= 2.5 s/epoch and >= 3x): {'met' if met else 'missed'}")


if __name__ == "__main__":
    main()
