"""What the training loop carries and leaves behind, apart from the loop itself.

:class:`History` (what :func:`~mnistcnn.engine.loop.fit` returns), the
:class:`Position` inside an epoch, the :class:`Loop` state with its resumable
checkpoint writes, :func:`restore` from a checkpoint, the weight average
(:func:`make_ema`), the errors that end training (:class:`NonFiniteLossError`,
:class:`TrainingInterrupted`) and the command that resumes a run
(:func:`resume_command`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from mnistcnn.artifact import Checkpoint, TrainedModel, save_checkpoint
from mnistcnn.artifact.schema import cpu_state_dict
from mnistcnn.config import TrainConfig
from mnistcnn.engine.distributed import DistContext
from mnistcnn.engine.run_dir import RunDir, RunDirError
from mnistcnn.engine.utils import rng_state, set_rng_state, versions
from mnistcnn.errors import MnistcnnError, SettingError

EpochCallback = Callable[[dict[str, Any]], None]
StopCheck = Callable[[], bool]


log = logging.getLogger(__name__)


class NonFiniteLossError(MnistcnnError, FloatingPointError):
    """The training loss became NaN or infinite; the message names epoch, step and lr."""


class TrainingInterrupted(Exception):
    """Training stopped on request (a signal); ``checkpoint`` is resumable (None if no run dir).

    Attributes:
        checkpoint: the resumable ``last.pt``, or None.
        complete: all epochs were trained (resuming only writes the report).
        nproc: processes of a run started on one machine (resume it with as many), or 1.
    """

    def __init__(
        self, message: str, checkpoint: Path | None, *, complete: bool = False, nproc: int = 1
    ) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.complete = complete
        self.nproc = nproc


@dataclass
class History:
    """What :func:`~mnistcnn.engine.loop.fit` returns: one metrics dict per epoch, the best epoch.

    Accuracies are fractions in [0, 1]; losses are mean cross-entropy per
    sample (nats); seconds are wall-clock seconds.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best: float = -math.inf
    steps: int = 0
    #: training ended before its last epoch: the validation loss stopped improving
    stopped_early: bool = False

    @property
    def last(self) -> dict[str, Any]:
        return self.rows[-1]


def epochs_without_improvement(rows: list[dict[str, Any]], key: str = "val_loss") -> int:
    """Epochs since the lowest ``key`` in ``rows`` (0: the last epoch is the lowest so far).

    The early-stopping count (Prechelt 1998, "Early Stopping - But When?"):
    derived from the metrics rows alone, so a resumed run counts the same.
    """
    values = [r.get(key) for r in rows]
    if not values or any(v is None for v in values):
        return 0
    best = min(range(len(values)), key=lambda i: (values[i], i))
    return len(values) - 1 - best


@dataclass
class Position:
    """Where training stands: ``batch`` batches of ``epoch`` are done, with their sums."""

    epoch: int = 1
    batch: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Loop:
    model: TrainedModel
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    per_step: bool
    config: TrainConfig
    run: RunDir | None
    history: History
    step: int = 0
    checkpoint_every: int | None = None
    stop: StopCheck | None = None
    ema: AveragedModel | None = None  # weight average; evaluated and saved instead of model
    dist: DistContext = field(default_factory=lambda: DistContext(torch.device("cpu")))
    net: nn.Module | None = None  # the DDP wrapper of ``model`` for the training forward pass

    @property
    def eval_model(self) -> TrainedModel:
        """The model evaluated and saved: the weight average with EMA on, else the model."""
        if self.ema is not None:
            module = self.ema.module
            assert isinstance(module, TrainedModel)
            return module
        return self.model

    def save(self, position: Position, best: bool = False) -> Path | None:
        """Write last.pt (and best.pt) resumable at ``position``; every rank must call it.

        Distributed: rank 0 writes the partial sums of every rank, and no rank
        goes on before the checkpoint is complete (so any may read it next).
        """
        position = global_sums(self.dist, position)
        path = self._write(position, best) if self.run is not None else None
        self.dist.barrier()
        return path

    def _write(self, position: Position, best: bool) -> Path:
        assert self.run is not None
        ckpt = Checkpoint.of(
            self.eval_model,
            self.run.last,
            config=self.config.to_dict(),
            extra=_ema_extra(self),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict() if self.scheduler is not None else None,
            epoch=position.epoch - 1,  # completed epochs
            step=self.step,
            position=position.as_dict(),
            metrics=self.history.rows[-1] if self.history.rows else {},
            history=list(self.history.rows),
            best={"value": self.history.best, "epoch": self.history.best_epoch},
            rng=rng_state(),
            versions=versions(),
        )
        with run_writes(self.run.last):
            save_checkpoint(self.run.last, ckpt)
            if best:
                save_checkpoint(self.run.best, ckpt)
        self.run.checkpoint_written()
        return self.run.last


@contextlib.contextmanager
def run_writes(path: Path) -> Iterator[None]:
    """Turn an OSError (disk full, folder gone) while writing the run into a RunDirError."""
    try:
        yield
    except OSError as exc:
        raise RunDirError(
            f"{path}: cannot write the run directory ({exc}); files written before are intact"
        ) from exc


def global_sums(dist: DistContext, pos: Position) -> Position:
    """``pos`` with loss_sum, correct and seen summed over the ranks (itself in one process)."""
    if not dist.distributed:
        return pos
    loss_sum, correct, seen = dist.sum([pos.loss_sum, pos.correct, pos.seen])
    return dataclasses.replace(pos, loss_sum=loss_sum, correct=int(correct), seen=int(seen))


def resume_nproc(dist: DistContext) -> int:
    """How many processes a resume of this run should start: the world size for a run
    started on one machine (``--nproc N`` or ``torchrun --nproc-per-node N``), else 1
    (across machines each one resumes with its own torchrun command, docs/distributed.md)."""
    single_node = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size)) == dist.world_size
    return dist.world_size if dist.distributed and single_node else 1


def restore(loop: Loop, ckpt: Checkpoint) -> Position:
    """Load weights, optimizer, scheduler, history and RNG states; return the position."""
    train_weights = ckpt.extra.get("train_state_dict")
    loop.model.load_state_dict(train_weights if train_weights is not None else ckpt.state_dict)
    if loop.ema is not None:
        loop.ema.module.load_state_dict(ckpt.state_dict)
        loop.ema.n_averaged.fill_(max(1, ckpt.step))  # already averaging: no re-copy
    if ckpt.optimizer is not None:
        loop.optimizer.load_state_dict(ckpt.optimizer)
    if loop.scheduler is not None and ckpt.scheduler is not None:
        if schedule_length(ckpt.scheduler) == schedule_length(loop.scheduler.state_dict()):
            loop.scheduler.load_state_dict(ckpt.scheduler)
        else:
            replan_schedule(loop, ckpt)
    loop.step = ckpt.step
    loop.history.rows = [dict(r) for r in ckpt.history]
    best = ckpt.best or {}
    loop.history.best = float(best.get("value", -math.inf))
    loop.history.best_epoch = best.get("epoch")
    if ckpt.rng is not None:
        set_rng_state(ckpt.rng)
    pos = Position(**(ckpt.position or {"epoch": ckpt.epoch + 1}))
    if not loop.dist.is_main:  # the saved partial sums are every rank's: count them once
        pos.loss_sum, pos.correct, pos.seen = 0.0, 0, 0
    return pos


def schedule_length(state: dict[str, Any]) -> int | None:
    """The steps a per-step schedule was planned for (OneCycle ``total_steps``, cosine
    ``T_max``), from its state dict; None for a schedule that does not plan a length."""
    for key in ("total_steps", "T_max"):
        if isinstance(state.get(key), int):
            return int(state[key])
    return None


def replan_schedule(loop: Loop, ckpt: Checkpoint) -> None:
    """Continue a resumed run on a schedule planned for its new length (``epochs`` changed).

    The saved schedule was planned for another number of steps: stepping it on
    would fail (OneCycle: "Tried to step N times") or restart its cycle (cosine:
    the learning rate climbs back up). Instead the new schedule, planned for the
    new length, is advanced to the step the run reached, and a warning says
    what the learning rate was and is now.
    """
    import warnings

    assert loop.scheduler is not None and ckpt.scheduler is not None
    old, new = schedule_length(ckpt.scheduler), schedule_length(loop.scheduler.state_dict())
    if new is not None and new < ckpt.step:
        raise SettingError(
            f"the {loop.config.scheduler} schedule would span {new} steps, but the run has "
            f"taken {ckpt.step} already; give epochs of at least {ckpt.config.get('epochs')}",
            setting="epochs",
        )
    before = float(loop.optimizer.param_groups[0]["lr"])
    for group in loop.optimizer.param_groups:  # the loaded state holds the old plan's lr
        group["lr"] = group.get("initial_lr", group["lr"])
    with warnings.catch_warnings():  # stepping the schedule without optimizer steps, on purpose
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(ckpt.step):
            loop.scheduler.step()
    after = float(loop.optimizer.param_groups[0]["lr"])
    log.warning(
        "the %s schedule was planned for %s steps and now spans %s (epochs %s -> %d): "
        "re-planned for the new length; at step %d the learning rate goes from %.3g to %.3g",
        loop.config.scheduler,
        old,
        new,
        ckpt.config.get("epochs", "?"),
        loop.config.epochs,
        ckpt.step,
        before,
        after,
    )


def make_ema(model: nn.Module, config: TrainConfig) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights and buffers (BatchNorm statistics)."""
    if config.ema_decay <= 0:
        return None
    return AveragedModel(
        model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True
    )


def _ema_extra(loop: Loop) -> dict[str, Any]:
    """With EMA on, the raw training weights go to ``extra`` (for exact resume)."""
    if loop.ema is None:
        return {}
    return {"train_state_dict": cpu_state_dict(loop.model)}
