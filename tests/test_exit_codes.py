"""One table of exit statuses for every command (docs/cli.md, mnistcnn.cli.exit_codes):
0 done, 1 error, 2 usage error (click's), 3 some inputs could not be read, 130 interrupted.

Before it, ``predict`` said 2 both for "some inputs could not be read" and for a
checkpoint that does not exist, ``--top-k 0`` or an unknown flag (click's usage
errors): a script could not tell them apart.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import mnistcnn
from digits_synth import digit
from mnistcnn.cli import exit_codes, main
from test_predict_inputs import encoded
from test_predict_predictor import make_checkpoint

SRC = str(Path(mnistcnn.__file__).resolve().parents[1])
ROOT = Path(__file__).resolve().parents[1]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, cmd in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


COMMANDS = list(_commands(main))


def test_the_table_is_the_documented_one():
    assert (exit_codes.OK, exit_codes.ERROR, exit_codes.USAGE) == (0, 1, 2)
    assert (exit_codes.SOME_INPUTS, exit_codes.INTERRUPTED) == (3, 130)
    assert click.UsageError("x").exit_code == exit_codes.USAGE  # click's own
    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for status in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 130 |"):
        assert status in doc


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_says_its_exit_statuses_and_exits_2_on_a_usage_error(command):
    runner = CliRunner()
    helped = runner.invoke(main, [*command, "--help"])
    assert helped.exit_code == 0, helped.output
    assert " ".join(exit_codes.EPILOG.split()) in " ".join(helped.output.split())
    wrong = runner.invoke(main, [*command, "--no-such-flag"])
    assert wrong.exit_code == exit_codes.USAGE, wrong.output
    assert "No such option '--no-such-flag'" in wrong.output


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("exit")
    good = d / "good"
    good.mkdir()
    (good / "three.png").write_bytes(encoded(digit("3")))
    mixed = d / "mixed"
    mixed.mkdir()
    (mixed / "three.png").write_bytes(encoded(digit("3")))
    (mixed / "cut.png").write_bytes(encoded(digit("1"))[:200])
    (d / "bad.pt").write_bytes(b"not a checkpoint")
    return {"ckpt": make_checkpoint(d / "model.pt"), "good": good, "mixed": mixed, "dir": d}


def _predict(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "mnistcnn", "predict", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_predict_exit_statuses_as_a_process(files):
    ckpt, d = str(files["ckpt"]), files["dir"]
    assert _predict(ckpt, str(files["good"])).returncode == exit_codes.OK
    some = _predict(ckpt, str(files["mixed"]))
    assert some.returncode == exit_codes.SOME_INPUTS, some.stderr
    assert "cut.png" in some.stdout and "1 failed" in some.stderr
    broken = _predict(str(d / "bad.pt"), str(files["good"]))
    assert broken.returncode == exit_codes.ERROR and broken.stderr.startswith("error: ")
    for usage in (
        [str(d / "missing.pt"), str(files["good"])],  # click: Invalid value for 'CHECKPOINT'
        [ckpt, str(files["good"]), "--top-k", "0"],
        [ckpt, str(files["good"]), "--no-such-flag"],
    ):
        r = _predict(*usage)
        assert r.returncode == exit_codes.USAGE, (usage, r.stderr)
        assert "Usage: " in r.stderr and "Traceback" not in r.stderr
