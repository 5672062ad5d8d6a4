"""The run directory: what a training run leaves behind, written so nothing is half-written.

Layout::

    runs/<YYYYmmdd-HHMMSS>-<model>-<dataset>/
        config.json     every setting, the data root, and library versions
        metrics.csv     one row per epoch (appended whole, flushed and fsynced)
        last.pt         checkpoint after the latest epoch
        best.pt         checkpoint of the best epoch (validation accuracy if a
                        validation split is used, else test accuracy)
        curves.png      loss and accuracy per epoch
        report.html     the evaluation report (:mod:`mnistcnn.report`) with its
                        PNGs: worst_errors, confused_pairs, per_class_accuracy,
                        confusion_matrix

``<runs>/latest`` is a symlink to the newest run made under ``<runs>``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "lr",
    "train_seconds",
    "eval_seconds",
)
VAL_COLUMNS = ("val_loss", "val_accuracy")


class RunDirError(RuntimeError):
    """The run directory cannot be created or would overwrite a previous run."""


def default_run_dir(model: str, dataset: str, base: str | os.PathLike[str] = "runs") -> Path:
    """``<base>/<YYYYmmdd-HHMMSS>-<model>-<dataset>`` (a numeric suffix if it exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(base) / f"{stamp}-{model}-{dataset}"
    n = 1
    while path.exists():
        n += 1
        path = Path(base) / f"{stamp}-{model}-{dataset}-{n}"
    return path


def update_latest_link(run_path: Path) -> Path | None:
    """Point ``<run_path's parent>/latest`` at ``run_path`` (a relative symlink).

    The link is replaced atomically (new link under a temp name, then rename),
    so ``runs/latest/best.pt`` always names a complete run's checkpoint path.
    A real file or folder called ``latest`` is left alone. Returns the link, or
    None where symlinks cannot be made (the run itself is unaffected).
    """
    link = run_path.parent / "latest"
    if link.exists() and not link.is_symlink():
        return None
    tmp = run_path.parent / f".latest.{os.getpid()}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_path.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
        return None
    return link


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON via a temp file and rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_new_run_dir(path: Path) -> None:
    """Raise :class:`RunDirError` if ``path`` exists and is not an empty folder."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RunDirError(
            f"{path}: already exists and is not empty; choose another --out "
            "(a previous run is never overwritten)"
        )


class RunDir:
    """Creates and writes one run directory.

    Raises:
        RunDirError: ``path`` exists and is not empty (a previous run is never
            overwritten), or it cannot be created.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, with_val: bool = False, existing: bool = False
    ) -> None:
        self.path = Path(path)
        if not existing:
            ensure_new_run_dir(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise RunDirError(f"{self.path}: cannot write the run directory: {exc}") from None
        self.columns = METRIC_COLUMNS + (VAL_COLUMNS if with_val else ())

    @property
    def metrics_csv(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    def write_config(self, config: dict[str, Any]) -> None:
        write_json_atomic(self.path / "config.json", config)

    def rewrite_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Replace metrics.csv atomically with ``rows`` (a resumed run's checkpoint history)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row.get(k)) for k in self.columns})
        fd, tmp = tempfile.mkstemp(prefix=".metrics.", suffix=".tmp", dir=self.path)
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.metrics_csv)

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Append one row to metrics.csv (header first); the row is written whole and fsynced.

        If the write fails part-way (a full disk), the file is cut back to its
        previous length, so it never ends in half a row; the error is re-raised.
        """
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
        new = not self.metrics_csv.exists()
        if new:
            writer.writeheader()
        writer.writerow({k: _fmt(row.get(k)) for k in self.columns})
        data = buf.getvalue().encode()
        with open(self.metrics_csv, "ab") as fh:
            size = fh.tell()
            try:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            except OSError:
                fh.truncate(size)
                raise


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Rows of a metrics.csv as dicts of floats (``epoch`` as int)."""
    with open(path, newline="") as fh:
        rows = []
        for raw in csv.DictReader(fh):
            row: dict[str, float] = {k: float(v) for k, v in raw.items() if v not in ("", None)}
            row["epoch"] = int(row["epoch"])
            rows.append(row)
    return rows
