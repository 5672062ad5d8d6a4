"""Every column of docs/robustness.md's table for a list of checkpoints.

For each checkpoint, through the user's own commands (``mnistcnn evaluate ... --json``):

* clean test accuracy (``mnistcnn evaluate CKPT``);
* MNIST-C: mean and worst per-corruption accuracy (``--corruptions all``);
* the generated realistic set: ``tests/digits_synth.py`` pictures (seed 0), written
  as ``DIR/<digit>/*`` and read back with ``--images DIR`` (predict's preparation);
* "not a digit": AUROC (max softmax probability and energy) against Fashion-MNIST,
  generated drawings, letters and noise, the share of each called unsure, and the
  share of MNIST test digits called unsure (``--ood``).

Usage::

    MNISTCNN_MIRROR=../shared/datasets OMP_NUM_THREADS=1 \\
      .venv/bin/python benchmarks/bench_robustness.py tutorial=runs/t/best.pt best=runs/b/best.pt \\
      --json benchmarks/results/robustness.json

Prints one Markdown row per checkpoint (the columns of docs/robustness.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import add_data_args, write_json

ROOT = Path(__file__).resolve().parent.parent
OOD_SETS = ("fashion-mnist", "drawings", "letters", "noise")


def _evaluate(args: list[str], data: argparse.Namespace) -> dict[str, Any]:
    """``mnistcnn evaluate ARGS --json`` in a subprocess; its JSON."""
    env = dict(os.environ)
    if data.data_root:
        env["MNISTCNN_DATA"] = data.data_root
    if data.mirror:
        env["MNISTCNN_MIRROR"] = data.mirror
    cmd = [sys.executable, "-m", "mnistcnn", "evaluate", *args, "--json"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def write_realistic_set(folder: Path, n: int) -> Path:
    """``n`` generated pictures (tests/digits_synth.py, seed 0) as ``folder/<digit>/<i>.<ext>``."""
    sys.path.insert(0, str(ROOT / "tests"))
    from digits_synth import make_digits

    for i, d in enumerate(make_digits(n, 0)):
        (folder / str(d.label)).mkdir(parents=True, exist_ok=True)
        (folder / str(d.label) / f"{i:04d}.{d.fmt}").write_bytes(d.data)
    return folder


def measure(ckpt: str, realistic: Path, data: argparse.Namespace, out: Path) -> dict[str, Any]:
    """All columns for one checkpoint (fractions in [0, 1])."""
    row: dict[str, Any] = {"checkpoint": ckpt}
    row["clean"] = _evaluate([ckpt, "--out", str(out / "clean")], data)["accuracy"]
    corr = _evaluate([ckpt, "--out", str(out / "corr"), "--corruptions", "all"], data)[
        "corruptions"
    ]
    row["corruptions"] = {c["name"]: c["accuracy"] for c in corr["corruptions"]}
    row["mnist_c_mean"] = corr["mean_accuracy"]
    row["mnist_c_worst"] = [corr["worst"]["name"], corr["worst"]["accuracy"]]
    row["realistic"] = _evaluate(
        [ckpt, "--images", str(realistic), "--out", str(out / "img")], data
    )["accuracy"]
    ood = _evaluate([ckpt, "--ood", ",".join(OOD_SETS), "--out", str(out / "ood")], data)["ood"]
    row["digits_unsure"] = ood["in_unsure"]
    row["ood"] = {
        r["name"]: {k: r[k] for k in ("auroc_msp", "auroc_energy", "unsure")}
        for r in ood["results"]
    }
    row["ood_skipped"] = ood["skipped"]
    return row


def markdown(name: str, row: dict[str, Any]) -> str:
    """One row of docs/robustness.md's table."""

    def pct(x: float) -> str:
        return f"{100 * x:.2f} %"

    ood = row["ood"]

    def auroc(s: str) -> str:
        return f"{ood[s]['auroc_msp']:.3f}" if s in ood else "-"

    worst, acc = row["mnist_c_worst"]
    nondigit = [ood[s]["unsure"] for s in ("drawings", "letters") if s in ood]
    return (
        f"| {name} | {pct(row['clean'])} | {pct(row['mnist_c_mean'])} | {worst} {pct(acc)} "
        f"| {pct(row['realistic'])} | {auroc('fashion-mnist')} | {auroc('drawings')} "
        f"| {auroc('noise')} | {pct(sum(nondigit) / len(nondigit)) if nondigit else '-'} "
        f"| {pct(row['digits_unsure'])} |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="NAME=CKPT pairs (or CKPT)")
    p.add_argument("--realistic", type=int, default=1000, help="generated pictures (default 1000)")
    add_data_args(p)
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        realistic = write_realistic_set(Path(tmp) / "realistic", args.realistic)
        for item in args.checkpoints:
            name, _, ckpt = item.rpartition("=")
            name = name or Path(ckpt).parent.name
            results[name] = measure(ckpt, realistic, args, Path(tmp) / name)
            print(markdown(name, results[name]), flush=True)
    write_json(args.json, {"realistic_pictures": args.realistic, "results": results})


if __name__ == "__main__":
    main()
