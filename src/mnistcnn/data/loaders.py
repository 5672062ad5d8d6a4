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

In a distributed run each rank takes its strided part of every global batch
(:func:`rank_batches`): every sample exactly once per epoch across the ranks,
nothing padded or dropped. Ranks > 0 draw their augmentation from their own
stream, so augmented distributed runs are reproducible but do not match a
single-process run sample for sample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, default_collate

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


def rank_batches(
    order: torch.Tensor, batch_size: int, rank: int = 0, world_size: int = 1
) -> Iterator[torch.Tensor]:
    """This rank's part of each global batch of ``order``: a pad-free strided split.

    Global batch ``k`` is ``order[k * batch_size : (k + 1) * batch_size]``;
    rank ``r`` of ``world_size`` takes its elements ``r, r + W, r + 2W, ...``.
    So across the ranks every index of ``order`` appears exactly once per
    epoch; each rank's part has ``batch_size / W`` indices when that divides
    (the sizes differ by at most one otherwise); and every rank yields the same
    number of parts, ``ceil(len(order) / batch_size)``. A short last batch is
    split the same way; when it holds fewer than ``W`` samples some ranks get
    an empty part (an empty batch, so no rank skips a step; the training loop
    weights each rank's loss by its sample count, see
    :meth:`mnistcnn.engine.distributed.DistContext.global_mean_loss`).

    Args:
        order: int64 (n,) sample indices in epoch order.
        batch_size: global batch size (>= 1).
        rank, world_size: this process's rank in ``0..world_size-1``.

    Yields:
        int64 tensors (<= ceil(batch_size / world_size),): views into ``order``.

    Raises:
        ValueError: ``batch_size < 1`` or ``rank`` not in ``0..world_size-1``.
    """
    _check_shard(batch_size, rank, world_size)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size][rank::world_size]


def _check_shard(batch_size: int, rank: int, world_size: int) -> None:
    if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(
            f"need batch_size >= 1 and 0 <= rank < world_size, got batch_size={batch_size}, "
            f"rank={rank}, world_size={world_size}"
        )


def _rank_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    """The augmentation generator of ``(seed, epoch)``; ranks > 0 get their own stream."""
    gen = augment_generator(seed, epoch)
    return gen if rank == 0 else gen.manual_seed(gen.initial_seed() + (rank << 32))


class _BatchSampler(Sampler[list[int]]):
    """Index lists of this rank's part of each global batch, in epoch order."""

    def __init__(
        self, n: int, batch_size: int, seed: int, shuffle: bool, rank: int, world_size: int
    ) -> None:
        _check_shard(batch_size, rank, world_size)
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            order = epoch_permutation(self.n, self.seed, self.epoch)
        else:
            order = torch.arange(self.n)
        for part in rank_batches(order, self.batch_size, self.rank, self.world_size):
            yield part.tolist()


def _collate(batch: list[Any]) -> Any:
    """``default_collate``, or None for an empty shard (see :func:`rank_batches`)."""
    return default_collate(batch) if batch else None


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
        rank, world_size: yield only this rank's part of each global batch of
            ``batch_size`` (see :func:`rank_batches`); ``len()`` and
            ``num_samples`` stay global.
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
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if indices is not None:
            dataset = Subset(dataset, [int(i) for i in indices])
        self.num_samples = len(dataset)  # type: ignore[arg-type]
        self.sampler = _BatchSampler(self.num_samples, batch_size, seed, shuffle, rank, world_size)
        self.device, self.seed, self.augment, self.rank = device, seed, augment, rank
        self.post = _Normalize(mean, std, device or torch.device("cpu"))
        self.loader = DataLoader(
            dataset,
            batch_sampler=self.sampler,
            num_workers=num_workers,
            collate_fn=_collate,
            pin_memory=device is not None and device.type == "cuda",
        )

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.epoch = epoch

    def __iter__(self) -> Iterator[Batch]:
        gen = _rank_generator(self.seed, self.sampler.epoch, self.rank) if self.augment else None
        for batch in self.loader:
            images, labels = batch if batch is not None else self._empty_batch()
            if self.device is not None:
                images = images.to(self.device, non_blocking=True)
                labels = labels.to(self.device, non_blocking=True)
            if self.augment is not None and gen is not None:
                images = self.augment(images, gen)
            yield self.post(images), labels

    def _empty_batch(self) -> Batch:
        """float32 (0, C, H, W) images and int64 (0,) labels: an empty shard."""
        image = self.loader.dataset[0][0]
        return torch.empty((0, *image.shape)), torch.empty(0, dtype=torch.int64)


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
        rank, world_size: yield only this rank's part of each global batch of
            ``batch_size`` (see :func:`rank_batches`); ``len()`` and
            ``num_samples`` stay global.

    Raises:
        TypeError: ``images`` is not uint8.
        ValueError: image and label counts differ, or a bad ``rank``/``world_size``.
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
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        _check_shard(batch_size, rank, world_size)
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
        self.augment, self.rank, self.world_size = augment, rank, world_size
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
        gen = _rank_generator(self.seed, self.epoch, self.rank) if self.augment else None
        step = self.world_size
        for start in range(0, self.num_samples, self.batch_size):
            if order is None:  # this rank's strided part of the batch (see rank_batches)
                sl = slice(start + self.rank, start + self.batch_size, step)
                x, y = self.images[sl], self.labels[sl]
            else:
                idx = order[start : start + self.batch_size][self.rank :: step]
                x, y = self.images[idx], self.labels[idx]
            x = x.float().div_(255.0)  # (B, C, 28, 28) in [0, 1]
            if self.augment is not None and gen is not None:
                x = self.augment(x, gen)
            yield self.post(x), y
