"""``keep_top``: the checkpoints of the K best epochs, kept in ``<run>/top/``.

After each epoch the run's ``last.pt`` (written at the epoch's end, so it holds
that epoch's weights; with a weight average, the average, as ``best.pt``) is
copied to ``<run>/top/epoch-007-acc-99.12.pt`` when the epoch is among the K
best so far, and the file of an epoch that drops out of the K is deleted.

"Best" is ``best.pt``'s criterion: the validation accuracy with a validation
split, else the test accuracy; higher is better and a tie keeps the earlier
epoch (``best.pt`` moves only on a strict improvement). The number in the
name is that accuracy in percent.

What was written is remembered in ``<run>/top/top.json`` (written atomically
after every change), so a resumed run goes on with the same files; a file is
deleted only if that record lists it and its size and modification time are
still the ones recorded (a file put in ``top/`` by hand, or changed since, is
never deleted).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnistcnn._io import atomic_path, atomic_write_json

log = logging.getLogger(__name__)

TOP_FOLDER = "top"
RECORD_NAME = "top.json"


def top_file_name(epoch: int, accuracy: float) -> str:
    """``epoch-007-acc-99.12.pt``: epoch (1-based) and accuracy (a fraction in [0, 1]) in %."""
    return f"epoch-{epoch:03d}-acc-{100 * accuracy:.2f}.pt"


@dataclass
class _Kept:
    """One file this run wrote into ``top/``: the epoch, its monitored value, its identity."""

    file: str
    epoch: int
    value: float
    size: int
    mtime_ns: int

    def rank(self) -> tuple[float, int]:
        return (-self.value, self.epoch)  # higher value first; a tie keeps the earlier epoch


class TopCheckpoints:
    """Keeps the ``k`` best epoch checkpoints of the run in ``run_dir`` (rank 0 only).

    Args:
        run_dir: the run folder (its ``last.pt`` is copied; ``top/`` is made in it).
        k: how many to keep (>= 1).
        monitor: the metrics-row key ranked (``val_accuracy`` or ``test_accuracy``).

    On a resumed run the record ``top/top.json`` is read back: epochs at or
    after ``resume_epoch`` (about to be trained again, e.g. a resume from an
    older checkpoint), and those beyond a smaller ``k``, are forgotten and their
    files deleted when they are this run's; the others keep competing with the
    new epochs.
    """

    def __init__(self, run_dir: Path, k: int, monitor: str, resume_epoch: int | None = None):
        if k < 1:
            raise ValueError(f"keep_top must be >= 1, got {k}")
        self.run_dir, self.k, self.monitor = Path(run_dir), k, monitor
        self.folder = self.run_dir / TOP_FOLDER
        self.kept: list[_Kept] = self._read_record() if resume_epoch is not None else []
        if resume_epoch is not None:
            stale = [e for e in self.kept if e.epoch >= resume_epoch]
            left = sorted((e for e in self.kept if e not in stale), key=_Kept.rank)
            stale += left[k:]  # a resume with a smaller k
            if stale:
                self._drop(stale)

    @property
    def record(self) -> Path:
        return self.folder / RECORD_NAME

    def files(self) -> list[Path]:
        """The kept checkpoints, best first."""
        return [self.folder / e.file for e in sorted(self.kept, key=_Kept.rank)]

    def __call__(self, row: dict[str, Any]) -> None:
        """After epoch ``row["epoch"]`` (its last.pt written): keep it if it is among the k best."""
        epoch, value = int(row["epoch"]), float(row.get(self.monitor, math.nan))
        if not math.isfinite(value):
            return  # an epoch that saw no batch (max_steps) is not a candidate
        same = [e for e in self.kept if e.epoch == epoch]
        if same:  # this epoch again (a resume that replays it): its new file replaces the old
            self._drop(same)
        ranked = sorted(self.kept, key=_Kept.rank)
        if len(ranked) >= self.k and ranked[self.k - 1].rank() <= (-value, epoch):
            return  # not among the k best: nothing copied
        entry = self._copy_last(epoch, value)
        self.kept.append(entry)
        self._write_record()  # the new file is recorded before anything is deleted
        ranked = sorted(self.kept, key=_Kept.rank)
        if len(ranked) > self.k:
            self._drop(ranked[self.k :])

    def _copy_last(self, epoch: int, value: float) -> _Kept:
        self.folder.mkdir(exist_ok=True)
        path = self.folder / top_file_name(epoch, value)
        with atomic_path(path) as tmp:
            shutil.copyfile(self.run_dir / "last.pt", tmp)
        stat = path.stat()
        log.info("kept epoch %d (%s %.4f) as %s", epoch, self.monitor, value, path)
        return _Kept(path.name, epoch, value, stat.st_size, stat.st_mtime_ns)

    def _drop(self, entries: list[_Kept]) -> None:
        """Forget ``entries`` and delete their files if they are still the ones written."""
        for entry in entries:
            self.kept.remove(entry)
        self._write_record()
        for entry in entries:
            path = self.folder / entry.file
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if (stat.st_size, stat.st_mtime_ns) != (entry.size, entry.mtime_ns):
                log.warning("%s changed since this run wrote it: left in place", path)
                continue
            path.unlink()

    def _read_record(self) -> list[_Kept]:
        try:
            data = json.loads(self.record.read_text())
            return [_Kept(**e) for e in data["kept"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("%s unreadable (%s): no kept checkpoint will be deleted", self.record, exc)
            return []

    def _write_record(self) -> None:
        self.folder.mkdir(exist_ok=True)
        data = {
            "monitor": self.monitor,
            "k": self.k,
            "kept": [e.__dict__ for e in sorted(self.kept, key=_Kept.rank)],
        }
        atomic_write_json(self.record, data)
