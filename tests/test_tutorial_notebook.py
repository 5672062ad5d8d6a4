"""docs/tutorial.ipynb runs top to bottom and prints what its text promises (slow).

The notebook is executed with nbclient in a temporary folder, with real MNIST
through the user's code path (``MNISTCNN_DATA`` a temporary root,
``MNISTCNN_MIRROR`` the shared ``.gz`` files), and a few printed values are
checked. The committed notebook must have its outputs cleared.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")


def test_committed_notebook_has_no_outputs():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert all(len(c.source.splitlines()) <= 20 for c in code), "short cells"
    assert nb.cells[0].cell_type == "markdown"


def _execute(tmp_path: Path, subset: int, monkeypatch: pytest.MonkeyPatch):
    """Run the notebook in ``tmp_path`` (a fresh kernel); returns it with its outputs."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("TUTORIAL_TRAIN_SUBSET", str(subset))  # the kernel inherits it
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    return nb


def _stderr(nb) -> str:
    return "".join(
        o.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if o.get("name") == "stderr"
    )


@pytest.mark.slow
def test_tutorial_notebook_runs_twice(shared_datasets, tmp_path, monkeypatch):
    """Top to bottom, then again in the same folder: the second run writes its own run
    folder (no RunDirError), and neither shows tqdm's IProgress warning."""
    monkeypatch.setenv("MNISTCNN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MNISTCNN_MIRROR", str(shared_datasets))
    nb = _execute(tmp_path, 10000, monkeypatch)
    out = "\n".join(_text(cell) for cell in nb.cells if cell.cell_type == "code")

    assert "train (60000, 28, 28) torch.uint8 | test (10000, 28, 28)" in out
    assert "first labels [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]" in out
    assert "total: 156,640 parameters" in out
    assert "(5 - 2 + 2*0)/1 + 1 = 4" in out
    assert "a11 = (1*1) + (2*2) + (6*3) + (7*4) = 51" in out
    assert "[51, 61, 71, 81]" in out and "\nTrue\n" in out
    assert "epoch 1: train loss" in out
    runs = tmp_path / "runs" / "tutorial-notebook"
    (first,) = [p for p in runs.iterdir() if not p.is_symlink()]
    assert (runs / "latest").resolve() == first.resolve()
    assert (first / "best.pt").is_file()
    assert f"run written to {Path('runs', 'tutorial-notebook', first.name)}\n" in out
    accuracy = float(re.search(r"test accuracy (\d\.\d+)\n", out).group(1))
    assert accuracy > 0.8
    assert re.search(r"predicted \S+ with probability \d\.\d\d", out)

    again = _execute(
        tmp_path, 2000, monkeypatch
    )  # a second run in the same folder: smaller, as quick
    second = sorted(p for p in runs.iterdir() if not p.is_symlink() and p != first)
    assert len(second) == 1 and (second[0] / "best.pt").is_file()
    assert (runs / "latest").resolve() == second[0].resolve()
    assert (first / "best.pt").is_file()  # the first run is left as it was
    for notebook in (nb, again):
        assert "TqdmWarning" not in _stderr(notebook) and "IProgress" not in _stderr(notebook)
