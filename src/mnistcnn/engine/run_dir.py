"""The run directory: what a training run leaves behind, written so nothing is half-written.

Layout::

    runs/<YYYYmmdd-HHMMSS>-<model>-<dataset>/
        config.json     every setting, the data root, and library versions
        metrics.csv     one row per epoch (appended whole, flushed and fsynced)
        last.pt         checkpoint after the latest epoch
        best.pt         checkpoint of the best epoch (validation accuracy if a
                        validation split is used, else test accuracy)
        curves.png      loss and accuracy per epoch
        .lock           present only while a process trains into the run (see :class:`RunLock`)
        report.html     the evaluation report (:mod:`mnistcnn.evaluation.report`) with its
                        PNGs: worst_errors, confused_pairs, per_class_accuracy,
                        confusion_matrix

``<runs>/latest`` is a symlink to the newest run made under ``<runs>`` that
started training (it moves when the run's first checkpoint is written).

One process at a time writes a run directory: :class:`RunLock` holds an
exclusive ``flock`` on ``<run>/.lock`` for the whole training (a second
``train --resume`` of a run still being trained is refused). The kernel drops
the lock when its process dies, so a crash or SIGKILL never leaves it stuck.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from mnistcnn._io import atomic_write, atomic_write_json, is_temp_file_name
from mnistcnn._io import new_temp_file as new_temp_file  # re-exported: older imports use it
from mnistcnn.errors import MnistcnnError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX (Windows): no locking
    fcntl = None  # type: ignore[assignment]

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
LOCK_NAME = ".lock"


class RunDirError(MnistcnnError, RuntimeError):
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


def ensure_new_run_dir(path: Path) -> None:
    """Raise :class:`RunDirError` if ``path`` exists and is not an empty folder.

    The message says which: not a directory (a file, ``/dev/null``), or a
    folder that is not empty.

    A lock file (:class:`RunLock`) alone does not count: it is this run's own,
    or the stale one of a process that died before writing anything.
    """
    if path.exists() and not path.is_dir():
        raise RunDirError(
            f"{path}: exists and is not a directory; choose another out folder",
            setting="out",
            path=path,
        )
    if path.exists() and any(p.name != LOCK_NAME for p in path.iterdir()):
        raise RunDirError(
            f"{path}: already exists and is not empty; choose another out folder "
            "(a previous run is never overwritten)",
            setting="out",
            path=path,
        )


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that killed writers left in ``folder``; returns them.

    Every file of a run is written to ``.<name>.<id>.tmp[.<ext>]``
    (:func:`mnistcnn._io.new_temp_file`) and renamed
    into place; a process killed (SIGKILL, power loss) between the two leaves
    the temporary file. Call this only while holding the folder's
    :class:`RunLock` (no other writer can be mid-write). Files that cannot be
    removed are left (and not returned).
    """
    removed = []
    for path in Path(folder).iterdir():
        if path.is_file() and is_temp_file_name(path.name):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


class RunLock:
    """An exclusive lock on a run directory, held while one process trains into it.

    ``with RunLock(path, new=True):`` creates ``path`` if needed, takes an
    exclusive ``flock`` on ``path/.lock`` without waiting and writes this
    process's PID into it; with ``new`` the folder must hold nothing else (a
    previous run is never overwritten, even by a run started at the same
    moment). On exit the lock file is removed (while still held, so no other
    process can end up holding a lock on a removed file), and a folder that
    was created here and is still empty is removed too: a run that failed
    before writing anything leaves nothing behind. A process that dies while
    holding the lock loses it (the kernel closes its files); its stale
    ``.lock`` is then simply taken over. Where ``flock`` is unavailable (not
    POSIX, or a file system without locks) nothing is locked.

    Raises (from ``with`` / :meth:`acquire`):
        RunDirError: another process holds the lock (the message names the
            folder and, when known, the holder's PID); ``new`` and the folder
            is not empty; or the folder cannot be created or written.
    """

    def __init__(self, path: str | os.PathLike[str], *, new: bool = False) -> None:
        self.path = Path(path)
        self.new = new
        self._fd: int | None = None
        self._created = False

    @property
    def lock_file(self) -> Path:
        """``<run>/.lock``."""
        return self.path / LOCK_NAME

    @property
    def held(self) -> bool:
        """This object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock (see the class docstring for what is created and raised)."""
        if self.held:
            return self
        if self.new:
            ensure_new_run_dir(self.path)
        try:
            self._created = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
            fd = None
            while fd is None:
                fd = self._try_lock()
            self._fd = fd
        except OSError as exc:
            self._remove_created_dir()
            reason = exc.strerror or str(exc)
            raise RunDirError(f"cannot write the run directory {self.path}: {reason}") from None
        except RunDirError:
            self._remove_created_dir()
            raise
        if self.new and any(p.name != LOCK_NAME for p in self.path.iterdir()):
            self.release()
            ensure_new_run_dir(self.path)  # raises: written meanwhile by another process
        remove_stale_temp_files(self.path)  # ours alone now: any temp file is a killed writer's
        return self

    def release(self) -> None:
        """Remove the lock file and let go of the lock (no-op if not held)."""
        if self._fd is None:
            return
        try:
            self.lock_file.unlink(missing_ok=True)
        except OSError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None
        self._remove_created_dir()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _try_lock(self) -> int | None:
        """The locked lock file's descriptor; None to retry (the file was replaced)."""
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if fcntl is not None and not self._flock(fd):
                raise RunDirError(self._busy_message(fd))
            try:  # the holder may have removed the file between our open and flock
                same = os.path.samestat(os.fstat(fd), os.stat(self.lock_file))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                return None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        return fd

    def _flock(self, fd: int) -> bool:
        """True if the exclusive lock was taken, False if another process holds it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError:  # no locks on this file system (ENOLCK, EOPNOTSUPP): go on unlocked
            pass
        return True

    def _busy_message(self, fd: int) -> str:
        try:
            pid_text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            pid_text = ""
        holder = f"process (PID {pid_text})" if pid_text.isdigit() else "process"
        return (
            f"{self.path}: another mnistcnn {holder} is training into this run right now "
            "(two writers would corrupt it); wait for it to finish or stop it, then try again"
        )

    def _remove_created_dir(self) -> None:
        if self._created:
            self._created = False
            with contextlib.suppress(OSError):
                self.path.rmdir()  # only if still empty


class RunDir:
    """Creates and writes one run directory.

    ``link_latest``: point ``<parent>/latest`` at this run once its first
    ``best.pt`` is written (after its first epoch, :meth:`checkpoint_written`), so
    the link never moves to a run that failed or was stopped before it had one:
    ``runs/latest/best.pt`` always exists.

    Raises:
        RunDirError: ``path`` exists and is not empty (a previous run is never
            overwritten), or it cannot be created.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        with_val: bool = False,
        existing: bool = False,
        link_latest: bool = False,
    ) -> None:
        self.path = Path(path)
        self.link_latest = link_latest
        if not existing:
            ensure_new_run_dir(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise RunDirError(f"cannot write the run directory {self.path}: {reason}") from None
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

    def checkpoint_written(self) -> None:
        """Called after each checkpoint; once best.pt exists, ``latest`` moves here (once)."""
        if self.link_latest and self.best.is_file():
            self.link_latest = False
            update_latest_link(self.path)

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.path / "config.json", config, sort_keys=True)

    def rewrite_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Replace metrics.csv atomically with ``rows`` (a resumed run's checkpoint history)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row.get(k)) for k in self.columns})
        atomic_write(self.metrics_csv, buf.getvalue())  # also Ctrl-C: no stray temp file

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
