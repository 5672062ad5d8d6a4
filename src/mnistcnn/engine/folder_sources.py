"""Batch sources of a picture-folder dataset (``folder:PATH``), read from its tensor cache.

The folder is prepared into a cache by ``mnistcnn predict``'s preparation
(:func:`mnistcnn.predict.folder_dataset.prepare_folder`, layer 4, which
``mnistcnn train`` calls first); here, in the engine, it is only read
(:func:`mnistcnn.data.folder.load_folder_dataset`): images, labels, classes.

A folder has no test split. The seeded validation split (``val_fraction`` > 0,
required) is what ``best.pt`` follows and what the run's report evaluates;
metrics.csv has no test columns. With ``normalize`` the mean and std are
those of the training split's pixels (:func:`mnistcnn.data.pixel_stats`,
rounded to 4 decimals as the registered datasets' constants are).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from mnistcnn.config import TrainConfig
from mnistcnn.data.augment import build_augment
from mnistcnn.data.datasets import pixel_stats
from mnistcnn.data.folder import FolderCache, is_folder_dataset, load_folder_dataset
from mnistcnn.data.loaders import BatchSource, TensorSource, split_indices
from mnistcnn.data.sources import resolve_root
from mnistcnn.engine.sources import DataSources, _subset
from mnistcnn.errors import SettingError

PathLike = str | os.PathLike[str]


def folder_split(
    cache: FolderCache, val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) indices of a folder's pictures: :func:`split_indices`, seeded.

    Raises:
        SettingError (``val_fraction``): either split would be empty.
    """
    n = len(cache.labels)
    train_idx, val_idx = split_indices(n, val_fraction, seed)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise SettingError(
            f"val_fraction {val_fraction:g} of {n} pictures in {cache.folder} leaves "
            f"{len(train_idx)} for training and {len(val_idx)} for validation; both need one",
            setting="val_fraction",
        )
    return train_idx, val_idx


def folder_sources(
    config: TrainConfig,
    device: torch.device,
    *,
    data_root: PathLike | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> DataSources:
    """Train and ``val`` batch sources of ``config.dataset`` = ``folder:PATH``.

    Always on-device tensors (:class:`TensorSource`), whatever ``config.loader``
    says: the cache is one uint8 tensor already.

    Raises:
        SettingError: a bad folder, or a split that would be empty.
        mnistcnn.data.DataError: the folder is not prepared, or changed since.
    """
    cache = load_folder_dataset(config.dataset, resolve_root(data_root))
    train_idx, val_idx = folder_split(cache, config.val_fraction, config.seed)
    train_idx = _subset(train_idx, config)
    x, y = cache.images, cache.labels  # uint8 (N, 28, 28), int64 (N,)
    mean, std = [0.0], [1.0]
    if config.normalize:
        m, s = pixel_stats(x[train_idx].numpy())
        mean, std = [round(m, 4)], [round(s, 4)]
    aug = build_augment(
        config.augment,
        degrees=config.aug_degrees,
        translate=config.aug_translate,
        scale=config.aug_scale,
    )
    kw: dict[str, Any] = {"device": device, "rank": rank, "world_size": world_size}
    train: BatchSource = TensorSource(
        x[train_idx], y[train_idx], config.batch_size, shuffle=True, seed=config.seed,
        augment=aug, **kw,
    )  # fmt: skip
    val = TensorSource(x[val_idx], y[val_idx], config.eval_batch_size, **kw)
    return DataSources(train, {"val": val}, list(cache.classes), mean, std)


def folder_validation_arrays(
    dataset: str, config: dict[str, Any], data_root: PathLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation split a run on ``dataset`` (``folder:PATH``) held out.

    Returns images uint8 (N, 28, 28) and labels int64 (N,).

    ``config``: the run's settings (``val_fraction``, ``seed``), as its checkpoint records them.

    Raises:
        mnistcnn.data.DataError: the folder is not prepared, or changed since.
    """
    cache = load_folder_dataset(dataset, resolve_root(data_root))
    _, val_idx = folder_split(cache, float(config["val_fraction"]), int(config["seed"]))
    return cache.images[val_idx], cache.labels[val_idx]


def check_folder_unchanged(
    run_dir: PathLike, config: TrainConfig, data_root: PathLike | None, force: bool
) -> None:
    """Refuse to resume a ``folder:PATH`` run whose pictures changed since it started.

    Compares the content SHA-256 the run's ``config.json`` recorded
    (``folder_source``) with the prepared cache's now. Nothing to check for
    other datasets, for runs that recorded none, or with ``force``.

    Raises:
        SettingError (``resume``): the pictures changed (both digests named).
        mnistcnn.data.DataError: the folder is not prepared, or changed since it was.
    """
    if force or not is_folder_dataset(config.dataset):
        return
    try:
        record = json.loads((Path(run_dir) / "config.json").read_text())
        then = record["folder_source"]["content_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    now = load_folder_dataset(config.dataset, resolve_root(data_root)).content_sha256
    if now != then:
        raise SettingError(
            f"{run_dir}: the pictures of {config.dataset} changed since the run started "
            f"(content SHA-256 {then[:12]}... then, {now[:12]}... now); resuming would train "
            "on other data: start a new run, or resume with force=True (--force) to accept it",
            setting="resume",
        )
