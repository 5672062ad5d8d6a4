"""``train(config, nproc=N)``: one training job in N processes on this machine, via torchrun.

The calling process checks what can be checked once (the model name, the
epoch hooks, the run folder), prepares a picture folder once, then starts
``torchrun --standalone --nproc-per-node N -m mnistcnn.engine.launch SPEC``
(:func:`~mnistcnn.engine.distributed.launch_local`). ``SPEC`` is a JSON file
with the settings and the arguments of :func:`~mnistcnn.engine.session.train`;
every worker calls ``train`` with them, and rank 0 appends what happens to an
events file (one JSON object per line: ``start``, each ``epoch`` row, then
``result`` or ``error``). The calling process reads those events as they come,
so its ``on_start`` and ``on_epoch_end`` callbacks run as in a single-process
run, and it returns rank 0's :class:`~mnistcnn.engine.session.TrainResult` or
raises rank 0's error (``TrainingInterrupted`` with the resumable checkpoint
after Ctrl-C or SIGTERM, which torchrun forwards to the workers once).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnistcnn.config import TrainConfig
from mnistcnn.errors import MnistcnnError, SettingError

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: The arguments of ``train`` that cross to the workers (plain data).
WORKER_ARGS = (
    "out", "runs_dir", "data_root", "mirror", "progress", "resume", "force",
    "checkpoint_every", "link_latest", "report",
)  # fmt: skip


def launch_training(
    config: TrainConfig,
    nproc: int,
    kwargs: dict[str, Any],
    on_start: Callable[[Any], None] | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> Any:
    """Train ``config`` in ``nproc`` processes; return rank 0's ``TrainResult``.

    ``kwargs``: :data:`WORKER_ARGS` of :func:`~mnistcnn.engine.session.train`.
    A resumed run with nothing left to train is finished in this process
    (no workers start).

    Raises:
        SettingError (``nproc``): already under torchrun (``WORLD_SIZE`` set).
        RunDirError: ``out`` holds a run, or another process trains the resumed one.
        TrainingInterrupted: stopped by a signal (the checkpoint is resumable).
        MnistcnnError: whatever rank 0 raised, of the same class where it is one
            of mnistcnn's.
    """
    from mnistcnn.engine.distributed import launch_local
    from mnistcnn.engine.epoch_hooks import check_epoch_hooks
    from mnistcnn.models import check_model_name

    if "WORLD_SIZE" in os.environ:
        raise SettingError(
            "nproc launches torchrun itself; leave it out under torchrun", setting="nproc"
        )
    check_model_name(config.model)
    check_epoch_hooks(config)  # e.g. tensorboard missing: said once, not by each worker
    _check_run_dir_free(kwargs.get("resume"), kwargs.get("out"))
    with tempfile.TemporaryDirectory(prefix="mnistcnn-launch-") as scratch:
        spec, events = Path(scratch) / "spec.json", Path(scratch) / "events.jsonl"
        record = {"config": config.to_dict(), "kwargs": _plain(kwargs), "events": str(events)}
        spec.write_text(json.dumps(record))
        events.touch()
        reader = _EventReader(events, on_start, on_epoch_end)
        reader.start()
        try:
            code = launch_local(nproc, [str(spec)], module="mnistcnn.engine.launch")
        finally:
            reader.finish()
    return _outcome(reader, code, config)


def _check_run_dir_free(resume: PathLike | None, out: PathLike | None) -> None:
    """Before starting workers: the run folder is usable (new and empty, or not being trained).

    Raises:
        RunDirError: ``out`` is not empty, or another process trains into the resumed run.
    """
    from mnistcnn.engine.resume import resume_checkpoint_path
    from mnistcnn.engine.run_dir import RunLock, ensure_new_run_dir

    if resume:
        with RunLock(resume_checkpoint_path(resume).parent):
            pass
    elif out:
        ensure_new_run_dir(Path(out))


def _plain(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` as JSON: paths as strings."""
    return {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in kwargs.items()}


class _EventReader(threading.Thread):
    """Follows rank 0's events file, calling the callbacks for ``start`` and ``epoch``."""

    def __init__(
        self,
        path: Path,
        on_start: Callable[[Any], None] | None,
        on_epoch_end: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        super().__init__(daemon=True)
        self.path, self.on_start, self.on_epoch_end = path, on_start, on_epoch_end
        self.last: dict[str, Any] | None = None  # the ``result`` or ``error`` event
        self.done = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        with open(self.path, encoding="utf-8") as f:
            pending = ""
            while True:
                finished = self.done.is_set()  # read once more after the workers ended
                pending += f.read()
                *lines, pending = pending.split("\n")
                for line in lines:
                    self._event(json.loads(line))
                if finished:
                    return
                self.done.wait(0.2)

    def _event(self, event: dict[str, Any]) -> None:
        from mnistcnn.engine.session import StartInfo

        try:
            if event["event"] == "start" and self.on_start is not None:
                info = event["info"]
                self.on_start(StartInfo(**{**info, "run_dir": Path(info["run_dir"])}))
            elif event["event"] == "epoch" and self.on_epoch_end is not None:
                self.on_epoch_end(event["row"])
            elif event["event"] in ("result", "error"):
                self.last = event
        except Exception as exc:  # noqa: BLE001 - a callback's error: raised by the caller
            self.failure = self.failure or exc

    def finish(self) -> None:
        self.done.set()
        self.join()


def _outcome(reader: _EventReader, code: int, config: TrainConfig) -> Any:
    """Rank 0's result, or its error raised here."""
    from mnistcnn.engine.loop import History, TrainingInterrupted
    from mnistcnn.engine.session import TrainResult

    if reader.failure is not None:
        raise reader.failure
    event = reader.last
    if event is not None and event["event"] == "error":
        raise _rebuilt(event)
    if event is None or code != 0:
        if code == 130:
            raise TrainingInterrupted("stopped before rank 0 wrote a checkpoint", None)
        raise MnistcnnError(f"the {code} exit status of a training process (see its output)")
    result = dict(event["result"])
    history = History(**result.pop("history"))
    return TrainResult(
        Path(result.pop("run_dir")),
        history,
        config,
        report=Path(result.pop("report")) if result.get("report") else None,
        **{k: v for k, v in result.items() if k != "report"},
    )


def _rebuilt(event: dict[str, Any]) -> BaseException:
    """The exception rank 0 raised, rebuilt from its class, message and attributes."""
    try:
        module = importlib.import_module(event["module"])
        cls = getattr(module, event["class"])
    except (ImportError, AttributeError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, Exception)) or not (
        event["module"].startswith("mnistcnn.") or event["module"] == "builtins"
    ):
        return MnistcnnError(event["message"])
    exc = cls.__new__(cls)
    Exception.__init__(exc, event["message"])
    for name, value in event["attrs"].items():
        setattr(exc, name, Path(value["path"]) if isinstance(value, dict) else value)
    return exc


# --- the worker: python -m mnistcnn.engine.launch SPEC ------------------------------------


def _emit(path: Path, event: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(event, default=str) + "\n")


def _error_event(exc: BaseException) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for name, value in vars(exc).items():
        if isinstance(value, Path):
            attrs[name] = {"path": str(value)}
        elif value is None or isinstance(value, (str, int, float, bool)):
            attrs[name] = value
    cls = type(exc)
    return {"event": "error", "module": cls.__module__, "class": cls.__qualname__,
            "message": str(exc), "attrs": attrs}  # fmt: skip


def worker(spec_path: PathLike) -> int:
    """One worker process: train as the spec says; rank 0 writes the events. Returns the exit
    status: 0, 130 (stopped by a signal) or 1."""
    from mnistcnn.engine.distributed import PeerFailure, env_rank
    from mnistcnn.engine.loop import TrainingInterrupted
    from mnistcnn.engine.session import train

    spec = json.loads(Path(spec_path).read_text())
    events = Path(spec["events"])
    main = env_rank() == 0
    if not main:
        logging.getLogger("mnistcnn").setLevel(logging.ERROR)

    def on_start(info: Any) -> None:
        _emit(events, {"event": "start", "info": dataclasses.asdict(info)})

    def on_epoch_end(row: dict[str, Any]) -> None:
        _emit(events, {"event": "epoch", "row": row})

    try:
        result = train(
            TrainConfig.from_dict(spec["config"]),
            **spec["kwargs"],
            on_start=on_start,
            on_epoch_end=on_epoch_end,
        )
    except PeerFailure:  # rank 0 failed and says why
        return 1
    except (Exception, KeyboardInterrupt) as exc:
        if main:
            _emit(events, _error_event(exc))
        stopped = isinstance(exc, (TrainingInterrupted, KeyboardInterrupt))
        if not isinstance(exc, MnistcnnError | TrainingInterrupted | KeyboardInterrupt | OSError):
            log.exception("training failed")
        return 130 if stopped else 1
    if result.is_main:
        fields = ("device", "is_main", "already_complete", "data_root", "mirror", "diverged")
        record = {k: getattr(result, k) for k in fields}
        record.update(run_dir=result.run_dir, report=result.report)
        record["history"] = dataclasses.asdict(result.history)
        _emit(events, {"event": "result", "result": record})
    return 0


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1]))
