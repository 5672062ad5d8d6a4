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


@pytest.mark.slow
def test_tutorial_notebook_runs(shared_datasets, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("MNISTCNN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MNISTCNN_MIRROR", str(shared_datasets))
    monkeypatch.setenv("TUTORIAL_TRAIN_SUBSET", "10000")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    out = "\n".join(_text(cell) for cell in nb.cells if cell.cell_type == "code")

    assert "train (60000, 28, 28) torch.uint8 | test (10000, 28, 28)" in out
    assert "first labels [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]" in out
    assert "total: 156,640 parameters" in out
    assert "(5 - 2 + 2*0)/1 + 1 = 4" in out
    assert "a11 = (1*1) + (2*2) + (6*3) + (7*4) = 51" in out
    assert "[51, 61, 71, 81]" in out and "\nTrue\n" in out
    assert "epoch 1: train loss" in out
    assert (tmp_path / "runs" / "tutorial-notebook" / "best.pt").is_file()
    accuracy = float(re.search(r"test accuracy (\d\.\d+)\n", out).group(1))
    assert accuracy > 0.8
    assert re.search(r"predicted \S+ with probability \d\.\d\d", out)
