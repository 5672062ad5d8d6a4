"""Shared test fixtures.

Data layer (``mnistcnn.data``):

* ``shared_datasets``: the read-only real datasets in ``../shared/datasets``
  (the repo's sibling folder); skips when absent.
* ``mnist_root``: a data root holding real, verified MNIST, extracted once per
  session from ``shared_datasets`` (engine and CLI tests train on it).
* ``trained_checkpoint``: a tutorial model trained for one epoch on 20,000 of
  those images, once per session (serve and read tests).
* ``tiny``: a synthetic 3-train / 2-test dataset with its own
  :class:`~mnistcnn.data.DatasetSpec` (md5 sums of its files, no mirrors), and
  helpers to lay its files out as a raw folder or a mirror.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from mnistcnn.data import DatasetSpec, fetch_dataset
from mnistcnn.data.idx import write_idx_to
from mnistcnn.data.specs import make_files

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets`` (torchvision layout, ``.gz`` only, read-only)."""
    if not (SHARED_DATASETS / "MNIST" / "raw").is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS} (the repo's ../shared/datasets)")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def mnist_root(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with verified MNIST in ``<root>/MNIST/raw/`` (extracted once per session)."""
    root = tmp_path_factory.mktemp("mnist-root")
    fetch_dataset(
        "mnist", root=root, mirror=shared_datasets, allow_download=False, allow_pypi=False
    )
    return root


@pytest.fixture(scope="session")
def trained_checkpoint(mnist_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of the tutorial recipe after 1 epoch on 20,000 MNIST images (~97% test).

    Shared by the slow tests that need a model that reads digits (serve, read).
    """
    from mnistcnn.config import recipe_config
    from mnistcnn.engine import train

    out = tmp_path_factory.mktemp("serve") / "run"
    cfg = recipe_config("tutorial", epochs=1, seed=0, train_subset=20000)
    train(cfg, out=out, data_root=mnist_root, handle_signals=False)
    return out / "best.pt"


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` encoded as an IDX file."""
    buf = io.BytesIO()
    write_idx_to(buf, array)
    return buf.getvalue()


@dataclass
class TinyData:
    """A synthetic dataset: 3 train and 2 test images (uint8 28x28), labels 0..9."""

    arrays: dict[str, np.ndarray]  # file name -> array
    raw: dict[str, bytes]  # file name -> uncompressed IDX bytes
    spec: DatasetSpec

    def gz(self, name: str) -> bytes:
        return gzip.compress(self.raw[name], mtime=0)

    def lay_out(self, folder: Path, *, gz: bool = False, names: list[str] | None = None) -> Path:
        """Write the files (or ``names``) into ``folder``, compressed if ``gz``; return it."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in names or list(self.raw):
            if gz:
                (folder / f"{name}.gz").write_bytes(self.gz(name))
            else:
                (folder / name).write_bytes(self.raw[name])
        return folder

    def with_mirrors(self, *urls: str) -> DatasetSpec:
        return replace(self.spec, mirrors=tuple(urls))


@pytest.fixture
def tiny() -> TinyData:
    from torchvision import datasets as tvd

    rng = np.random.default_rng(0)
    counts = (3, 2)
    arrays: dict[str, np.ndarray] = {}
    for prefix, n in (("train", counts[0]), ("t10k", counts[1])):
        arrays[f"{prefix}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{prefix}-labels-idx1-ubyte"] = rng.integers(0, 10, (n,), dtype=np.uint8)
    raw = {name: idx_bytes(a) for name, a in arrays.items()}
    md5 = [hashlib.md5(b).hexdigest() for b in raw.values()]
    spec = DatasetSpec(
        name="tiny",
        folder="MNIST",
        tv_class=tvd.MNIST,
        classes=tuple(str(i) for i in range(10)),
        files=make_files(counts, (md5[0], md5[1], md5[2], md5[3])),
        mirrors=(),
        mean=0.5,
        std=0.29,
    )
    return TinyData(arrays=arrays, raw=raw, spec=spec)


@pytest.fixture(autouse=True)
def _not_under_make(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hints print ``make train ARGS=...`` under make (``make test`` too): tests see a shell."""
    monkeypatch.delenv("MAKELEVEL", raising=False)
    monkeypatch.delenv("MAKEFLAGS", raising=False)
