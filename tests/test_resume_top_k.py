"""Resuming from a top-k copy (tensorboard#3732 kind): `train --resume R/top/epoch-001-...pt`
wrote a whole second run inside the managed R/top/ (config.json, metrics.csv, report,
tensorboard, top/top/top.json). It is refused, saying what to do instead, and R is left
as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mnistcnn

SRC = str(Path(mnistcnn.__file__).resolve().parents[1])


def _train(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "mnistcnn", "train", "--no-progress", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def _tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_resuming_a_top_k_copy_is_refused_and_nests_nothing(mnist_root: Path, tmp_path: Path):
    run = tmp_path / "R"
    first = _train("--epochs", "2", "--keep-top", "2", "--tensorboard", "--train-subset", "256",
                   "--data-root", str(mnist_root), "--out", str(run))  # fmt: skip
    assert first.returncode == 0, first.stderr
    (copy,) = sorted((run / "top").glob("epoch-001-*.pt"))
    before = _tree(run)
    again = _train("--resume", str(copy), "--data-root", str(mnist_root))
    assert again.returncode == 1, again.stderr
    assert again.stderr.strip().splitlines()[-1] == (
        f"error: --resume {copy}: a top-k copy that run {run} keeps in {run / 'top'} "
        f"(--keep-top); resuming it would start a second run inside {run / 'top'}. Continue "
        f"the run from its last checkpoint (resume {run}), or start a new run from these "
        f"weights (init {copy})"
    )
    assert _tree(run) == before  # nothing nested in top/, nothing changed
    assert not (run / "top" / "config.json").exists() and not (run / "top" / "top").exists()
