"""Training throughput on this machine's CPUs: 1 process vs N data-parallel processes.

Runs the tutorial recipe (batch 64 global, Adam, no normalization) for
``--epochs`` epoch(s) on real MNIST once per setting, each as a fresh
``python -m mnistcnn train`` (``--nproc N`` launches torchrun with gloo), with
``OMP_NUM_THREADS`` fixed so that every setting uses the same number of cores:

    1 proc x T threads      the default single-process run
    N procs x T/N threads   DistributedDataParallel, same global batch

Throughput is training images per second of training time (``train_seconds``
in metrics.csv: the epoch's steps, without evaluation, start-up or the report);
wall seconds of the whole command are shown beside it. Prints a table, writes
JSON. Run it on a quiet machine; the ratio is the figure that matters.

    python benchmarks/bench_ddp.py --data-root ~/.cache/mnistcnn --out bench_ddp.json
    python benchmarks/bench_ddp.py --cores 4 --nproc 1 2 4
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_one(nproc: int, threads: int, args: argparse.Namespace, folder: Path) -> dict:
    """Train once with ``nproc`` processes of ``threads`` threads; return its figures."""
    out = folder / f"p{nproc}-t{threads}"
    cmd = [sys.executable, "-m", "mnistcnn", "train", "--epochs", str(args.epochs)]
    cmd += ["--device", "cpu", "--no-progress", "--seed", "0", "--out", str(out)]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    if args.train_subset:
        cmd += ["--train-subset", str(args.train_subset)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if args.data_root:
        env["MNISTCNN_DATA"] = str(args.data_root)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    train_s = sum(float(r["train_seconds"]) for r in rows)
    images = json.loads((out / "config.json").read_text()).get("train_subset") or 60000
    return {
        "processes": nproc,
        "threads_per_process": threads,
        "epochs": args.epochs,
        "train_images": images * args.epochs,
        "train_seconds": train_s,
        "images_per_second": images * args.epochs / train_s,
        "eval_seconds": sum(float(r["eval_seconds"]) for r in rows),
        "wall_seconds": wall,
        "test_accuracy": float(rows[-1]["test_accuracy"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=2, help="Threads in total per setting. [2]")
    parser.add_argument(
        "--nproc", type=int, nargs="+", default=[1, 2], help="Process counts to compare. [1 2]"
    )
    parser.add_argument("--epochs", type=int, default=1, help="Epochs per run. [1]")
    parser.add_argument("--train-subset", type=int, help="Train on the first N images only.")
    parser.add_argument("--data-root", type=Path, help="Data root with MNIST. [$MNISTCNN_DATA]")
    parser.add_argument("--out", type=Path, default=Path("bench_ddp.json"), help="JSON output.")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        for n in args.nproc:
            threads = max(1, args.cores // n)
            print(f"running {n} process(es) x {threads} thread(s)...", file=sys.stderr)
            results.append(run_one(n, threads, args, Path(tmp)))
    base = results[0]["images_per_second"]
    print(f"{'procs':>5} {'threads':>7} {'images/s':>10} {'vs first':>8} {'train s':>8} "
          f"{'wall s':>7} {'test acc':>8}")  # fmt: skip
    for r in results:
        r["speedup"] = r["images_per_second"] / base
        print(
            f"{r['processes']:>5} {r['threads_per_process']:>7} {r['images_per_second']:>10.0f} "
            f"{r['speedup']:>7.2f}x {r['train_seconds']:>8.1f} {r['wall_seconds']:>7.1f} "
            f"{100 * r['test_accuracy']:>7.2f}%"
        )
    report = {
        "benchmark": "tutorial recipe, CPU, 1 vs N processes (gloo DDP)",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "results": results,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
