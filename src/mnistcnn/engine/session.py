"""Whole jobs: ``train`` (data + model + loop + run directory) and ``evaluate``.

These are what the CLI calls; each returns data and writes only the run
directory or the output folder it is given.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnistcnn import data as mdata
from mnistcnn._text import plural
from mnistcnn.artifact import Checkpoint
from mnistcnn.config import TrainConfig
from mnistcnn.data.folder import dataset_slug, folder_path, is_folder_dataset
from mnistcnn.engine.distributed import DistContext, distributed_session
from mnistcnn.engine.epoch_hooks import chain_hooks, check_epoch_hooks, epoch_hooks
from mnistcnn.engine.finish import complete_run_report, divergence, write_run_report
from mnistcnn.engine.init import init_weights, sources_record
from mnistcnn.engine.loop import EpochCallback, History, fit
from mnistcnn.engine.model import trained_model
from mnistcnn.engine.resume import (
    check_resume_out,
    checked_resume,
    recorded_data_source,
    run_is_complete,
)
from mnistcnn.engine.resume import resume_checkpoint_path as resume_checkpoint_path
from mnistcnn.engine.resume import resume_config as resume_config
from mnistcnn.engine.run_dir import RunDir, RunLock, default_run_dir
from mnistcnn.engine.signals import graceful_stop
from mnistcnn.engine.sources import DataSources, build_sources, check_folder_unchanged
from mnistcnn.engine.utils import seed_everything, versions
from mnistcnn.errors import SettingError
from mnistcnn.models import check_model_name

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class StartInfo:
    """Where training starts, given to ``train(on_start=...)`` once every check has passed.

    ``resumed``: continuing a run; then ``epoch`` (1-based), ``batch`` (batches of
    it already done) and ``step`` (optimizer steps taken) say where.
    ``batches_per_epoch``: this rank's batches in an epoch.
    """

    run_dir: Path
    resumed: bool
    epoch: int
    batch: int
    step: int
    batches_per_epoch: int


def _start_info(run_dir: Path, ckpt: Checkpoint | None, batches: int) -> StartInfo:
    if ckpt is None:
        return StartInfo(run_dir, False, 1, 0, 0, batches)
    pos = ckpt.position or {"epoch": ckpt.epoch + 1, "batch": 0}
    epoch, batch = int(pos.get("epoch", ckpt.epoch + 1)), int(pos.get("batch", 0))
    return StartInfo(run_dir, True, epoch, batch, ckpt.step, batches)


@dataclass
class TrainResult:
    """A finished run: its directory, history, and final metrics.

    ``is_main`` is False on the ranks > 0 of a distributed run (which wrote nothing).
    ``already_complete``: a resumed run had finished all its epochs before;
    nothing was trained (its report was written only if it was missing).
    ``data_root``/``mirror``: where the data came from (on resume, the run's
    recorded ones unless others were given). ``diverged``: why the run did not
    learn (:func:`~mnistcnn.engine.finish.divergence`), or None. ``report``: the ``report.html``
    written by this call (None: none written, e.g. ``report=False``, ranks > 0,
    or a complete run whose report was already there). ``folder``: what
    ``prepare_folder`` returned for a picture folder (its cache, the files
    skipped; ``mnistcnn.predict.folder_dataset.PreparedFolder``), else None.
    """

    run_dir: Path
    history: History
    config: TrainConfig
    device: str
    is_main: bool = True
    already_complete: bool = False
    data_root: PathLike | None = None
    mirror: PathLike | None = None
    report: Path | None = None
    diverged: str | None = None
    folder: Any = None


def train(
    config: TrainConfig,
    *,
    out: PathLike | None = None,
    runs_dir: PathLike = "runs",
    data_root: PathLike | None = None,
    mirror: PathLike | None = None,
    on_epoch_end: EpochCallback | None = None,
    progress: bool = False,
    resume: PathLike | None = None,
    force: bool = False,
    checkpoint_every: int | None = None,
    handle_signals: bool = True,
    stop: Callable[[], bool] | None = None,
    link_latest: bool = True,
    net: nn.Module | None = None,
    report: bool = True,
    on_start: Callable[[StartInfo], None] | None = None,
    dry_run: bool = False,
    nproc: int | None = None,
    prepare_folder: Callable[..., Any] | None = None,
    on_result: Callable[[TrainResult], None] | None = None,
) -> TrainResult:
    """Train ``config.model`` (or your own ``net``) on ``config.dataset``; write a run directory.

    The run directory is ``out`` or ``<runs_dir>/<timestamp>-<model>-<dataset>``
    (see :mod:`mnistcnn.engine.run_dir` for its files). Seeds everything with
    ``config.seed`` first, so the same seed on CPU gives the same metrics.
    With ``resume`` (a run directory or checkpoint) training continues in that
    run's directory exactly where it stopped. SIGINT/SIGTERM stop at the next
    step with a resumable last.pt (``handle_signals``); so does ``stop()``
    (polled after every step) returning true.

    Under torchrun (``WORLD_SIZE`` > 1 in the environment) every rank calls
    this: the ranks train one model with DistributedDataParallel on their
    shards of each global batch of ``config.batch_size``, and only rank 0
    writes the run directory (the others return ``is_main=False``); see
    :mod:`mnistcnn.engine.distributed`.

    On resume the data root and mirror default to those the run recorded
    (:func:`recorded_data_source`); a run that had already finished all its
    epochs is left untouched (``already_complete`` in the result). Only one
    process at a time trains into a run directory (:class:`RunLock`, held by
    rank 0 for the whole training). ``link_latest``: point
    ``<runs_dir>/latest`` at a new run in the default folder once its first
    checkpoint is written. ``on_start``: called (rank 0) with a :class:`StartInfo`
    once the settings, the resume and the data are checked, before the first
    step: where a new or resumed run starts. ``report`` (and ``config.report``): after the
    last epoch, draw ``curves.png``, evaluate best.pt once on the test split and write
    ``report.html`` into the run (still under the run lock;
    :func:`~mnistcnn.engine.finish.write_run_report`); a resumed complete run gets its
    report only if it was missing, so resuming a run trained with ``config.report`` off
    writes it on demand. ``on_result``: called (rank 0) with the result as soon as
    training ends, before the curves and the report are drawn (seconds of matplotlib,
    longer than a short run: the CLI prints its result line there). ``net``: your
    own architecture (an ``nn.Module`` taking (N, 1, 28, 28), returning
    (N, classes) logits) instead of the registered ``config.model``; its
    checkpoints load with ``load(path, net=...)``. ``config.tensorboard`` and
    ``config.keep_top``: a TensorBoard log and the K best epochs' checkpoints,
    written by rank 0 after each epoch (:mod:`mnistcnn.engine.epoch_hooks`).

    ``dry_run``: a smoke run through the whole path: one epoch of at most
    ``max_steps`` (10 unless set) steps, into a temporary run folder removed
    at the end unless ``out`` names one to keep (``latest`` never moves).
    ``nproc``: train in that many processes on this machine
    (DistributedDataParallel via torchrun, :mod:`mnistcnn.engine.launch`);
    ``config.batch_size`` stays the global batch; ``net`` and ``stop`` cannot
    cross to the workers. ``prepare_folder``: how a picture folder
    (``folder:PATH``) is prepared into the tensor cache training reads
    (:func:`mnistcnn.predict.folder_dataset.prepare_folder`, which
    ``mnistcnn.train`` passes; the engine sits below ``predict``); called on
    rank 0 with the folder and the data root (the resumed run's, unless given)
    before anything is read; without it an unprepared folder is refused.

    Raises:
        RunDirError: ``out`` is a non-empty folder or not writable, another
            process is training into the run directory, or a write into the
            run directory failed (disk full).
        mnistcnn.data.DataError: the dataset cannot be obtained.
        NonFiniteLossError: training diverged.
        TrainingInterrupted: stopped by a signal (last.pt is resumable);
            :class:`~mnistcnn.engine.finish.ReportInterrupted` if it came while the
            report was written (training is complete; resuming writes the report).
        SettingError: ``nproc`` under torchrun, or with ``net`` or ``stop``.
        ValueError: bad settings, ``out`` together with ``resume``, or a resume
            that would change the math without ``force``; tensorboard asked for
            but not installed (a ``SettingError`` naming ``mnistcnn[tensorboard]``).
        PeerFailure: (distributed, ranks > 0) rank 0 failed to set up the run
            directory; it reports why.
    """
    if dry_run:
        config, link_latest = dry_run_config(config), False  # latest never moves to a check
        if out is None and resume is None:  # a check keeps nothing unless asked
            with tempfile.TemporaryDirectory(prefix="mnistcnn-dry-run-") as scratch:
                args = _arguments(locals(), "config", "dry_run")
                result = train(config, **{**args, "out": Path(scratch) / "run"})
            log.info("dry run: its temporary run folder %s was removed", result.run_dir)
            return result
    if nproc is not None and nproc > 1:
        if net is not None or stop is not None:
            raise SettingError(
                "nproc starts other processes: net and stop cannot cross to them "
                "(register the model with mnistcnn.models.register_model instead)",
                setting="nproc",
            )
        from mnistcnn.engine.launch import WORKER_ARGS, launch_training

        args = locals()
        folder = _prepare_folder(prepare_folder, config, resume, data_root)
        if resume is None or not _resume_is_complete(resume, config, force):
            worker_args = {k: args[k] for k in WORKER_ARGS}
            result = launch_training(config, nproc, worker_args, on_start, on_epoch_end)
            result.folder = folder
            return result
        prepare_folder = (lambda *_, **__: folder) if folder is not None else None  # done
    return _train_here(config, **_arguments(locals(), "config", "dry_run", "nproc"))


def dry_run_config(config: TrainConfig) -> TrainConfig:
    """The settings of a dry run of ``config``: one epoch, at most ``max_steps`` (10 unless set)."""
    return config.replace(epochs=1, max_steps=config.max_steps or 10)


def _arguments(args: dict[str, Any], *without: str) -> dict[str, Any]:
    """:func:`train`'s arguments, as its ``locals()`` hold them now, but those ``without``."""
    names = inspect.signature(train).parameters
    return {k: v for k, v in args.items() if k in names and k not in without}


def _prepare_folder(
    prepare: Callable[..., Any] | None,
    config: TrainConfig,
    resume: PathLike | None,
    data_root: PathLike | None,
) -> Any:
    """``prepare(PATH, root=...)`` for a picture-folder dataset (in the data root a resumed
    run recorded, unless one is given); None for other datasets or without ``prepare``."""
    if prepare is None or not is_folder_dataset(config.dataset):
        return None
    if resume is not None and data_root is None:
        run_dir = resume_checkpoint_path(resume).parent
        data_root = recorded_data_source(run_dir, None, None)[0]
    return prepare(folder_path(config.dataset), root=data_root)


def _resume_is_complete(resume: PathLike, config: TrainConfig, force: bool) -> bool:
    """Whether the run ``resume`` names has nothing left to train (checked as a resume is)."""
    return run_is_complete(checked_resume(resume, config, force), config)


def _train_here(
    config: TrainConfig,
    *,
    out: PathLike | None,
    runs_dir: PathLike,
    data_root: PathLike | None,
    mirror: PathLike | None,
    on_epoch_end: EpochCallback | None,
    progress: bool,
    resume: PathLike | None,
    force: bool,
    checkpoint_every: int | None,
    handle_signals: bool,
    stop: Callable[[], bool] | None,
    link_latest: bool,
    net: nn.Module | None,
    report: bool,
    on_start: Callable[[StartInfo], None] | None,
    prepare_folder: Callable[..., Any] | None,
    on_result: Callable[[TrainResult], None] | None,
) -> TrainResult:
    """:func:`train` in this process (every rank, under torchrun)."""
    if net is None:
        check_model_name(config.model)
    check_epoch_hooks(config)  # tensorboard asked but not installed: before anything is made
    if is_folder_dataset(config.dataset):
        folder_path(config.dataset)  # SettingError: not a folder
    else:
        mdata.get_spec(config.dataset)  # ValueError listing the valid names
    if resume is not None and out is not None:
        check_resume_out(resume, out)
    with distributed_session(config.device) as dist:
        ckpt = checked_resume(resume, config, force) if resume is not None else None
        if ckpt is not None:
            data_root, mirror = recorded_data_source(ckpt.path.parent, data_root, mirror)
        prepared = (prepare_folder, config, None, data_root)
        folder = _on_main(dist, lambda: _prepare_folder(*prepared))
        if ckpt is not None:
            check_folder_unchanged(ckpt.path.parent, config, data_root, force)
            if run_is_complete(ckpt, config):
                log.info("%s: the run is already complete", ckpt.path.parent)
                result = _finished(ckpt, config, dist, data_root, mirror)
                result.folder = folder
                if report and dist.is_main:
                    result.report = complete_run_report(
                        result.run_dir, ckpt.history, data_root=data_root, mirror=mirror
                    )
                return result
        if ckpt is not None:
            run_path = ckpt.path.parent
        else:
            slug = dataset_slug(config.dataset)  # folder:PATH -> folder-<name>
            run_path = Path(out) if out else default_run_dir(config.model, slug, runs_dir)
        with contextlib.ExitStack() as held:
            _on_main(dist, lambda: held.enter_context(RunLock(run_path, new=ckpt is None)))
            seed_everything(config.seed)
            if config.deterministic:
                torch.use_deterministic_algorithms(True)
            sources = build_sources(
                config,
                dist.device,
                data_root=data_root,
                mirror=mirror,
                rank=dist.rank,
                world_size=dist.world_size,
            )
            _check_batch_size(config, sources)
            seed_everything(config.seed)  # the same initial weights whatever the data path did
            model = trained_model(config, sources, net).to(dist.device)
            if config.init is not None and ckpt is None:  # fine-tuning; a resume has its weights
                init_weights(model, config.init, config.model if net is None else "custom")
            latest = link_latest and not out and ckpt is None
            source = (data_root, mirror)
            run = _on_main(dist, lambda: _open_run(run_path, config, ckpt, source, dist, latest))
            what = (config.model, config.dataset, dist.device, run_path)
            log.info("training %s on %s (%s) into %s", *what)
            if on_start is not None and dist.is_main:
                on_start(_start_info(run_path, ckpt, len(sources.train)))
            opened = (config, run_path, model, sources, ckpt)  # TensorBoard, top-K (rank 0)
            hooks = _on_main(dist, lambda: held.enter_context(_epoch_hooks(*opened)))
            epoch_end = chain_hooks(hooks, on_epoch_end) if dist.is_main else None
            with graceful_stop(handle_signals) as flag:
                history = fit(
                    model,
                    sources.train,
                    sources.evals,
                    config,
                    run=run,
                    on_epoch_end=epoch_end,
                    progress=progress and dist.is_main,
                    resume=ckpt,
                    checkpoint_every=checkpoint_every,
                    stop=lambda: flag() or (stop is not None and stop()),
                    dist=dist,
                )
            device = str(dist.device)
            result = TrainResult(run_path, history, config, device, dist.is_main, False, *source)
            result.folder = folder
            result.diverged = divergence(
                history.rows,
                len(sources.classes),
                config.lr,
                config.max_steps is not None,
                steps=history.steps,
            )
            if result.diverged and dist.is_main:
                log.warning("%s: %s", run_path, result.diverged)
            if on_result is not None and dist.is_main:
                on_result(result)
            report = report and config.report
            if report and history.rows and run is not None:
                _save_curves(run.path, history, config.label_smoothing)
            if report and run is not None and history.rows:
                result.report = write_run_report(
                    run_path,
                    history.rows,
                    device=device,
                    data_root=data_root,
                    mirror=mirror,
                    handle_signals=handle_signals,
                )
        return result


def _on_main(dist: DistContext, fn: Callable[[], Any]) -> Any:
    """``fn()`` on rank 0 only (None elsewhere); then every rank learns if it failed.

    See :meth:`DistContext.agree`: rank 0 re-raises its error, the others
    raise ``PeerFailure`` instead of hanging in the next collective.
    """
    result, error = None, None
    if dist.is_main:
        try:
            result = fn()
        except Exception as exc:
            error = exc
    dist.agree(error)
    return result


def _finished(
    ckpt: Checkpoint,
    config: TrainConfig,
    dist: DistContext,
    data_root: PathLike | None,
    mirror: PathLike | None,
) -> TrainResult:
    """The result of resuming a complete run: its recorded history; nothing written."""
    best = ckpt.best or {}
    history = History(
        rows=[dict(r) for r in ckpt.history],
        best_epoch=best.get("epoch"),
        best=float(best.get("value", -math.inf)),
        steps=ckpt.step,
    )
    run_dir, device = ckpt.path.parent, str(dist.device)
    return TrainResult(run_dir, history, config, device, dist.is_main, True, data_root, mirror)


def _open_run(
    path: Path,
    config: TrainConfig,
    ckpt: Checkpoint | None,
    source: tuple[PathLike | None, PathLike | None],
    dist: DistContext,
    latest: bool,
) -> RunDir | None:
    """The run directory, with config.json (new run) or metrics.csv (resume); None off rank 0.

    ``source``: (data root, mirror), recorded in config.json. ``latest``:
    point ``<runs>/latest`` at a new run once its first checkpoint is written.
    """
    if not dist.is_main:
        return None
    run = RunDir(
        path, with_val=config.val_fraction > 0, existing=ckpt is not None, link_latest=latest
    )
    run.write_config(_config_record(config, *source, dist))  # a resume records its new plan
    if ckpt is not None:
        run.rewrite_metrics(ckpt.history)
    return run


def _epoch_hooks(
    config: TrainConfig,
    run_dir: Path,
    model: nn.Module,
    sources: DataSources,
    ckpt: Checkpoint | None,
) -> contextlib.AbstractContextManager[EpochCallback | None]:
    """The TensorBoard log and top-K checkpoints ``config`` asks for (rank 0)."""
    monitor = "val_accuracy" if "val" in sources.evals else "test_accuracy"  # as fit's best.pt
    resume_epoch = _start_info(run_dir, ckpt, 0).epoch if ckpt is not None else None
    return epoch_hooks(config, run_dir, model, sources.train, monitor, resume_epoch)


def _check_batch_size(config: TrainConfig, sources: DataSources) -> None:
    if config.batch_size > sources.train.num_samples:
        raise SettingError(
            f"batch_size {config.batch_size} is larger than the training split "
            f"({plural(sources.train.num_samples, 'image')})",
            setting="batch_size",
        )


def _config_record(
    config: TrainConfig, data_root: PathLike | None, mirror: PathLike | None, dist: DistContext
) -> dict:
    used_mirror = mdata.resolve_mirror(mirror)
    if used_mirror is not None and not used_mirror.startswith(("http://", "https://")):
        used_mirror = str(Path(used_mirror).absolute())
    return {
        **config.to_dict(),
        "data_root": str(mdata.resolve_root(data_root)),
        "mirror": used_mirror,
        "device_used": str(dist.device),
        "world_size": dist.world_size,
        "backend": dist.backend,
        "versions": versions(),
        **sources_record(config, data_root),  # folder:PATH's checksum, --init's file
    }


def _save_curves(folder: Path, history: History, label_smoothing: float = 0.0) -> None:
    from mnistcnn.evaluation.plots import plot_curves, save_figure

    save_figure(plot_curves(history.rows, label_smoothing), folder / "curves.png")
