"""Output on a console that cannot encode every character (issue 13.4).

With ``PYTHONIOENCODING=cp1252`` a file named ``数字.png`` once made
``predict`` exit 1 with empty stdout, ``--csv`` stop after its header, and
``train --out "runs/数字 run"`` exit 1 after training. Text output now degrades
(``?`` for what the console cannot show), CSV sent to a pipe is UTF-8 (see
tests/test_cli_csv.py), and every file is still written.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mnistcnn
from digits_synth import digit
from mnistcnn.cli.common import tolerant_std_streams
from test_predict_predictor import make_checkpoint

SRC = str(Path(mnistcnn.__file__).resolve().parents[1])


def cp1252(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """``python -m mnistcnn ARGS`` with a cp1252 console (bytes out, as a console gets them)."""
    env = {
        **os.environ,
        "PYTHONIOENCODING": "cp1252",
        "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "mnistcnn", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=300,
    )


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    make_checkpoint(tmp_path / "model.pt")
    digit("7").save(tmp_path / "数字.png")
    digit("3").save(tmp_path / "数字 3.png")
    return tmp_path


def test_predict_a_cjk_file_name_on_a_cp1252_console(pictures: Path) -> None:
    r = cp1252("predict", "model.pt", "数字.png", cwd=pictures)
    assert r.returncode == 0, r.stderr.decode("cp1252")
    out = r.stdout.decode("cp1252")
    assert out.splitlines()[0].startswith("file") and "??.png" in out
    assert b"Traceback" not in r.stderr


def test_predict_csv_writes_every_row_on_a_cp1252_console(pictures: Path) -> None:
    r = cp1252("predict", "model.pt", "数字.png", "数字 3.png", "--csv", cwd=pictures)
    assert r.returncode == 0, r.stderr.decode("cp1252")
    rows = list(csv.reader(io.StringIO(r.stdout.decode("utf-8"))))  # a pipe: UTF-8 data
    assert [row[0] for row in rows] == ["path", "数字.png", "数字 3.png"]


def test_train_into_a_cjk_folder_on_a_cp1252_console(mnist_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "数字 run"
    r = cp1252(
        "train", "--dry-run", "--out", str(out), "--data-root", str(mnist_root), "--no-progress",
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr.decode("cp1252")
    assert "report written to" in r.stdout.decode("cp1252")
    for name in ("best.pt", "config.json", "report.html"):
        assert (out / name).is_file(), name


def test_tolerant_std_streams_only_changes_streams_that_need_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    legacy = io.TextIOWrapper(io.BytesIO(), encoding="cp1252")
    utf8 = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", legacy)
    monkeypatch.setattr(sys, "stderr", utf8)
    assert tolerant_std_streams() == ["stdout"]
    assert legacy.errors == "replace" and utf8.errors == "strict"
    legacy.write("数字 é\n")
    legacy.flush()
    assert legacy.buffer.getvalue() == "?? é\n".encode("cp1252")  # type: ignore[attr-defined]
    assert tolerant_std_streams() == []  # already tolerant: nothing to do
