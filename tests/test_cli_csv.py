"""``predict --csv`` and ``read --csv`` as a user pipes them: rows as they come, UTF-8 data.

The real command line runs in a subprocess: a Ctrl-C (SIGINT) after the first
rows leaves every row written so far, complete, and exits 130 without a
traceback; on a cp1252 console, CSV sent to a pipe is UTF-8 with the names
exactly as they are; on a cp1252 terminal the names it cannot show print as
``?``, with one note saying how to get them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import mnistcnn
from digits_synth import digit
from mnistcnn.cli.read import CSV_HEADER
from test_predict_predictor import make_checkpoint

SRC = str(Path(mnistcnn.__file__).resolve().parents[1])
PICTURES = 300  # far more than are predicted between the first row and the SIGINT
PREDICT_HEADER = ["path", "label", "probability", "unsure", "error"] + [
    f"top{i}_{f}" for i in (1, 2, 3) for f in ("label", "prob")
]


def env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def mnistcnn_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "mnistcnn", *args]


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint and a folder of PICTURES digit pictures (120x160, so predicted one by one)."""
    root = tmp_path_factory.mktemp("many")
    make_checkpoint(root / "model.pt")
    folder = root / "pics"
    folder.mkdir()
    digit("3").save(folder / "p0000.png")
    for i in range(1, PICTURES):
        shutil.copyfile(folder / "p0000.png", folder / f"p{i:04d}.png")
    return root


@pytest.mark.skipif(sys.platform == "win32", reason="a SIGINT to a child process is POSIX")
@pytest.mark.parametrize(("command", "header"), [("predict", PREDICT_HEADER), ("read", CSV_HEADER)])
def test_ctrl_c_keeps_the_rows_written_so_far(many: Path, command: str, header: list[str]) -> None:
    proc = subprocess.Popen(
        mnistcnn_cmd(command, "model.pt", "pics", "--csv"),
        cwd=many,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A shell that started the tests in the background passed SIGINT on as ignored,
        # and a Python started so never turns it into KeyboardInterrupt: a terminal's
        # Ctrl-C reaches a command with the default disposition, so give it that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines = [proc.stdout.readline() for _ in range(3)]  # the header and two rows, as they come
    proc.send_signal(signal.SIGINT)
    lines += proc.stdout.readlines()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "interrupted"
    assert all(line.endswith(b"\n") for line in lines)  # no row cut short
    rows = list(csv.reader(io.StringIO(b"".join(lines).decode("utf-8"))))
    assert rows[0] == header
    assert 2 <= len(rows) - 1 < PICTURES, "stopped early, after the first rows"
    names = [row[0] for row in rows[1:]]
    assert names == [f"pics/p{i:04d}.png" for i in range(len(names))]
    assert all(len(row) == len(header) for row in rows)


NAMES = ("数字_3.png", "Ωmega.png")


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("foreign")
    make_checkpoint(root / "model.pt")
    for name in NAMES:
        digit("3").save(root / name)
    return root


@pytest.mark.parametrize("command", ["predict", "read"])
def test_csv_to_a_pipe_is_utf8_on_a_cp1252_console(foreign: Path, command: str) -> None:
    r = subprocess.run(
        mnistcnn_cmd(command, "model.pt", *NAMES, "--csv"),
        cwd=foreign,
        env=env(PYTHONIOENCODING="cp1252"),
        capture_output=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr.decode("cp1252")
    assert not r.stdout.startswith(b"\xef\xbb\xbf")  # no byte-order mark
    rows = list(csv.reader(io.StringIO(r.stdout.decode("utf-8"))))
    assert [row[0] for row in rows[1:]] == list(NAMES)
    assert b"note:" not in r.stderr  # nothing was replaced


def test_json_to_a_cp1252_console_keeps_the_names(foreign: Path) -> None:
    """JSON escapes what is not ASCII (``\\u6570``): every console shows it as it is."""
    r = subprocess.run(
        mnistcnn_cmd("predict", "model.pt", *NAMES, "--json"),
        cwd=foreign,
        env=env(PYTHONIOENCODING="cp1252"),
        capture_output=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr.decode("cp1252")
    assert r.stdout.isascii()
    assert [p["path"] for p in json.loads(r.stdout)] == list(NAMES)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_csv_on_a_cp1252_terminal_says_once_that_names_were_replaced(foreign: Path) -> None:
    leader, follower = os.openpty()
    try:
        r = subprocess.run(
            mnistcnn_cmd("predict", "model.pt", *NAMES, "--csv"),
            cwd=foreign,
            env=env(PYTHONIOENCODING="cp1252"),
            stdout=follower,
            stderr=subprocess.PIPE,
            timeout=300,
        )
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(leader)
    assert r.returncode == 0, r.stderr.decode("cp1252")
    text = out.decode("cp1252").replace("\r\n", "\n")
    assert [row[0] for row in csv.reader(io.StringIO(text))][1:] == ["??_3.png", "?mega.png"]
    notes = [line for line in r.stderr.decode("cp1252").splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "cp1252" in notes[0] and "redirect to a file" in notes[0]


def test_adapt_writes_each_row_once_with_the_adapted_answers(tmp_path: Path) -> None:
    """``--adapt`` re-predicts after seeing every picture: its rows are the adapted ones, once."""
    from click.testing import CliRunner

    from ckpt_files import write_checkpoint
    from mnistcnn.cli import main
    from test_adapt import _bn_model

    ckpt = write_checkpoint(tmp_path / "bn.pt", _bn_model().net, model_name="bncnn")
    pictures = tmp_path / "in"
    pictures.mkdir()
    for i in range(5):
        digit(str(i), ink=40 * i).save(pictures / f"{i}.png")
    args = ["predict", str(ckpt), str(pictures), "--adapt", "--threshold", "0"]
    as_json = CliRunner().invoke(main, [*args, "--json"])
    as_csv = CliRunner().invoke(main, [*args, "--csv"])
    assert as_json.exit_code == 0 and as_csv.exit_code == 0, as_csv.output
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == PREDICT_HEADER
    adapted = json.loads(as_json.stdout)
    assert [(r[0], r[1]) for r in rows[1:]] == [(p["path"], p["label"]) for p in adapted]
