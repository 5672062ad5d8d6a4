"""Data-parallel training across processes and machines with ``torch.distributed``.

A run started by ``torchrun`` (or ``mnistcnn train --nproc N``) has the
environment variables ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (plus
``MASTER_ADDR``/``MASTER_PORT``). :func:`init_distributed` reads them and
returns a :class:`DistContext` that the training loop is given (nothing here
is global to mnistcnn; ``torch.distributed`` keeps its one process group):

* backend: ``nccl`` when the device is CUDA (rank ``LOCAL_RANK`` uses
  ``cuda:LOCAL_RANK``), ``gloo`` on the CPU;
* the model is wrapped in ``DistributedDataParallel`` (gradients averaged
  over the ranks after every backward pass);
* each rank takes its strided part of every global batch
  (:func:`mnistcnn.data.loaders.rank_batches`) and the loss is weighted so
  that the averaged gradient equals the single-process gradient of the
  global batch mean (:meth:`DistContext.global_mean_loss`);
* evaluation is sharded the same way and its sums are all-reduced
  (:func:`evaluate_gathered`): every test sample counts once;
* only rank 0 (:attr:`DistContext.is_main`) writes the run directory,
  metrics, checkpoints and curves; every rank reads the same checkpoint on
  resume.

Without those variables (or with ``WORLD_SIZE=1``) the context is a single
process: every collective is a no-op and the model is not wrapped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from mnistcnn.data.loaders import BatchSource
from mnistcnn.engine.evaluate import batch_sums
from mnistcnn.engine.utils import select_device
from mnistcnn.errors import MnistcnnError, SettingError

log = logging.getLogger(__name__)

#: How long a collective waits for the other ranks before failing.
DEFAULT_TIMEOUT = timedelta(minutes=10)


class PeerFailure(MnistcnnError, RuntimeError):
    """Another rank failed at a step the ranks agree on; that rank reports the error itself."""


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        device: this rank's device (``cuda:LOCAL_RANK`` with nccl).
        rank: global rank in ``0..world_size-1``.
        world_size: number of processes (1: not distributed).
        local_rank: rank on this machine.
        backend: ``"gloo"``, ``"nccl"``, or None when not distributed.
        owns_group: :func:`init_distributed` created the process group (so
            :meth:`close` destroys it); False if the caller had made it.
    """

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        """More than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank reaches this point (no-op in a single process)."""
        if self.distributed:
            dist.barrier()

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over the ranks (float64; exact for counts < 2**53)."""
        if not self.distributed:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on at least one (e.g. a stop request)."""
        return bool(flag) if not self.distributed else self.sum([float(bool(flag))])[0] > 0

    def agree(self, error: BaseException | None) -> None:
        """Collective: go on only if no rank failed (every rank must call it).

        Raises:
            BaseException: ``error`` itself on the rank that failed.
            PeerFailure: on the other ranks, when any rank failed (instead of
                their waiting in the next collective until the failed rank's
                exit breaks it with a backend traceback).
        """
        failed = self.any(error is not None)
        if error is not None:
            raise error
        if failed:
            raise PeerFailure("another rank failed; it reports the error")

    def global_mean_loss(self, loss_sum: torch.Tensor, count: int) -> tuple[torch.Tensor, bool]:
        """The loss to backpropagate, and whether every rank's loss is finite.

        Args:
            loss_sum: scalar, this rank's loss summed over its ``count`` samples.
            count: samples in this rank's part of the global batch (may be 0).

        Returns:
            ``loss_sum * world_size / global_count``: DDP averages gradients
            over the ``world_size`` ranks, so the result is the gradient of the
            mean loss over the whole global batch, as one process computes it,
            even when the ranks' parts differ in size. One all-reduce (of the
            count and a non-finite flag) per step.
        """
        bad = float(not bool(torch.isfinite(loss_sum)))
        total, n_bad = self.sum([count, bad])
        return loss_sum * (self.world_size / max(total, 1.0)), n_bad == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in ``DistributedDataParallel`` (on its device), or ``model`` itself.

        The wrapper shares ``model``'s parameters: optimize, save and evaluate
        ``model``; run the training forward pass through the wrapper.
        """
        if not self.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def close(self) -> None:
        """Destroy the process group if :func:`init_distributed` created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def env_rank(env: Mapping[str, str] | None = None) -> int:
    """``RANK`` from the environment (0 when not launched by torchrun)."""
    return int((os.environ if env is None else env).get("RANK", "0"))


def rank_device(device: str, local_rank: int) -> torch.device:
    """The device of the rank with ``local_rank`` on its machine.

    ``auto`` or ``cuda`` (any index) means ``cuda:local_rank`` when CUDA is
    available; ``auto`` without CUDA and ``cpu`` mean the CPU.

    Raises:
        ValueError: ``mps`` (DistributedDataParallel does not support it),
            CUDA asked for but unavailable, or fewer GPUs than local ranks.
    """
    wanted = select_device(device)
    if wanted.type == "cpu" or (device == "auto" and wanted.type != "cuda"):
        return torch.device("cpu")
    if wanted.type != "cuda":
        raise SettingError(
            f"device {device}: distributed training runs on cpu or cuda only", setting="device"
        )
    if local_rank >= torch.cuda.device_count():
        raise SettingError(
            f"local rank {local_rank} needs GPU {local_rank} but this machine has "
            f"{torch.cuda.device_count()}; start at most that many processes per machine"
        )
    return torch.device("cuda", local_rank)


def init_distributed(
    device: str = "auto",
    *,
    env: Mapping[str, str] | None = None,
    timeout: timedelta = DEFAULT_TIMEOUT,
) -> DistContext:
    """Join the process group that torchrun's environment describes.

    Args:
        device: the run's ``--device`` (see :func:`rank_device`).
        env: the environment (default ``os.environ``): ``RANK``,
            ``WORLD_SIZE``, ``LOCAL_RANK``; ``MASTER_ADDR``/``MASTER_PORT`` are
            read by ``torch.distributed`` itself (``env://``).
        timeout: how long collectives wait for the other ranks.

    Returns:
        A single-process context if ``WORLD_SIZE`` is unset or 1, else this
        rank's context (the group is created unless one exists already).

    Raises:
        ValueError: inconsistent variables or an unusable device.
        RuntimeError / DistNetworkError: the rendezvous failed (e.g. the
            master address cannot be reached).
    """
    env = os.environ if env is None else env
    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(device=select_device(device))
    rank, local_rank = int(env.get("RANK", "-1")), int(env.get("LOCAL_RANK", "0"))
    if not 0 <= rank < world:
        raise SettingError(
            f"RANK={env.get('RANK')!r} must be in 0..{world - 1} (WORLD_SIZE={world})"
        )
    dev = rank_device(device, local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    owns = not dist.is_initialized()
    if owns:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
    elif dist.get_world_size() != world or dist.get_rank() != rank:
        raise SettingError("an existing process group disagrees with RANK/WORLD_SIZE")
    log.info("rank %d of %d on %s (%s)", rank, world, dev, backend)
    return DistContext(dev, rank, world, local_rank, backend, owns)


@contextmanager
def distributed_session(device: str = "auto") -> Iterator[DistContext]:
    """:func:`init_distributed` for the duration of a ``with`` block, then :meth:`close`."""
    ctx = init_distributed(device)
    try:
        yield ctx
    finally:
        ctx.close()


@torch.inference_mode()
def evaluate_gathered(
    model: nn.Module, source: BatchSource, ctx: DistContext
) -> tuple[float, float]:
    """Mean cross-entropy (nats per sample) and accuracy (0..1) over every rank's shard.

    Each rank evaluates its part of ``source`` (built with its ``rank`` and
    ``world_size``); the loss sum, correct count and sample count are
    all-reduced, so every sample counts exactly once. Puts ``model`` in eval
    mode. Every rank must call it (it is a collective).

    Raises:
        ValueError: no rank saw any sample.
    """
    loss_sum, correct_f, seen_f = ctx.sum(list(batch_sums(model, source)))
    if seen_f == 0:
        raise ValueError("evaluation source yielded no samples")
    return loss_sum / seen_f, correct_f / seen_f


def launch_local(
    nproc: int, args: Sequence[str], *, threads: int | None = None, module: str = "mnistcnn"
) -> int:
    """Run ``python -m MODULE ARGS`` in ``nproc`` processes on this machine via torchrun.

    The same as ``torchrun --standalone --nproc-per-node NPROC -m MODULE
    ARGS`` (torch's elastic launcher, run in this process: it forwards
    SIGINT/SIGTERM to the workers once, so they stop at the next step with a
    resumable checkpoint).

    Args:
        nproc: processes (>= 1); with CUDA, at most the number of GPUs.
        args: the worker command line after ``-m MODULE``.
        module: the workers' module (``mnistcnn.engine.launch`` for ``train(nproc=N)``).
        threads: ``OMP_NUM_THREADS`` per process if the variable is unset
            (default: the CPU count divided by ``nproc``, at least 1).

    Returns:
        0 on success, else the first failed worker's exit status (130 when
        stopped by a signal).
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    if "OMP_NUM_THREADS" not in os.environ:  # the launcher's own environment, for its children
        os.environ["OMP_NUM_THREADS"] = str(threads or max(1, (os.cpu_count() or 1) // nproc))
    argv = ["--standalone", f"--nproc-per-node={nproc}", "-m", module, *args]
    try:
        torchrun(argv)
    except ChildFailedError as exc:
        codes = [f.exitcode for f in exc.failures.values()]
        return next((c for c in codes if c not in (0, None) and c > 0), 1)
    except SignalException:
        return 130
    return 0
