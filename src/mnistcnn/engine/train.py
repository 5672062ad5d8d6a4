"""The training loop: plain PyTorch, one epoch at a time.

``fit`` takes an already-built model and batch sources (data and architecture
are injected, not hard-wired) and returns the per-epoch history. The run
directory (checkpoints, metrics.csv) is written through :class:`RunDir`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from mnistcnn.config import TrainConfig
from mnistcnn.data.loaders import BatchSource
from mnistcnn.engine.checkpoint import save_checkpoint
from mnistcnn.engine.evaluate import evaluate_batches
from mnistcnn.engine.rundir import RunDir
from mnistcnn.engine.utils import rng_state, versions

log = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, Any]], None]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names epoch, step and lr."""


@dataclass
class History:
    """What :func:`fit` returns: one metrics dict per epoch, and the best epoch.

    Accuracies are fractions in [0, 1]; losses are mean cross-entropy per
    sample (nats); seconds are wall-clock seconds.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    steps: int = 0

    @property
    def last(self) -> dict[str, Any]:
        return self.rows[-1]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam, SGD (with ``momentum``, Nesterov off) or Adadelta at ``config.lr``."""
    params = model.parameters()
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.lr_scheduler.LRScheduler | None, bool]:
    """The learning-rate schedule and whether it steps per batch (else per epoch)."""
    total = config.epochs * steps_per_epoch
    if config.scheduler == "none":
        return None, False
    if config.scheduler == "step":
        sched = torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, gamma=config.gamma)
        return sched, False
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total), True
    if config.scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total)
        return sched, True
    raise ValueError(f"unknown scheduler {config.scheduler!r}")


@dataclass
class _Loop:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    per_step: bool
    step: int = 0


def train_one_epoch(
    loop: _Loop,
    source: BatchSource,
    epoch: int,
    *,
    max_steps: int | None = None,
    progress: bool = False,
) -> tuple[float, float, float]:
    """One pass over ``source``; returns (mean loss, accuracy 0..1, last lr).

    Raises:
        NonFiniteLossError: a batch's loss is NaN or infinite (weights are not updated).
    """
    loop.model.train()
    source.set_epoch(epoch)
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct, seen = 0, 0
    lr = loop.optimizer.param_groups[0]["lr"]
    bar = tqdm(source, total=len(source), desc=f"epoch {epoch}", leave=False, disable=not progress)
    for images, labels in bar:
        if max_steps is not None and loop.step >= max_steps:
            break
        lr = loop.optimizer.param_groups[0]["lr"]
        logits = loop.model(images)  # (B, num_classes)
        loss = loop.loss_fn(logits, labels)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at epoch {epoch}, step {loop.step + 1} "
                f"(lr {lr:g}); lower --lr or change the optimizer. Checkpoints already "
                "written are intact."
            )
        loop.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loop.optimizer.step()
        if loop.scheduler is not None and loop.per_step:
            loop.scheduler.step()
        loop.step += 1
        n = labels.numel()
        loss_sum += loss.detach().double().cpu() * n
        correct += int((logits.argmax(1) == labels).sum())
        seen += n
        if progress and loop.step % 50 == 0:
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct / seen:.2%}")
    bar.close()
    if seen == 0:
        return math.nan, math.nan, lr
    return loss_sum.item() / seen, correct / seen, lr


def fit(
    model: nn.Module,
    train_source: BatchSource,
    eval_sources: dict[str, BatchSource],
    config: TrainConfig,
    *,
    run: RunDir | None = None,
    checkpoint_meta: dict[str, Any] | None = None,
    on_epoch_end: EpochCallback | None = None,
    progress: bool = False,
) -> History:
    """Train ``model`` for ``config.epochs`` epochs and evaluate after each.

    Args:
        model: on the training device already; returns logits (N, classes).
        train_source: shuffled training batches.
        eval_sources: ``{"test": ..., "val": ...}``: evaluated after every
            epoch; their loss/accuracy become ``<name>_loss`` / ``<name>_accuracy``.
        config: optimizer, schedule, epochs, label smoothing, max_steps.
        run: where to write metrics.csv, last.pt and best.pt (None: nothing written).
        checkpoint_meta: extra checkpoint fields (model name/kwargs, classes,
            normalization, dataset, input_size, config).
        on_epoch_end: called with each epoch's metrics row.
        progress: show a tqdm bar inside each epoch.

    Returns:
        The :class:`History`. best.pt follows ``val_accuracy`` if a "val"
        source is given, else ``test_accuracy``.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint stays).
    """
    optimizer = build_optimizer(model, config)
    scheduler, per_step = build_scheduler(optimizer, config, len(train_source))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    loop = _Loop(model, optimizer, loss_fn, scheduler, per_step)
    monitor = "val_accuracy" if "val" in eval_sources else "test_accuracy"
    history, best = History(), -math.inf
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        train_loss, train_acc, lr = train_one_epoch(
            loop, train_source, epoch, max_steps=config.max_steps, progress=progress
        )
        t1 = time.perf_counter()
        row: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
        }
        for name, source in eval_sources.items():
            loss, acc = evaluate_batches(model, source)
            row[f"{name}_loss"], row[f"{name}_accuracy"] = loss, acc
        row.update(lr=lr, train_seconds=t1 - t0, eval_seconds=time.perf_counter() - t1)
        if scheduler is not None and not per_step:
            scheduler.step()
        history.rows.append(row)
        history.steps = loop.step
        improved = row.get(monitor, -math.inf) > best
        if improved:
            best, history.best_epoch = row[monitor], epoch
        if run is not None:
            _write_epoch(run, loop, history, row, improved, checkpoint_meta or {})
        log.info("epoch %d: %s", epoch, row)
        if on_epoch_end is not None:
            on_epoch_end(row)
        if config.max_steps is not None and loop.step >= config.max_steps:
            break
    return history


def _write_epoch(
    run: RunDir,
    loop: _Loop,
    history: History,
    row: dict[str, Any],
    improved: bool,
    meta: dict[str, Any],
) -> None:
    run.append_metrics(row)
    payload = {
        **meta,
        "state_dict": {k: v.detach().cpu() for k, v in loop.model.state_dict().items()},
        "optimizer": loop.optimizer.state_dict(),
        "scheduler": loop.scheduler.state_dict() if loop.scheduler is not None else None,
        "epoch": row["epoch"],
        "step": loop.step,
        "metrics": row,
        "history": list(history.rows),
        "rng": rng_state(),
        "versions": versions(),
    }
    save_checkpoint(run.last, payload)
    if improved:
        save_checkpoint(run.best, payload)
