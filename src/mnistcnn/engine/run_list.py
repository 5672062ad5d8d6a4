"""The run folders under a directory, summarized: what ``mnistcnn runs`` lists.

A run folder is one that holds a ``config.json`` (:mod:`mnistcnn.engine.run_dir`).
For each, :func:`list_runs` reads the config and ``metrics.csv`` and says how
far the run got::

    from mnistcnn.engine.run_list import list_runs
    for run in list_runs("runs"):
        print(run.name, run.status, run.final_accuracy)

Status, checked in this order:

* ``running``: another process holds the run's lock (:class:`~mnistcnn.engine.run_dir.RunLock`);
* ``finished``: every planned epoch is in metrics.csv and ``report.html`` is complete
  (or the run was not to write one: ``report`` false, as the ``fast`` recipe);
* ``stopped``: a ``last.pt`` to resume from, but not finished (epochs left, or the
  report cut short; ``mnistcnn train --resume RUN`` completes it);
* ``failed``: no checkpoint at all (the run ended before its first one).

Nothing in a run folder is written or locked by reading it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistcnn.engine.run_dir import LOCK_NAME, read_metrics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: a running run cannot be told apart
    fcntl = None  # type: ignore[assignment]

STATUSES = ("running", "finished", "stopped", "failed")


@dataclass
class RunSummary:
    """One run folder as :func:`list_runs` sees it.

    Accuracies are fractions (0..1); None where the run has no such value yet
    (no epoch finished) or its config does not say. ``best_metric`` is the
    column ``best.pt`` follows: ``val_accuracy`` when the run holds out a
    validation split, else ``test_accuracy``. ``seconds`` is the sum of
    ``train_seconds`` and ``eval_seconds`` over the epochs in metrics.csv.
    """

    name: str
    path: Path
    status: str
    model: str | None = None
    dataset: str | None = None
    recipe: str | None = None
    epochs_done: int = 0
    epochs_planned: int | None = None
    final_accuracy: float | None = None
    best_accuracy: float | None = None
    best_epoch: int | None = None
    best_metric: str = "test_accuracy"
    seconds: float = 0.0
    pid: int | None = None
    metrics: list[dict[str, float]] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON-ready values (the path as a string, no metrics rows)."""
        data = asdict(self)
        data.pop("metrics")
        data["path"] = str(self.path)
        return data


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a folder holding a ``config.json`` (a training run's folder)."""
    return (Path(path) / "config.json").is_file()


def lock_holder(run_dir: str | os.PathLike[str]) -> int | None:
    """The PID of the process training into ``run_dir`` now (0 if unknown), else None.

    Reads without taking the run's lock for longer than a probe: a shared
    ``flock`` on ``<run>/.lock`` is tried without waiting and let go at once; it
    fails only while a :class:`~mnistcnn.engine.run_dir.RunLock` holds the file.
    A stale ``.lock`` (its process died) or no ``.lock`` at all is None. Where
    ``flock`` is unavailable, always None.
    """
    if fcntl is None:
        return None
    try:
        fd = os.open(Path(run_dir) / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            except OSError:
                text = ""
            return int(text) if text.isdigit() else 0
        except OSError:  # no locks on this file system: nothing can be told
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _report_is_complete(run_dir: Path) -> bool:
    from mnistcnn.evaluation.report import report_is_complete

    return report_is_complete(run_dir)


def _read_config(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_rows(run_dir: Path) -> list[dict[str, float]]:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    try:
        return read_metrics(path)
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def summarize_run(run_dir: str | os.PathLike[str]) -> RunSummary:
    """The :class:`RunSummary` of one run folder (see the module docstring for the status).

    An unreadable ``config.json`` or ``metrics.csv`` counts as empty: the run
    is still listed, with what could be read.
    """
    path = Path(run_dir)
    config = _read_config(path)
    rows = _read_rows(path)
    planned = config.get("epochs")
    planned = planned if isinstance(planned, int) and not isinstance(planned, bool) else None
    with_val = any("val_accuracy" in row for row in rows) or bool(config.get("val_fraction"))
    monitor = "val_accuracy" if with_val else "test_accuracy"
    summary = RunSummary(
        name=path.name,
        path=path,
        status="failed",
        model=_text(config.get("model")),
        dataset=_text(config.get("dataset")),
        recipe=_text(config.get("recipe")),
        epochs_done=max((int(row["epoch"]) for row in rows), default=0),
        epochs_planned=planned,
        best_metric=monitor,
        seconds=sum(row.get("train_seconds", 0.0) + row.get("eval_seconds", 0.0) for row in rows),
        metrics=rows,
    )
    if rows:
        summary.final_accuracy = rows[-1].get("test_accuracy")
        scored = [row for row in rows if monitor in row]
        if scored:
            best = max(scored, key=lambda row: row[monitor])  # the first of equals, as best.pt
            summary.best_accuracy, summary.best_epoch = best[monitor], int(best["epoch"])
    summary.pid = lock_holder(path)
    if summary.pid is not None:
        summary.status = "running"
    elif (
        planned is not None
        and summary.epochs_done >= planned
        and (config.get("report") is False or _report_is_complete(path))
    ):
        summary.status = "finished"
    elif (path / "last.pt").is_file():
        summary.status = "stopped"
    return summary


def list_runs(folder: str | os.PathLike[str] = "runs") -> list[RunSummary]:
    """The runs in ``folder`` (its sub-folders with a ``config.json``), sorted by name.

    ``folder`` may itself be a run folder: then it alone is listed. Symlinks
    (``runs/latest``) are skipped, so no run is listed twice.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        NotADirectoryError: ``folder`` is not a directory.
    """
    base = Path(folder)
    if not base.exists():
        raise FileNotFoundError(f"{base}: no such folder")
    if not base.is_dir():
        raise NotADirectoryError(f"{base}: not a folder")
    if is_run_dir(base):
        return [summarize_run(base)]
    found = []
    for child in sorted(base.iterdir(), key=lambda p: p.name):
        with contextlib.suppress(OSError):
            if not child.is_symlink() and child.is_dir() and is_run_dir(child):
                found.append(summarize_run(child))
    return found


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _duration(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


TABLE_COLUMNS = ("run", "model", "dataset", "recipe", "epochs", "final", "best", "time", "status")


def table_rows(runs: Sequence[RunSummary]) -> list[tuple[str, ...]]:
    """One row of cells per run, in :data:`TABLE_COLUMNS` order (for :func:`format_table`).

    ``epochs`` is ``done/planned``; ``final`` the last epoch's test accuracy;
    ``best`` the best accuracy with its epoch (``val`` marked when it is the
    validation accuracy); ``time`` the training and evaluation time.
    """
    rows: list[tuple[str, ...]] = []
    for run in runs:
        planned = "?" if run.epochs_planned is None else str(run.epochs_planned)
        best = "-"
        if run.best_accuracy is not None:
            which = " val" if run.best_metric == "val_accuracy" else ""
            best = f"{_pct(run.best_accuracy)}{which} (epoch {run.best_epoch})"
        rows.append(
            (
                run.name,
                run.model or "?",
                run.dataset or "?",
                run.recipe or "?",
                f"{run.epochs_done}/{planned}",
                _pct(run.final_accuracy),
                best,
                _duration(run.seconds),
                run.status,
            )
        )
    return rows


def format_table(runs: Sequence[RunSummary]) -> str:
    """The runs as an aligned text table with a header line (no trailing newline)."""
    lines = [TABLE_COLUMNS, *table_rows(runs)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(TABLE_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines
    )


def plot_runs(runs: Sequence[RunSummary]) -> Figure:
    """Test accuracy (left) and test loss (right) per epoch, one line per run, labelled by name.

    Runs with no finished epoch are left out of the picture.
    """
    from matplotlib.figure import Figure  # no pyplot: the caller's backend is left alone

    fig = Figure(figsize=(11, 4.2))
    acc_ax, loss_ax = fig.subplots(1, 2)
    for run in runs:
        rows = [row for row in run.metrics if "test_accuracy" in row]
        if not rows:
            continue
        epochs = [row["epoch"] for row in rows]
        acc_ax.plot(
            epochs, [100 * row["test_accuracy"] for row in rows], marker="o", label=run.name
        )
        loss_rows = [row for row in rows if "test_loss" in row]
        loss_ax.plot(
            [row["epoch"] for row in loss_rows],
            [row["test_loss"] for row in loss_rows],
            marker="o",
            label=run.name,
        )
    last_epoch = max((int(row["epoch"]) for run in runs for row in run.metrics), default=0)
    acc_ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy")
    loss_ax.set(xlabel="epoch", ylabel="test loss", title="Test loss")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        if 0 < last_epoch <= 20:
            ax.set_xticks(range(1, last_epoch + 1))  # whole epochs, even for one point
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
