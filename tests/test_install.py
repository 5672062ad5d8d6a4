"""``pip install .`` works: the wheel holds the package data, and the installed command runs.

The wheel is built from this checkout (no build isolation: setuptools comes
from the test's environment) and installed without its dependencies into a
fresh virtual environment; that environment sees torch and the other
dependencies through a ``.pth`` file naming this environment's site-packages
(a plain path: ``.pth`` files in there, such as an editable install of
mnistcnn, are not processed). Nothing is downloaded. The installed
``mnistcnn`` then runs from a temporary folder with ``PYTHONPATH`` unset, and
must import mnistcnn from the new environment, not from ``src/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    # pip builds in place: a copy keeps build/ and *.egg-info out of the checkout
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, build / name)
    shutil.copytree(ROOT / "src", build / "src", ignore=shutil.ignore_patterns("__pycache__"))
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            ".",
        ],
        build,
    )
    (found,) = out.glob("mnistcnn-*.whl")
    return found


def test_wheel_holds_the_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "mnistcnn/py.typed" in names
    static = sorted(n for n in names if n.startswith("mnistcnn/serve/static/"))
    expected = sorted(
        f"mnistcnn/serve/static/{p.name}"
        for p in (ROOT / "src/mnistcnn/serve/static").iterdir()
        if p.is_file()
    )
    assert static == expected and static, static
    assert "mnistcnn/cli/__init__.py" in names and "mnistcnn/__main__.py" in names
    assert not any(n.startswith(("tests/", "src/")) for n in names)


def test_installed_command_runs_from_a_fresh_environment(wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ],
        tmp_path,
    )
    site = Path(
        run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            tmp_path,
        ).strip()
    )
    # the dependencies (torch, click, ...) from this environment, after the new one's own
    (site / "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    command = venv / "bin" / "mnistcnn"
    assert command.is_file(), "the console script is installed"
    assert "Train, evaluate, explain and serve" in run([str(command), "--help"], cwd, env)
    assert "tutorial" in run([str(command), "models"], cwd, env)
    where = run([str(python), "-c", "import mnistcnn; print(mnistcnn.__file__)"], cwd, env).strip()
    assert Path(where).resolve().is_relative_to(site.resolve()), where
    assert not Path(where).resolve().is_relative_to(ROOT / "src")
    assert "Usage: python -m mnistcnn" in run([str(python), "-m", "mnistcnn", "--help"], cwd, env)
    # the package data is readable where the package was installed
    static = Path(where).parent / "serve" / "static"
    assert any(static.iterdir())
