"""Batch sources for training and evaluation.

Two paths give the same batches for the same seed:

* :class:`DataLoaderSource`: a torchvision dataset (PIL images, ``ToTensor``)
  through ``torch.utils.data.DataLoader``; what image folders need, and the
  seed tutorial's code path.
* :class:`TensorSource`: the whole split as one uint8 tensor on the device;
  each batch is gathered by indexing and converted on the device. No per-sample
  Python or PIL work.

Both draw the order of an epoch from :func:`epoch_permutation`, so the data
order depends only on ``(seed, epoch)``. Both apply an optional batched
augmentation (:mod:`mnistcnn.data.augment`) on the 0..1 scale, then the
normalization, with a generator seeded from ``(seed, epoch)``: the same seed
gives the same batches on either path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from mnistcnn.data.augment import augment_generator

Batch = tuple[torch.Tensor, torch.Tensor]
#: ``augment(images float (B, C, H, W) on 0..1, generator) -> images`` (same shape).
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class BatchSource(Protocol):
    """What the training loop iterates: batches of (images, labels).

    images: float32 (B, C, 28, 28), normalized as configured; labels: int64 (B,).
    """

    num_samples: int

    def __len__(self) -> int: ...  # batches per epoch

    def set_epoch(self, epoch: int) -> None: ...

    def __iter__(self) -> Iterator[Batch]: ...


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of ``n`` samples in ``epoch``: int64 (n,), a permutation of 0..n-1.

    Depends only on ``(seed, epoch)`` (a CPU generator seeded with
    ``seed * 1_000_003 + epoch``), so every loader path and a resumed run see
    the same order.
    """
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split of ``range(n)`` into (train, validation) index tensors (int64, sorted).

    ``round(n * val_fraction)`` samples go to validation.
    """
    n_val = int(round(n * val_fraction))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


class _PermutationSampler(Sampler[int]):
    def __init__(self, n: int, seed: int, shuffle: bool) -> None:
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        return iter(epoch_permutation(self.n, self.seed, self.epoch).tolist())


class DataLoaderSource:
    """Batches from a map-style dataset through a DataLoader (the classic path).

    Args:
        dataset: yields ``(image tensor float32 (C, 28, 28), int label)``.
        indices: optional subset of the dataset's indices.
        batch_size: images per batch; the last batch may be smaller (nothing dropped).
        shuffle: draw the order from :func:`epoch_permutation`; else dataset order.
        seed: data-order seed.
        num_workers: DataLoader worker processes.
        device: where batches are moved (``None``: left where the loader made them).
        augment: batched augmentation applied on ``device`` to the 0..1 images
            (see :mod:`mnistcnn.data.augment`); ``None`` for none.
        mean, std: normalization applied after augmentation, as in
            :class:`TensorSource` (the default 0/1 leaves batches untouched). Leave
            ``Normalize`` out of the dataset's transform when augmenting.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        indices: Sequence[int] | torch.Tensor | None = None,
        shuffle: bool = False,
        seed: int = 0,
        num_workers: int = 0,
        device: torch.device | None = None,
        augment: Augment | None = None,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
    ) -> None:
        if indices is not None:
            dataset = Subset(dataset, [int(i) for i in indices])
        self.num_samples = len(dataset)  # type: ignore[arg-type]
        self.sampler = _PermutationSampler(self.num_samples, seed, shuffle)
        self.device, self.seed, self.augment = device, seed, augment
        self.post = _Normalize(mean, std, device or torch.device("cpu"))
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=num_workers,
            pin_memory=device is not None and device.type == "cuda",
        )

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.epoch = epoch

    def __iter__(self) -> Iterator[Batch]:
        gen = augment_generator(self.seed, self.sampler.epoch) if self.augment else None
        for images, labels in self.loader:
            if self.device is not None:
                images = images.to(self.device, non_blocking=True)
                labels = labels.to(self.device, non_blocking=True)
            if self.augment is not None and gen is not None:
                images = self.augment(images, gen)
            yield self.post(images), labels


class _Normalize:
    """``(x - mean) / std`` per channel in place, with the ops of ``transforms.Normalize``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: torch.device) -> None:
        self.identity = all(m == 0.0 for m in mean) and all(s == 1.0 for s in std)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.identity else x.sub_(self.mean).div_(self.std)


class TensorSource:
    """Batches gathered from a whole split held as a uint8 tensor on the device.

    Args:
        images: uint8 (N, 28, 28) or (N, C, 28, 28), pixel values 0..255.
        labels: int64 (N,).
        batch_size: images per batch; the last batch may be smaller.
        mean, std: per-channel normalization on the 0..1 scale; each batch is
            ``(images / 255 - mean) / std``, float32 (B, C, 28, 28).
        shuffle, seed: as :class:`DataLoaderSource` (same order for the same seed).
        device: where the data lives and batches are made.
        augment: batched augmentation of the 0..1 images before normalization,
            with a generator seeded from ``(seed, epoch)``; ``None`` for none.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
        shuffle: bool = False,
        seed: int = 0,
        device: torch.device | str = "cpu",
        augment: Augment | None = None,
    ) -> None:
        if images.dtype != torch.uint8:
            raise TypeError(f"images must be uint8, got {images.dtype}")
        if images.ndim == 3:
            images = images.unsqueeze(1)  # (N, 1, H, W)
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.device = torch.device(device)
        self.images = images.to(self.device).contiguous()
        self.labels = labels.to(self.device, dtype=torch.int64)
        self.num_samples = len(self.labels)
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, 0
        self.augment = augment
        # The same float ops as ToTensor + Normalize, so both paths give identical batches.
        self.post = _Normalize(mean, std, self.device)

    def __len__(self) -> int:
        return (self.num_samples + self.batch_size - 1) // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[Batch]:
        if self.shuffle:
            order = epoch_permutation(self.num_samples, self.seed, self.epoch).to(self.device)
        else:
            order = None
        gen = augment_generator(self.seed, self.epoch) if self.augment else None
        for start in range(0, self.num_samples, self.batch_size):
            if order is None:
                sl = slice(start, start + self.batch_size)
                x, y = self.images[sl], self.labels[sl]
            else:
                idx = order[start : start + self.batch_size]
                x, y = self.images[idx], self.labels[idx]
            x = x.float().div_(255.0)  # (B, C, 28, 28) in [0, 1]
            if self.augment is not None and gen is not None:
                x = self.augment(x, gen)
            yield self.post(x), y
