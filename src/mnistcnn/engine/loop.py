"""The training loop: plain PyTorch, one epoch at a time, resumable at any step.

``fit`` takes an already-built model and batch sources (data and architecture
are injected, not hard-wired) and returns the per-epoch history. The run
directory (checkpoints, metrics.csv) is written through :class:`RunDir`.

Resume is exact: a checkpoint records the position (epoch, batches done in
it, partial epoch sums), the optimizer/scheduler state and the RNG states; the
data order depends only on ``(seed, epoch)``, so a resumed run replays the
same batches and, on the CPU, ends with bitwise the same weights.

Under torchrun the loop is given a :class:`DistContext`: the forward pass runs
through DistributedDataParallel, the stop flag, loss checks, epoch sums and
evaluation are agreed over the ranks, and only rank 0 gets a run directory
(see :mod:`mnistcnn.engine.distributed`).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from typing import Any

import torch
from torch import nn
from tqdm import tqdm  # the plain bar: tqdm.auto warns in notebooks without ipywidgets

from mnistcnn.artifact import Checkpoint, TrainedModel
from mnistcnn.config import TrainConfig
from mnistcnn.data.loaders import BatchSource
from mnistcnn.engine.allocator import keep_freed_memory
from mnistcnn.engine.distributed import DistContext, evaluate_gathered
from mnistcnn.engine.evaluate import evaluate_batches
from mnistcnn.engine.loop_state import (
    EpochCallback,
    History,
    Loop,
    NonFiniteLossError,
    Position,
    StopCheck,
    TrainingInterrupted,
    epochs_without_improvement,
    global_sums,
    make_ema,
    restore,
    resume_nproc,
    run_writes,
)
from mnistcnn.engine.optim import build_optimizer, build_scheduler
from mnistcnn.engine.outlier_exposure import exposure_loss
from mnistcnn.engine.run_dir import RunDir
from mnistcnn.engine.utils import precision_autocast
from mnistcnn.models.fast_path import set_fast_path
from mnistcnn.models.outputs import training_loss

__all__ = [
    "EpochCallback",
    "History",
    "NonFiniteLossError",
    "StopCheck",
    "TrainingInterrupted",
    "fit",
    "resume_nproc",
    "train_one_epoch",
]

log = logging.getLogger(__name__)


def train_one_epoch(
    loop: Loop, source: BatchSource, pos: Position, *, progress: bool = False
) -> tuple[float, float, float]:
    """Run epoch ``pos.epoch`` from batch ``pos.batch``; returns (mean loss, accuracy, last lr).

    Batches already done (a resumed epoch) are drawn and skipped, so the data
    order and any batch-level randomness are replayed exactly.

    Raises:
        NonFiniteLossError: a batch's loss is NaN or infinite (weights are not updated).
        TrainingInterrupted: ``loop.stop()`` turned true; a resumable checkpoint was written.
    """
    opt, config = loop.optimizer, loop.config
    net = loop.net or loop.model
    net.train()
    source.set_epoch(pos.epoch)
    lr = opt.param_groups[0]["lr"]
    batches = itertools.islice(iter(source), pos.batch, None)
    bar = tqdm(
        batches,
        total=len(source),
        initial=pos.batch,
        desc=f"epoch {pos.epoch}",
        leave=False,
        disable=not progress,
    )
    t0 = time.perf_counter() - pos.seconds
    for images, labels in bar:
        if config.max_steps is not None and loop.step >= config.max_steps:
            break
        lr = opt.param_groups[0]["lr"]
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with _autocast(config, images.device):
            # (B, num_classes), plus auxiliary classifiers' losses (GoogLeNet) if any
            if config.outlier_exposure > 0:  # batches end with outliers (engine/outlier_exposure)
                logits, labels, loss = exposure_loss(
                    loop.loss_fn, net(images), labels, config.outlier_exposure
                )
            else:
                logits, loss = training_loss(loop.loss_fn, net(images), labels)
        loss, loss_sum = _checked_loss(loop, loss, labels.numel(), pos, lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if loop.ema is not None:
            loop.ema.update_parameters(loop.model)
        if loop.scheduler is not None and loop.per_step:
            loop.scheduler.step()
        loop.step += 1
        pos.batch += 1
        pos.loss_sum += loss_sum
        pos.correct += int((logits.argmax(1) == labels).sum())
        pos.seen += labels.numel()
        if progress and loop.step % 50 == 0:
            bar.set_postfix(
                loss=f"{pos.loss_sum / pos.seen:.4f}", acc=f"{pos.correct / pos.seen:.2%}"
            )
        _maybe_checkpoint(loop, pos, t0)
    bar.close()
    pos.seconds = time.perf_counter() - t0
    total = global_sums(loop.dist, pos)
    if total.seen == 0:
        return math.nan, math.nan, lr
    return total.loss_sum / total.seen, total.correct / total.seen, lr


def _checked_loss(
    loop: Loop, loss: torch.Tensor, n: int, pos: Position, lr: float
) -> tuple[torch.Tensor, float]:
    """(the loss to backpropagate, this rank's summed batch loss in nats).

    One process: ``loss`` is the batch mean. Distributed: ``loss`` is the sum
    over this rank's part, scaled so that DDP's gradient average is the
    gradient of the global batch mean (see ``DistContext.global_mean_loss``).

    Raises:
        NonFiniteLossError: the loss is NaN/inf (on any rank).
    """
    if loop.dist.distributed:
        scaled, finite = loop.dist.global_mean_loss(loss, n)
    else:
        scaled, finite = loss, bool(torch.isfinite(loss))
    if not finite:
        value = loss.item()
        raise NonFiniteLossError(
            f"training loss is {value if not math.isfinite(value) else 'not finite on a rank'} "
            f"at epoch {pos.epoch}, step {loop.step + 1} "
            f"(lr {lr:g}); lower the learning rate or change the optimizer. Checkpoints already "
            "written are intact.",
            setting="lr",
        )
    return scaled, loss.item() if loop.dist.distributed else loss.item() * n


def _maybe_checkpoint(loop: Loop, pos: Position, t0: float) -> None:
    stop = loop.dist.any(loop.stop is not None and loop.stop())
    every = loop.checkpoint_every
    if not stop and not (every and loop.step % every == 0):
        return
    pos.seconds = time.perf_counter() - t0
    path = loop.save(pos)
    if stop:
        where = f"; {path} is resumable (resume={path.parent})" if path else ""
        raise TrainingInterrupted(
            f"stopped at epoch {pos.epoch}, step {loop.step}{where}",
            path,
            nproc=resume_nproc(loop.dist),
        )


def _stop_after_epoch(loop: Loop, epoch: int) -> None:
    """Raise TrainingInterrupted if a stop was asked during the epoch's evaluation.

    The epoch's metrics row and checkpoint are written by then, so the run
    resumes at the next epoch (after the last one: it is complete, and a
    resume only writes the report). Every rank must call this (a collective).
    """
    if not loop.dist.any(loop.stop is not None and loop.stop()):
        return
    path = loop.run.last if loop.run is not None else None
    complete = epoch >= loop.config.epochs
    if complete:
        what = f"stopped after the last epoch ({epoch}): training is complete"
        then = f"; resume it (resume={path.parent}) to write its report" if path else ""
    else:
        what = f"stopped after epoch {epoch}, its evaluation and checkpoint complete"
        then = f"; {path} is resumable (resume={path.parent})" if path else ""
    raise TrainingInterrupted(what + then, path, complete=complete, nproc=resume_nproc(loop.dist))


def fit(
    model: TrainedModel | nn.Module,
    train_source: BatchSource,
    eval_sources: dict[str, BatchSource],
    config: TrainConfig,
    *,
    run: RunDir | None = None,
    on_epoch_end: EpochCallback | None = None,
    progress: bool = False,
    resume: Checkpoint | None = None,
    checkpoint_every: int | None = None,
    stop: StopCheck | None = None,
    dist: DistContext | None = None,
) -> History:
    """Train ``model`` for ``config.epochs`` epochs and evaluate after each.

    Args:
        model: on the training device already; a :class:`TrainedModel` (pixels in
            [0, 1] in, logits (N, classes) out; its metadata goes into the
            checkpoints), or a bare module, wrapped with identity normalization.
        train_source: shuffled training batches.
        eval_sources: ``{"test": ..., "val": ...}``: evaluated after every
            epoch; their loss/accuracy become ``<name>_loss`` / ``<name>_accuracy``.
        config: optimizer, schedule, epochs, label smoothing, max_steps.
        run: where to write metrics.csv, last.pt and best.pt (None: nothing written).
        on_epoch_end: called with each epoch's metrics row.
        progress: show a tqdm bar inside each epoch.
        resume: continue from this checkpoint (weights, optimizer, scheduler,
            position, history, RNG states).
        checkpoint_every: also write last.pt every this many steps inside epochs.
        stop: polled after every step and after every epoch's evaluation;
            when true, last.pt is written (or was, at the epoch's end) and
            :class:`TrainingInterrupted` raised, also after the last epoch.
        dist: this process's place in a distributed run (None: one process).
            Every rank calls ``fit`` with its shard of the sources (built with
            its rank and world size); only rank 0 should be given ``run``.

    Returns:
        The :class:`History`. best.pt follows ``val_accuracy`` if a "val"
        source is given, else ``test_accuracy``.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint stays).
        TrainingInterrupted: ``stop`` asked to stop.
    """
    if not isinstance(model, TrainedModel):
        model = TrainedModel(model, precision=config.precision, dataset=config.dataset)
    set_fast_path(model, True)  # same function, faster CPU kernels (models/fast_path.py)
    keep_freed_memory()  # a step's feature maps reuse the last step's memory (engine/allocator)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    dist = dist or DistContext(next(model.parameters()).device)
    optimizer = build_optimizer(model, config)
    scheduler, per_step = build_scheduler(optimizer, config, len(train_source))
    reduction = "sum" if dist.distributed else "mean"  # see _checked_loss
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing, reduction=reduction)
    loop = Loop(
        model,
        optimizer,
        loss_fn,
        scheduler,
        per_step,
        config,
        run,
        History(),
        checkpoint_every=checkpoint_every,
        stop=stop,
        ema=make_ema(model, config),
        dist=dist,
        net=dist.wrap(model),
    )
    pos = restore(loop, resume) if resume is not None else Position()
    monitor = "val_accuracy" if "val" in eval_sources else "test_accuracy"
    while pos.epoch <= config.epochs:
        if config.max_steps is not None and loop.step >= config.max_steps:
            break
        train_loss, train_acc, lr = train_one_epoch(loop, train_source, pos, progress=progress)
        row = _end_epoch(loop, eval_sources, pos, train_loss, train_acc, lr, monitor)
        if on_epoch_end is not None:
            on_epoch_end(row)
        _stop_after_epoch(loop, pos.epoch)
        patience = config.early_stopping
        if patience is not None and epochs_without_improvement(loop.history.rows) >= patience:
            loop.history.stopped_early = pos.epoch < config.epochs
            log.info("early stop after epoch %d: val_loss has not improved for %d", pos.epoch,
                     patience)  # fmt: skip
            break
        pos = Position(epoch=pos.epoch + 1)
    loop.history.steps = loop.step
    return loop.history


def _end_epoch(
    loop: Loop,
    eval_sources: dict[str, BatchSource],
    pos: Position,
    train_loss: float,
    train_acc: float,
    lr: float,
    monitor: str,
) -> dict[str, Any]:
    t1 = time.perf_counter()
    row: dict[str, Any] = {
        "epoch": pos.epoch,
        "train_loss": train_loss,
        "train_accuracy": train_acc,
    }
    for name, source in eval_sources.items():
        with _autocast(loop.config, next(loop.model.parameters()).device):
            if loop.dist.distributed:
                loss, acc = evaluate_gathered(loop.eval_model, source, loop.dist)
            else:
                loss, acc = evaluate_batches(loop.eval_model, source)
        row[f"{name}_loss"], row[f"{name}_accuracy"] = loss, acc
    row.update(lr=lr, train_seconds=pos.seconds, eval_seconds=time.perf_counter() - t1)
    if loop.scheduler is not None and not loop.per_step:
        loop.scheduler.step()
    history = loop.history
    history.rows.append(row)
    history.steps = loop.step
    improved = row.get(monitor, -math.inf) > history.best
    if improved:
        history.best, history.best_epoch = row[monitor], pos.epoch
    if loop.run is not None:
        with run_writes(loop.run.metrics_csv):
            loop.run.append_metrics(row)
    loop.save(Position(epoch=pos.epoch + 1), best=improved)  # collective: every rank
    log.info("epoch %d: %s", pos.epoch, row)
    return row


def _autocast(config: TrainConfig, device: torch.device) -> torch.autocast:
    """bfloat16 autocast on CPU/CUDA when ``config.precision == "bf16"``, else a no-op."""
    return precision_autocast(config.precision, device)
