"""docs/library.md's example runs as written and prints evaluate's accuracy (slow).

The block is taken from docs/library.md, run in a fresh Python process in a temporary
folder (real MNIST through the user's code path: ``MNISTCNN_DATA`` is a temporary
root filled from ``../shared/datasets`` as a mirror), and its printed accuracy is
compared with ``mnistcnn evaluate``'s on the checkpoint it wrote.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LIBRARY = Path(__file__).resolve().parents[1] / "docs" / "library.md"


def library_block() -> str:
    text = LIBRARY.read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match, "no python block in docs/library.md"
    return match.group(1)


def test_readme_library_example_prints_evaluates_accuracy(shared_datasets, tmp_path):
    env = {
        **os.environ,
        "MNISTCNN_DATA": str(tmp_path / "data"),
        "MNISTCNN_MIRROR": str(shared_datasets),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
    }
    run = subprocess.run(
        [sys.executable, "-c", library_block()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    by_hand, by_evaluate = (float(line.split()[1]) for line in lines[:2])
    assert by_hand == by_evaluate
    assert lines[3] == lines[2].split(" - ")[0]  # Predictor's label for test image 0
    cli = subprocess.run(
        [sys.executable, "-m", "mnistcnn", "evaluate", "runs/library/best.pt", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert round(json.loads(cli.stdout)["accuracy"], 4) == by_evaluate
    assert (tmp_path / "runs" / "library" / "report.html").is_file()
    print(f"\ndocs/library.md block: accuracy {by_hand:.4f}; evaluate {by_evaluate:.4f}")
    print(run.stdout)
