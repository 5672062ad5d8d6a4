"""Resuming a run: which checkpoint, which settings, whether anything is left to do.

:func:`mnistcnn.engine.session.train` uses these; the CLI calls them too, to
check a ``--resume`` before it starts any worker processes.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from mnistcnn.artifact import Checkpoint, CheckpointError, load_checkpoint
from mnistcnn.config import TrainConfig
from mnistcnn.data.sources import ENV_MIRROR, ENV_ROOT
from mnistcnn.engine.loop_state import epochs_without_improvement
from mnistcnn.engine.top_k import RECORD_NAME, TOP_FOLDER
from mnistcnn.errors import SettingError

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def resume_checkpoint_path(path: PathLike) -> Path:
    """The checkpoint a ``--resume`` argument means: a file, or a run directory's last.pt.

    A resumed run continues in the checkpoint's folder, so a checkpoint inside a
    folder the run manages is refused: a top-k copy (``<run>/top/``, kept by
    ``keep_top``) would start a second run inside ``top/``.

    Raises:
        CheckpointError: no checkpoint at ``path``, or a top-k copy (``setting``
            is ``resume``); the message says what to do instead.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "last.pt"
    if not p.is_file():
        raise CheckpointError(
            f"resume {p}: no such checkpoint, nothing to resume", setting="resume", path=p
        )
    top = p.parent
    if top.name == TOP_FOLDER and (top / RECORD_NAME).is_file():
        run = top.parent
        raise CheckpointError(
            f"resume {p}: a top-k copy that run {run} keeps in {top} (keep_top); resuming "
            f"it would start a second run inside {top}. Continue the run from its last "
            f"checkpoint (resume {run}), or start a new run from these weights (init {p})",
            setting="resume",
            path=p,
        )
    return p


def resume_config(path: PathLike, **overrides: Any) -> TrainConfig:
    """The config of the run to resume, with ``overrides`` (None values ignored) applied.

    Raises:
        CheckpointError: nothing to resume at ``path``, or an unreadable checkpoint.
        ValueError: an override is not a valid setting.
    """
    ckpt = load_checkpoint(resume_checkpoint_path(path))
    base = TrainConfig.from_dict(ckpt.config)
    return base.replace(**{k: v for k, v in overrides.items() if v is not None})


def check_resume_out(resume: PathLike, out: PathLike) -> None:
    """Refuse an output folder other than the run being resumed (it would be ignored).

    Raises:
        CheckpointError: nothing to resume at ``resume``.
        SettingError: ``out`` is not the resumed run's own folder (``setting`` is ``out``).
    """
    run = resume_checkpoint_path(resume).parent
    if Path(out).resolve() != run.resolve():
        raise SettingError(
            f"out {out} cannot be used when resuming: a resumed run continues in its "
            f"own folder ({run}); leave it out (or copy the run folder first)",
            setting="out",
            path=out,
        )


def run_is_complete(ckpt: Checkpoint, config: TrainConfig) -> bool:
    """True if resuming ``ckpt`` with ``config`` would train nothing more.

    That is: the checkpoint sits at an epoch boundary (its metrics row is
    written) and either all ``config.epochs`` epochs are done or
    ``config.max_steps`` steps are taken.
    """
    pos = ckpt.position or {"epoch": ckpt.epoch + 1, "batch": 0}
    if pos.get("batch", 0) != 0:
        return False
    steps_done = config.max_steps is not None and ckpt.step >= config.max_steps
    patience = config.early_stopping
    stopped = patience is not None and epochs_without_improvement(ckpt.history) >= patience
    return steps_done or stopped or int(pos["epoch"]) > config.epochs


def recorded_data_source(
    run_dir: PathLike, data_root: PathLike | None, mirror: PathLike | None
) -> tuple[PathLike | None, PathLike | None]:
    """The data root and mirror to resume the run in ``run_dir`` with.

    Each is the one given (an argument, or its environment variable
    ``MNISTCNN_DATA`` / ``MNISTCNN_MIRROR``), else the one the run's
    ``config.json`` records (a recorded local mirror only if it still exists),
    else None (the default). An unreadable ``config.json`` records nothing.
    """
    try:
        record = json.loads((Path(run_dir) / "config.json").read_text())
    except (OSError, ValueError):
        record = {}
    if not isinstance(record, dict):
        record = {}
    if data_root is None and not os.environ.get(ENV_ROOT) and record.get("data_root"):
        data_root = str(record["data_root"])
        log.info("resuming with the run's data root %s", data_root)
    recorded = record.get("mirror")
    usable = isinstance(recorded, str) and (
        recorded.startswith(("http://", "https://")) or Path(recorded).is_dir()
    )
    if mirror is None and not os.environ.get(ENV_MIRROR) and usable:
        mirror = recorded
    return data_root, mirror


def checked_resume(resume: PathLike, config: TrainConfig, force: bool) -> Checkpoint:
    """The checkpoint to resume, refused if ``config`` would change the math (unless ``force``).

    Raises:
        CheckpointError: nothing to resume at ``resume``, or an unreadable checkpoint.
        SettingError: ``config`` differs from the checkpoint's in settings that
            change the result (declared ``math=True`` beside each field of
            :class:`~mnistcnn.config.TrainConfig`), and not ``force``
            (``setting`` is ``force``).
    """
    ckpt = load_checkpoint(resume_checkpoint_path(resume))
    diffs = config.math_differences(TrainConfig.from_dict(ckpt.config))
    if diffs and not force:
        raise SettingError(
            f"{ckpt.path}: resuming with changed settings would change the result: "
            + "; ".join(diffs)
            + " (resume anyway with force)",
            setting="force",
            path=ckpt.path,
        )
    if diffs:
        log.warning("resuming with changed settings (force): %s", "; ".join(diffs))
    return ckpt
