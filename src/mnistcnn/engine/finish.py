"""Finishing a run: the final evaluation and ``report.html``, written by the library.

``mnistcnn.train(...)`` from Python and ``mnistcnn train`` write the same run
folder: after the last epoch, :func:`write_run_report` evaluates the run's
``best.pt`` once on the test split and writes the report from that pass
(while the run lock is still held). A run stopped while its report was being
written is completed by :func:`complete_run_report` when it is resumed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mnistcnn.artifact import Checkpoint
from mnistcnn.data.folder import is_folder_dataset
from mnistcnn.engine.loop import TrainingInterrupted

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


class ReportInterrupted(TrainingInterrupted):
    """Stopped (Ctrl-C, SIGTERM) while the report was written; training itself is complete.

    ``run_dir``: the run; resuming it writes the report and changes nothing else.
    """

    def __init__(self, run_dir: Path) -> None:
        super().__init__(
            "stopped while writing the report; training is complete; resume the run to "
            "write its report",
            None,
        )
        self.run_dir = run_dir


#: Optimizer steps under which a run that ended at chance without its loss growing is
#: said to have had no time to learn (not to have failed): as many as an lr-find sweep
#: takes to show whether the loss falls (fastai's ``lr_find(num_it=100)``,
#: :data:`mnistcnn.engine.lr_find.STEPS`).
MIN_STEPS_TO_LEARN = 100


def divergence(
    rows: Sequence[dict[str, Any]],
    num_classes: int,
    lr: float,
    cut_short: bool = False,
    steps: int | None = None,
) -> str | None:
    """Why a finished run did not learn (its loss grew, or it ended at chance after time
    enough to learn), or None.

    A network that predicts uniformly has a cross-entropy of ln C nats per
    image (C classes) and an accuracy of 1/C; a fresh initialization starts
    near it. So the loss *grew* when the final training loss is above 2 ln C
    (``lr 1000`` gives about 1e19 while every step stays finite) or not finite,
    or when it is above the first epoch's with the run at chance: that is
    divergence (a learning rate too high). A run that ended at chance (test
    accuracy within 1.5/C, training loss no lower than ln C) without its loss
    growing did not learn; after fewer than :data:`MIN_STEPS_TO_LEARN` steps, or
    cut short on purpose, it had no time to: nothing is said.

    Args:
        rows: the per-epoch metrics rows (``train_loss``, ``test_accuracy``...).
        num_classes: C.
        lr: the run's peak learning rate (named in the message).
        cut_short: the run stopped after a few steps on purpose (``max_steps``, a
            smoke test): only a loss that grew counts.
        steps: optimizer steps the run took (None: unknown, taken as enough).

    Returns:
        A one-sentence explanation naming the figures and suggesting a lower
        ``lr``, or None for a run that learned or had no time to.
    """
    if not rows or num_classes < 2:
        return None
    last = rows[-1]
    loss, acc = float(last.get("train_loss", 0.0)), last.get("test_accuracy")
    chance_loss = math.log(num_classes)
    at_chance = acc is not None and float(acc) <= 1.5 / num_classes and loss >= chance_loss
    first = float(rows[0].get("train_loss", loss))
    grew = (
        not math.isfinite(loss)
        or loss > 2 * chance_loss
        or (at_chance and len(rows) > 1 and loss > first)
    )
    time_to_learn = not cut_short and (steps is None or steps >= MIN_STEPS_TO_LEARN)
    if not (grew or (at_chance and time_to_learn)):
        return None
    shown = f" and test accuracy {100 * float(acc):.2f}%" if acc is not None else ""
    what = "training diverged" if grew else "training did not learn"
    since = f" (epoch 1: {first:.3g})" if grew and len(rows) > 1 and math.isfinite(loss) else ""
    return (
        f"{what}: after epoch {last.get('epoch')} the training loss is "
        f"{loss:.3g} nats per image{since}{shown} (chance: {chance_loss:.2f} nats, "
        f"{100 / num_classes:.2f}%); lower the learning rate (now {lr:g}; try {lr / 10:g})"
    )


def run_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a run's report shows: ``best.pt``, else ``last.pt``."""
    best = run_dir / "best.pt"
    return best if best.is_file() else run_dir / "last.pt"


def write_run_report(
    run_dir: Path,
    history: Sequence[dict[str, Any]],
    *,
    device: str = "cpu",
    data_root: PathLike | None = None,
    mirror: PathLike | None = None,
    handle_signals: bool = True,
) -> Path:
    """Evaluate the run's checkpoint once on its test split and write ``report.html`` there.

    Args:
        run_dir: the run folder (holding best.pt or last.pt).
        history: the per-epoch metrics rows for the curves.
        device: where the evaluation runs.
        data_root, mirror: where the dataset is found.
        handle_signals: SIGTERM stops the report like Ctrl-C does.

    Returns:
        The path of ``report.html``.

    Raises:
        ReportInterrupted: Ctrl-C or SIGTERM while it was written.
        CheckpointError, mnistcnn.data.DataError, OSError: the checkpoint,
            the data or the folder cannot be used.
    """
    from mnistcnn import data as mdata
    from mnistcnn.artifact import load
    from mnistcnn.evaluation import evaluate_models
    from mnistcnn.evaluation.report import models_report, save_report

    with _stop_means_report_pending(run_dir, handle_signals):
        model = load(run_checkpoint(run_dir), map_location=device)
        name = model.dataset or "mnist"
        if is_folder_dataset(name):  # no test split: the validation split held out
            from mnistcnn.engine.sources import folder_validation_arrays

            config = model.checkpoint.config if model.checkpoint else {}
            images, labels = folder_validation_arrays(name, config, data_root)
            shown = f"pictures in {name[len('folder:') :]} (the run's validation split)"
        else:
            images, labels = mdata.load_arrays(name, train=False, root=data_root, mirror=mirror)
            shown = name
        evaluation = evaluate_models([model], images, labels, dataset=shown)
        report = models_report(evaluation, [model], images, history=list(history))
        assert model.checkpoint is not None
        note = checkpoint_note(model.checkpoint, list(history))
        if is_folder_dataset(name) and model.checkpoint.path.name == "best.pt":
            note = (
                "This report shows best.pt, chosen on the validation split it is evaluated "
                "on (a picture folder has no test split), so its figures are optimistic."
            )
        report.notes.append(note)
        lr = float(model.checkpoint.config.get("lr", 0.0))
        short = model.checkpoint.config.get("max_steps") is not None
        steps = getattr(model.checkpoint, "step", None)
        diverged = divergence(list(history), len(model.classes), lr, cut_short=short, steps=steps)
        if diverged:
            report.notes.append(diverged[0].upper() + diverged[1:] + ".")
        return save_report(report, run_dir)


def checkpoint_note(ckpt: Checkpoint, rows: Sequence[dict[str, Any]]) -> str:
    """Which checkpoint a run's report shows, from which epoch, and how it was chosen.

    ``best.pt`` is the epoch with the best monitored accuracy: the validation
    split's when the run held one out (``val_fraction`` > 0), else the test
    split's, which makes its test figure optimistic (the choice saw the test
    images); then the last epoch's test accuracy is given too.
    """
    done = len(rows) or ckpt.epoch
    last = rows[-1] if rows else {}
    if ckpt.path.name != "best.pt":
        return f"This report shows {ckpt.path.name}, the model after epoch {done}."
    epoch = (ckpt.best or {}).get("epoch", ckpt.epoch)
    if any("val_accuracy" in r for r in rows):
        return (
            f"This report shows best.pt: epoch {epoch} of {done}, the epoch with the highest "
            "validation accuracy; the test split played no part in choosing it."
        )
    final = last.get("test_accuracy")
    shown = f" The last epoch's model (last.pt) scores {100 * final:.2f}%." if final else ""
    return (
        f"This report shows best.pt: epoch {epoch} of {done}, the epoch with the highest test "
        "accuracy. It was chosen on the test split itself, so its test figure is optimistic."
        f"{shown} Train with val_fraction 0.1 (--val-fraction 0.1) to choose on held-out "
        "validation images instead."
    )


def complete_run_report(
    run_dir: Path,
    history: Sequence[dict[str, Any]],
    *,
    device: str = "cpu",
    data_root: PathLike | None = None,
    mirror: PathLike | None = None,
) -> Path | None:
    """For a run that is already complete: write its report if it is missing or cut short.

    A run stopped after its last epoch, while its report was being written,
    has no complete ``report.html``: it is written now, under the run lock; no
    other file changes. A run with its report is left byte-identical (None).

    Raises:
        RunDirError: another process is training into ``run_dir``.
        ReportInterrupted, CheckpointError, mnistcnn.data.DataError, OSError:
            see :func:`write_run_report`.
    """
    from mnistcnn.engine.run_dir import RunLock
    from mnistcnn.evaluation.report import report_is_complete

    if report_is_complete(run_dir):
        return None
    log.info("%s: the report is missing or incomplete; writing it", run_dir)
    with RunLock(run_dir):
        return write_run_report(run_dir, history, device=device, data_root=data_root, mirror=mirror)


@contextlib.contextmanager
def _stop_means_report_pending(run_dir: Path, handle_signals: bool) -> Iterator[None]:
    """Ctrl-C or SIGTERM inside: raise :class:`ReportInterrupted` naming the run."""

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    main_thread = handle_signals and _in_main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if main_thread else None
    try:
        yield
    except KeyboardInterrupt:
        raise ReportInterrupted(run_dir) from None
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
