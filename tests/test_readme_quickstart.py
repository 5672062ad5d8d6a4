"""The README's quick start runs as written, and the Makefile installs what each target needs.

The commands are taken from the first code block of the README's "Quick start",
in order, and run in a temporary copy of the repository's Makefile, pyproject.toml
and docs/img/seven.jpg, on real MNIST (``MNISTCNN_DATA`` a temporary root filled
from ``../shared/datasets`` as a mirror). Its ``.venv/`` is this test's Python:
``.venv/bin/python`` and ``.venv/bin/mnistcnn`` run it on this checkout's ``src/``,
with the install stamps in place, so ``make`` runs the README's targets without
installing anything. ``make train`` gets the documented ``ARGS`` with a short
setting (one epoch of at most 300 steps), ``make serve`` the documented ``ARGS``
with ``--port 0`` (a free port); every other command runs exactly as the README
writes it, "your own picture" being a generated photo of a digit.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: Short settings for `make train`, through the ARGS the README documents.
TRAIN_ARGS = "--epochs 1 --max-steps 300 --no-progress"

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def quick_start_commands() -> list[str]:
    """The commands of the first code block under "## Quick start", comments removed."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block, "no code block in the README's quick start"
    lines = [line.split("  #", 1)[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


def test_the_quick_start_is_on_the_first_screen():
    text = README.read_text(encoding="utf-8")
    head = text.split("## Quick start", 1)
    assert len(head[0].split()) < 60  # a title and one paragraph before it
    commands = quick_start_commands()
    assert commands[0] == "make train"
    assert any("predict" in c and "my-digit.jpg" in c for c in commands)  # your own picture
    first_screen = "\n".join(text.splitlines()[:40])
    assert "my-digit.jpg" in first_screen
    assert len(text.split()) <= 1500


def _fake_clone(tmp_path: Path) -> Path:
    """A folder with the Makefile, pyproject.toml, the sample picture and a ready .venv."""
    repo = tmp_path / "repo"
    (repo / "docs" / "img").mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "docs/img/seven.jpg"):
        shutil.copy2(ROOT / name, repo / name)
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(ROOT / 'src'))} exec {sys.executable} "
    (bin_dir / "python").write_text(python + '"$@"\n')
    (bin_dir / "mnistcnn").write_text(python + '-m mnistcnn "$@"\n')
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    for stamp in (".installed", ".dev-installed", ".serve-installed", ".robust-installed"):
        (repo / ".venv" / stamp).touch()  # newer than pyproject.toml: nothing to install
    return repo


def _my_digit(path: Path) -> None:
    """A generated photo of a digit (tests/digits_synth.py), as a user's own picture."""
    sys.path.insert(0, str(ROOT / "tests"))
    from digits_synth import make_digit

    make_digit(seed=3, index=0, label=4).image.convert("RGB").save(path, quality=85)


def _serve(cmd: list[str], repo: Path, env: dict[str, str]) -> dict:
    """Run ``make serve`` (on a free port), post the sample picture, stop it; the JSON."""
    proc = subprocess.Popen(
        [*cmd, "ARGS=--port 0"],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()
    try:
        url, seen = None, []
        while url is None:
            line = lines.get(timeout=120)
            seen.append(line)
            match = re.search(r"serving the drawing page at (http://\S+/)", line)
            url = match.group(1) if match else None
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="seven.jpg"'
                "\r\nContent-Type: image/jpeg\r\n\r\n"
            ).encode()
            + (repo / "docs/img/seven.jpg").read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(
            url + "v1/predict",
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@needs_make
@pytest.mark.slow
def test_readme_quick_start_runs_as_written(shared_datasets, tmp_path):
    repo = _fake_clone(tmp_path)
    env = {
        **os.environ,
        "MNISTCNN_DATA": str(tmp_path / "data"),
        "MNISTCNN_MIRROR": str(shared_datasets),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("PYTHONPATH", None)
    _my_digit(repo / "my-digit.jpg")
    commands = quick_start_commands()
    for command in commands:
        cmd = shlex.split(command)
        if cmd == ["make", "train"]:
            run = subprocess.run(
                [*cmd, f"ARGS={TRAIN_ARGS}"], cwd=repo, env=env, capture_output=True, text=True,
                timeout=600,
            )  # fmt: skip
            assert run.returncode == 0, run.stdout + run.stderr
            assert "pip install" not in run.stdout  # the stamps say it is installed
            assert re.search(r"^final test accuracy \d+\.\d\d% ", run.stdout, re.M), run.stdout
            assert (repo / "runs" / "latest" / "best.pt").is_file()
        elif cmd[0] == ".venv/bin/mnistcnn" and cmd[1] == "predict":
            run = subprocess.run(
                cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300
            )
            assert run.returncode == 0, run.stdout + run.stderr
            rows = [line.split() for line in run.stdout.splitlines()[1:]]
            assert [row[0] for row in rows] == [cmd[-1]]
            if cmd[-1] == "docs/img/seven.jpg":  # the row the README shows
                assert rows[0][1] == "7" and rows[0][-1] == "confident", run.stdout
        elif cmd == ["make", "serve"]:
            answer = _serve(cmd, repo, env)
            assert answer["predictions"][0]["label"] == "7", answer
        else:
            pytest.fail(f"the test does not know how to run the README's {command!r}")
    assert {"make train", "make serve"} <= set(commands) and len(commands) == 4


def _dry_run(repo: Path, target: str) -> str:
    run = subprocess.run(
        ["make", "-n", target], cwd=repo, capture_output=True, text=True, timeout=60, check=True
    )
    return run.stdout


@needs_make
def test_each_make_target_installs_only_what_it_needs(tmp_path):
    """``make train`` installs the package without the dev tools, ``make test`` adds
    them, and neither reinstalls what the other installed (``make -n``: nothing runs)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(ROOT / name, repo / name)

    fresh_train = _dry_run(repo, "train")
    assert "python3 -m venv .venv" in fresh_train
    assert ".venv/bin/python -m pip install -q -e .\n" in fresh_train
    assert ".[dev]" not in fresh_train and ".venv/bin/python -m mnistcnn train" in fresh_train
    fresh_test = _dry_run(repo, "test")
    assert '-e ".[dev]"' in fresh_test and ".venv/bin/mypy" in fresh_test
    assert ".venv/bin/ruff check src tests" in fresh_test
    assert '-e ".[robust]"' in _dry_run(repo, "robust")
    assert '-e ".[serve]"' in _dry_run(repo, "serve")

    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / ".installed").touch()  # after `make train`
    after_train = _dry_run(repo, "test")
    assert '-e ".[dev]"' in after_train and "-e .\n" not in after_train
    (repo / ".venv" / ".dev-installed").touch()  # after `make test`
    assert "pip" not in _dry_run(repo, "train") and "pip" not in _dry_run(repo, "test")
