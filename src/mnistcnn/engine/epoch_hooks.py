"""What a run does after each epoch besides metrics.csv and its checkpoints, on rank 0:
the TensorBoard log (``tensorboard``, :mod:`mnistcnn.engine.tblog`) and the top-K
checkpoints (``keep_top``, :mod:`mnistcnn.engine.top_k`).

:func:`~mnistcnn.engine.session.train` opens them with :func:`epoch_hooks` once
the run directory is set up and calls the result with each epoch's metrics
row, after that epoch's ``last.pt`` is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnistcnn.config import TrainConfig
from mnistcnn.data.loaders import BatchSource

EpochHook = Callable[[dict[str, Any]], None]


def check_epoch_hooks(config: TrainConfig) -> None:
    """Fail before training if a hook cannot run: tensorboard asked but not installed.

    Raises:
        SettingError: (``setting="tensorboard"``) tensorboard is not installed.
    """
    if config.tensorboard is not None:
        from mnistcnn.engine.tblog import summary_writer_class

        summary_writer_class()


@contextlib.contextmanager
def epoch_hooks(
    config: TrainConfig,
    run_dir: Path,
    model: nn.Module,
    train_source: BatchSource,
    monitor: str,
    resume_epoch: int | None,
) -> Iterator[EpochHook | None]:
    """The hooks ``config`` asks for, as one callable (None: none asked); closed on exit.

    Args:
        config: ``tensorboard`` and ``keep_top`` say which hooks run.
        run_dir: the run folder.
        model: the model trained (histograms of its weights).
        train_source: its first batch is the TensorBoard sample grid (drawn with the
            RNG states saved and restored: training draws the same numbers).
        monitor: the row key best.pt follows (``val_accuracy`` or ``test_accuracy``).
        resume_epoch: the epoch a resumed run starts at (None: a new run).
    """
    hooks: list[EpochHook] = []
    with contextlib.ExitStack() as stack:
        if config.tensorboard is not None:
            from mnistcnn.engine.tblog import TensorBoardLog, log_dir

            tb = TensorBoardLog(log_dir(config.tensorboard, run_dir), model, resume_epoch)
            stack.callback(tb.close)
            tb.start(config.to_dict(), None if tb.resumed else first_batch(train_source))
            hooks.append(tb)
        if config.keep_top is not None:
            from mnistcnn.engine.top_k import TopCheckpoints

            hooks.append(TopCheckpoints(run_dir, config.keep_top, monitor, resume_epoch))
        yield chain_hooks(*hooks)


def first_batch(source: BatchSource) -> torch.Tensor | None:
    """The images (B, C, H, W) of epoch 1's first batch of ``source``; None if it has none.

    The global RNG states (CPU and the device's) are restored afterwards: a
    DataLoader draws its base seed from them.
    """
    devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        source.set_epoch(1)
        for images, _ in source:
            return images
    return None


def chain_hooks(*hooks: EpochHook | None) -> EpochHook | None:
    """One callable calling each of ``hooks`` (None ones left out) in order; None if none."""
    given = [h for h in hooks if h is not None]
    if not given:
        return None

    def chained(row: dict[str, Any]) -> None:
        for hook in given:
            hook(row)

    return chained
