"""What a run trains and evaluates on: the dataset's batch sources (:func:`build_sources`)
and the inputs' normalization (:func:`normalization_for`).

A registered dataset is read through :mod:`mnistcnn.data` (``config.loader``:
on-device tensors or a DataLoader). A picture folder (``folder:PATH``) is read
from its tensor cache (:func:`mnistcnn.data.folder.load_folder_dataset`: images,
labels, classes), which ``mnistcnn.train`` prepares first. A folder has no test
split: the seeded validation split (``val_fraction`` > 0, required) is what
``best.pt`` follows and what the run's report evaluates; metrics.csv has no
test columns. With ``normalize`` its mean and std are those of the training
split's pixels (:func:`mnistcnn.data.pixel_stats`, rounded to 4 decimals as the
registered datasets' constants are).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mnistcnn import data as mdata
from mnistcnn._text import plural
from mnistcnn.config import TrainConfig
from mnistcnn.data.augment import build_augment
from mnistcnn.data.datasets import pixel_stats
from mnistcnn.data.folder import FolderCache, is_folder_dataset, load_folder_dataset
from mnistcnn.data.loaders import BatchSource, DataLoaderSource, TensorSource, split_indices
from mnistcnn.data.sources import resolve_root
from mnistcnn.errors import SettingError

PathLike = str | os.PathLike[str]


@dataclass
class DataSources:
    """Batch sources of one dataset: ``train`` (shuffled), ``test``, optional ``val``."""

    train: BatchSource
    evals: dict[str, BatchSource]
    classes: list[str]
    mean: list[float]
    std: list[float]


def normalization_for(
    config: TrainConfig, *, data_root: PathLike | None = None, mirror: PathLike | None = None
) -> tuple[list[float], list[float]]:
    """(mean, std) applied to inputs on the 0..1 scale: the dataset's if ``normalize``, else 0/1.

    The dataset's values are :func:`mnistcnn.data.dataset_normalization`'s (computed
    from the train split and cached for EMNIST/QMNIST, hence ``data_root``/``mirror``).
    """
    if not config.normalize:
        return [0.0], [1.0]
    mean, std = mdata.dataset_normalization(config.dataset, root=data_root, mirror=mirror)
    return [mean], [std]


def build_sources(
    config: TrainConfig,
    device: torch.device,
    *,
    data_root: PathLike | None = None,
    mirror: PathLike | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> DataSources:
    """Obtain the dataset and build the train/test(/val) batch sources of ``config.loader``.

    With ``world_size > 1`` every source yields only this ``rank``'s part of
    each global batch (:func:`mnistcnn.data.loaders.rank_batches`).

    Raises:
        mnistcnn.data.DataError: the dataset cannot be obtained.
        ValueError: ``config.train_subset`` is larger than the training split.
    """
    if is_folder_dataset(config.dataset):  # your own pictures: a prepared tensor cache
        return folder_sources(config, device, data_root=data_root, rank=rank, world_size=world_size)
    mean, std = normalization_for(config, data_root=data_root, mirror=mirror)
    spec = mdata.get_spec(config.dataset)
    bs, ebs = config.batch_size, config.eval_batch_size
    aug = _augment(config)
    shard = {"rank": rank, "world_size": world_size}
    if config.loader == "tensor":
        x_tr, y_tr = mdata.load_arrays(config.dataset, train=True, root=data_root, mirror=mirror)
        x_te, y_te = mdata.load_arrays(config.dataset, train=False, root=data_root, mirror=mirror)
        train_idx, val_idx = split_indices(len(y_tr), config.val_fraction, config.seed)
        train_idx = _subset(train_idx, config)
        kw: dict[str, Any] = {"device": device, **shard}  # pixels in [0, 1]: the model normalizes
        train: BatchSource = TensorSource(
            x_tr[train_idx], y_tr[train_idx], bs, shuffle=True, seed=config.seed, augment=aug, **kw
        )
        evals: dict[str, BatchSource] = {"test": TensorSource(x_te, y_te, ebs, **kw)}
        if len(val_idx):
            evals["val"] = TensorSource(x_tr[val_idx], y_tr[val_idx], ebs, **kw)
    else:
        from torchvision import transforms

        # ToTensor only (the tutorial's transform); normalization runs in the model
        # (TrainedModel), after any augmentation, with the float ops of transforms.Normalize
        kw = {"root": data_root, "mirror": mirror, "transform": transforms.ToTensor()}
        ds_tr = mdata.load_dataset(config.dataset, train=True, **kw)
        ds_te = mdata.load_dataset(config.dataset, train=False, **kw)
        train_idx, val_idx = split_indices(len(ds_tr), config.val_fraction, config.seed)
        train_idx = _subset(train_idx, config)
        dl: dict[str, Any] = {"num_workers": config.num_workers, "device": device, **shard}
        train = DataLoaderSource(
            ds_tr, bs, indices=train_idx, shuffle=True, seed=config.seed, augment=aug, **dl
        )
        evals = {"test": DataLoaderSource(ds_te, ebs, **dl)}
        if len(val_idx):
            evals["val"] = DataLoaderSource(ds_tr, ebs, indices=val_idx, **dl)
    if config.style_digits > 0:
        train = _with_styles(train, config, device, aug, shard)
    if config.outlier_exposure > 0:
        train = _with_outliers(train, config, device, aug, data_root, mirror, shard)
    return DataSources(train, evals, list(spec.classes), mean, std)


def _with_outliers(
    train: BatchSource,
    config: TrainConfig,
    device: torch.device,
    aug: Any,
    data_root: PathLike | None,
    mirror: PathLike | None,
    shard: dict[str, int],
) -> BatchSource:
    """``train`` with ``config.outlier_batch_size`` outliers appended to every batch."""
    from mnistcnn.data.outlier_pool import OutlierMixSource, outlier_pool

    kinds = [k.strip() for k in config.outliers.split(",") if k.strip()]
    pools = outlier_pool(kinds, config.outlier_count, config.seed, root=data_root, mirror=mirror)
    return OutlierMixSource(
        train, pools, config.outlier_batch_size, seed=config.seed, device=device, augment=aug,
        **shard,
    )  # fmt: skip


def _augment(config: TrainConfig) -> Any:
    """The training batches' augmentation; evaluation sources never augment."""
    return build_augment(
        config.augment,
        degrees=config.aug_degrees,
        translate=config.aug_translate,
        scale=config.aug_scale,
    )


def _with_styles(
    train: BatchSource, config: TrainConfig, device: torch.device, aug: Any, shard: dict[str, int]
) -> BatchSource:
    """``train`` with generated digits of other styles in every batch (mnistcnn.data.styles)."""
    from mnistcnn.data.styles import StyleMixSource, style_pool

    images, labels = style_pool(config.style_count, config.seed)
    per_batch = max(1, round(config.style_digits * config.batch_size))
    return StyleMixSource(
        train, images, labels, per_batch, seed=config.seed, device=device, augment=aug, **shard
    )


def _subset(train_idx: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """The first ``config.train_subset`` training indices (all without a subset)."""
    n = config.train_subset
    if n is not None and n > len(train_idx):
        held_out = f" left after val_fraction {config.val_fraction:g}"
        held_out = held_out if config.val_fraction else ""
        raise SettingError(
            f"train_subset {n} is larger than the training split of {config.dataset} "
            f"({plural(len(train_idx), 'image')}{held_out}); give at most {len(train_idx)}",
            setting="train_subset",
        )
    return train_idx[:n]


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
    aug = _augment(config)
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
