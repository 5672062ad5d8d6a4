"""Pictures that are not digits, for outlier exposure in training (Hendrycks et al. 2019).

Outlier exposure ("Deep Anomaly Detection with Outlier Exposure", Hendrycks,
Mazeika, Dietterich, ICLR 2019, arXiv:1812.04606) adds a batch of non-digit
images to every training step and trains the model to give them a uniform
softmax (:mod:`mnistcnn.engine.outlier_exposure`). This module makes those
images, offline, as uint8 (N, 28, 28) tensors in the datasets' own format
(light ink on black), and mixes them into the training batches:

* ``fashion-mnist``: the Fashion-MNIST **train** split (its test split stays
  held out for ``mnistcnn evaluate --ood fashion-mnist``);
* ``drawings``, ``letters``, ``noise``: :mod:`mnistcnn.data.outliers`'s
  generators, with seeds ``TRAIN_SEED + seed`` (evaluation uses seed 0, so
  the evaluated pictures are never trained on), drawings and letters
  brought to 28x28 as MNIST was made (:func:`mnist_style`).

:func:`outlier_pool` renders a pool once per process (cached in memory: a
few seconds per thousand pictures); :class:`OutlierMixSource` appends
``outlier_batch`` pool images, labelled :data:`OUTLIER_LABEL`, to every
batch of a training source, drawn and augmented from a generator seeded by
``(seed, epoch, batch, rank)``, so a resumed run replays the same outliers.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image

from mnistcnn.config import OUTLIER_KINDS  # the kinds of TrainConfig.outliers
from mnistcnn.data import outliers
from mnistcnn.data.loaders import Augment, Batch, BatchSource
from mnistcnn.prepare.fit import bbox, fit_and_center
from mnistcnn.prepare.settings import PreparationSettings
from mnistcnn.prepare.stroke import dilate_disk, stroke_width

PathLike = str | os.PathLike[str]

#: Label of an outlier in a mixed batch (never a class index).
OUTLIER_LABEL = -1
#: Generated training outliers use seed ``TRAIN_SEED + run seed``; evaluation uses seed 0.
TRAIN_SEED = 1_000_003


#: The geometry of :func:`mnist_style`'s fit: MNIST's 20x20 box and centre of mass,
#: the stroke width set before it (no stroke step in the fit).
_FIT = PreparationSettings(stroke=None)


def mnist_style(pictures: list[Image.Image], stroke: tuple[float, float] = (2.0, 3.5),
                seed: int = 0) -> np.ndarray:  # fmt: skip
    """Dark-on-light pictures -> uint8 (N, 28, 28) light-on-dark, as MNIST was made.

    For clean generated pictures (flat paper, one ink colour; not a user's
    photo, which the model's :class:`~mnistcnn.prepare.Preparation` handles):
    ink = paper level - grey, stretched to 0..1; cropped to the ink above 0.25;
    at 4x the final size the stroke is dilated by a disk
    (:func:`mnistcnn.prepare.stroke.dilate_disk`) towards a width ~ U(``stroke``)
    px of the 20 px box (MNIST's strokes are about 2.5 px there; the width is
    :func:`mnistcnn.prepare.stroke.stroke_width`); cropped to the ink above
    0.05, fitted into a 20x20 box and centred by its mass at pixel (14, 14)
    (:func:`mnistcnn.prepare.fit.fit_and_center`; LeCun et al. 1998).
    """
    rng = np.random.default_rng([seed, 0x57_0E])
    out = np.zeros((len(pictures), 28, 28), np.uint8)
    for i, picture in enumerate(pictures):
        gray = np.asarray(picture.convert("L"), np.float32)
        ink = gray.max() - gray
        if ink.max() <= 0:
            continue
        ink /= ink.max()
        left, top, right, bottom = bbox(ink > 0.25) or (0, 0, ink.shape[1], ink.shape[0])
        crop = ink[top:bottom, left:right]
        f = 80 / max(crop.shape)  # the 20 px box at 4x
        size = (max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f)))
        big = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))
        target = 4 * rng.uniform(*stroke)
        radius = int(max(0.0, (target - stroke_width(big)) / 2))
        if radius:
            big = dilate_disk(np.pad(big, radius), radius)
        left, top, right, bottom = bbox(big > 0.05) or (0, 0, big.shape[1], big.shape[0])
        fitted = fit_and_center(big[top:bottom, left:right], _FIT)
        out[i] = np.round(fitted * 255).astype(np.uint8)
    return out


@functools.lru_cache(maxsize=4)
def _generated(kind: str, count: int, seed: int) -> torch.Tensor:
    if kind == "drawings":
        return torch.from_numpy(mnist_style(outliers.drawings(count, seed), seed=seed))
    if kind == "letters":
        return torch.from_numpy(mnist_style(outliers.letters(count, seed), seed=seed))
    return torch.from_numpy(outliers.noise(count, seed))


def fashion_needed_message() -> str:
    """What outlier exposure needs Fashion-MNIST for, and the ways to get it offline."""
    from mnistcnn.data.specs import get_spec

    system = ", ".join(get_spec("fashion-mnist").system_dirs)
    return (
        "outlier exposure (--outlier-exposure; on in recipe robust) trains on Fashion-MNIST's "
        "train split as pictures that are not digits (--outliers fashion-mnist), and "
        "Fashion-MNIST could not be obtained. Offline, either install Debian's package "
        f"(`apt-get install dataset-fashion-mnist`: its files in {system} are read as they "
        "are), or give --mirror DIR (or MNISTCNN_MIRROR=DIR) where DIR holds its four .gz "
        "files (DIR/FashionMNIST/raw/*.gz or DIR/*.gz); or train without it: "
        "--outliers drawings,letters,noise (a different model from the recipe's)."
    )


def _fashion_train(root: PathLike | None, mirror: PathLike | None) -> torch.Tensor:
    """Fashion-MNIST's train images, uint8 (60000, 28, 28); SourceError says why it is needed."""
    from mnistcnn import data as mdata
    from mnistcnn.data.errors import SourceError

    try:
        return mdata.load_arrays("fashion-mnist", train=True, root=root, mirror=mirror)[0]
    except SourceError as err:
        raise SourceError(f"{fashion_needed_message()}\n{err}", err.attempts) from err


def outlier_pool(
    kinds: list[str],
    count: int,
    seed: int = 0,
    *,
    root: PathLike | None = None,
    mirror: PathLike | None = None,
) -> list[torch.Tensor]:
    """One uint8 (N_k, 28, 28) tensor per kind in ``kinds`` (module docstring).

    Args:
        kinds: names from :data:`OUTLIER_KINDS`.
        count: pictures per generated kind (Fashion-MNIST: its 60,000 train images).
        seed: the run's seed; generated kinds use ``TRAIN_SEED + seed``.
        root, mirror: where Fashion-MNIST is obtained (as ``mnistcnn.data.load_arrays``).

    Raises:
        ValueError: an unknown kind.
        mnistcnn.data.SourceError: Fashion-MNIST cannot be obtained (the message says why
            it is needed and the offline ways: :func:`fashion_needed_message`).
    """
    pools = []
    for kind in kinds:
        if kind not in OUTLIER_KINDS:
            raise ValueError(f"unknown outlier kind {kind!r}; valid: {', '.join(OUTLIER_KINDS)}")
        if kind == "fashion-mnist":
            pools.append(_fashion_train(root, mirror))
        else:
            pools.append(_generated(kind, count, TRAIN_SEED + seed))
    return pools


class OutlierMixSource:
    """A training source whose batches end with ``outlier_batch`` outliers.

    Each batch is ``(cat(images, outlier images), cat(labels, OUTLIER_LABEL...))``:
    float32 (B + K, C, 28, 28) on 0..1 and int64 (B + K,). An outlier's kind
    is drawn uniformly (so the 60,000 Fashion-MNIST images do not crowd out
    the generated kinds), then an image of that kind uniformly, then
    ``augment`` (the run's own augmentation, so that no augmentation artefact
    tells digits from outliers) is applied, all from a CPU generator seeded by
    ``(seed, epoch, batch index, rank)``.

    Args:
        base: the digit training source (its ``len``, ``num_samples`` and epochs are kept).
        pools: uint8 (N_k, 28, 28) per kind (:func:`outlier_pool`); moved to ``device``.
        outlier_batch: outliers per batch (per rank: ``ceil(outlier_batch / world_size)``).
    """

    def __init__(
        self,
        base: BatchSource,
        pools: list[torch.Tensor],
        outlier_batch: int,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
        augment: Augment | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not pools or any(len(p) == 0 for p in pools):
            raise ValueError("outlier pools must be non-empty")
        self.base, self.augment = base, augment
        self.device = torch.device(device)
        self.images = torch.cat(pools).to(self.device)[:, None]  # (N, 1, 28, 28) uint8
        sizes = torch.tensor([len(p) for p in pools])
        self.sizes, self.offsets = sizes, torch.cumsum(sizes, 0) - sizes
        self.count = math.ceil(outlier_batch / world_size)
        self.seed, self.rank, self.epoch = seed, rank, 0
        self.num_samples = base.num_samples

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.base.set_epoch(epoch)

    def outliers(self, batch: int) -> torch.Tensor:
        """float32 (K, 1, 28, 28) on 0..1: the outliers of batch ``batch`` of this epoch."""
        gen = torch.Generator().manual_seed(
            (((self.seed * 1_000_003 + self.epoch) * 100_003 + batch) * 131 + self.rank + 0x0E)
            % 2**63
        )
        kind = torch.randint(len(self.sizes), (self.count,), generator=gen)
        pick = (torch.rand(self.count, generator=gen) * self.sizes[kind]).long()
        x = self.images[(self.offsets[kind] + pick).to(self.device)].float().div_(255.0)
        return self.augment(x, gen) if self.augment is not None else x

    def __iter__(self) -> Iterator[Batch]:
        for i, (images, labels) in enumerate(self.base):
            extra = self.outliers(i).to(images.dtype)
            marks = torch.full((len(extra),), OUTLIER_LABEL, dtype=labels.dtype)
            yield torch.cat([images, extra]), torch.cat([labels, marks.to(labels.device)])
