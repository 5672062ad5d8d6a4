"""Options and error handling shared by the CLI commands."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mnistcnn.cli import exit_codes

F = TypeVar("F", bound=Callable[..., Any])


def data_options(fn: F) -> F:
    """``--data-root`` and ``--mirror`` (with their environment variables)."""
    fn = click.option(
        "--mirror",
        type=click.Path(file_okay=False, exists=True, resolve_path=True),
        envvar="MNISTCNN_MIRROR",
        help="Local folder with the dataset's .gz files (torchvision layout or flat); "
        "copied, never modified. [env: MNISTCNN_MIRROR]",
    )(fn)
    fn = click.option(
        "--data-root",
        type=click.Path(file_okay=False),
        envvar="MNISTCNN_DATA",
        help="Where datasets are kept (<root>/MNIST/raw/...). "
        "[env: MNISTCNN_DATA; default: ~/.cache/mnistcnn]",
    )(fn)
    return fn


def device_option(default: str = "cpu") -> Callable[[F], F]:
    """``--device``: the torch device a command runs on; ``default`` is the command's own."""
    return click.option(
        "--device",
        default=default,
        show_default=True,
        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1 or mps.",
    )


def json_option(help: str = "Machine-readable output.") -> Callable[[F], F]:  # noqa: A002
    """``--json`` (a switch, reaching the command as ``as_json``): JSON instead of the text."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def invert_option(fn: F) -> F:
    """``--invert``: the pictures' polarity, as :class:`mnistcnn.predict.Predictor` takes it."""
    return click.option(
        "--invert",
        type=click.Choice(["auto", "yes", "no"]),
        default="auto",
        show_default=True,
        help="Dark ink on light paper? auto detects it from each picture; yes/no force it.",
    )(fn)


def threshold_option(fn: F) -> F:
    """``--threshold``: the calibrated top probability under which a verdict is 'unsure'."""
    return click.option(
        "--threshold",
        type=click.FloatRange(0, 1),
        default=None,
        help="Report 'unsure' below this calibrated top probability (0.4 for a model trained "
        "with outlier exposure, as recipe robust is). [default: 0.5]",
    )(fn)


def check_out(out: str | None) -> None:
    """Refuse an ``--out`` folder that is empty or names something other than a folder (exit
    status 2): an empty ``--out ""`` would otherwise fall back to the default folder silently.
    """
    if out is None:
        return
    why = None
    if not out.strip():
        why = "an empty path; give a folder"
    elif Path(out).exists() and not Path(out).is_dir():
        why = f"{out} exists and is not a directory"
    elif Path(out).name == "latest" and Path(out).parent.resolve() == Path("runs").resolve():
        why = "runs/latest is the link to the newest run; give the run another name"
    if why:
        raise click.BadParameter(why, param_hint="'--out'")


def check_figure_path(path: str, flag: str) -> None:
    """Refuse a picture to write (``--plot``, ``--grid``) that cannot be written, before any
    data is read: an unknown format (``click.BadParameter``) or a missing folder
    (``SettingError``)."""
    from mnistcnn.errors import SettingError
    from mnistcnn.evaluation.plots import figure_format

    try:
        figure_format(path)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=f"'{flag}'") from None
    if not Path(path).resolve().parent.is_dir():
        raise SettingError(f"{flag} {path}: the folder {Path(path).parent} does not exist")


class _NotRaised(Exception):
    """An exception class nothing raises (see :func:`_engine_error`)."""


def _engine_error(name: str) -> type[Exception]:
    """The engine's exception class ``name`` (``PeerFailure``, ``TrainingInterrupted``).

    Evaluated in an ``except`` clause, so only once an exception is on its way. While the
    engine was never imported nothing can have raised either, and importing it to catch
    them would load torch into every command (``mnistcnn predict model.onnx`` runs
    without it): then a class nothing raises.
    """
    if "mnistcnn.engine" not in sys.modules:
        return _NotRaised
    from mnistcnn.engine.distributed import PeerFailure
    from mnistcnn.engine.loop import TrainingInterrupted

    return {"PeerFailure": PeerFailure, "TrainingInterrupted": TrainingInterrupted}[name]


def user_errors(fn: F) -> F:
    """Turn the library's expected errors into a one-line message and exit status 1
    (:mod:`mnistcnn.cli.exit_codes`: 130 for an interruption).

    Expected errors are :class:`~mnistcnn.errors.MnistcnnError` (the message
    is :func:`cli_message`: settings named by their flags) and ``OSError``
    (the user's paths: read-only folders, full disks). Anything else, a bare
    ``ValueError`` or ``TypeError`` included, is a bug and keeps its traceback.

    Under torchrun, a rank that stops because another rank failed
    (``PeerFailure``) exits with status 1 silently: the failed rank prints.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mnistcnn.errors import MnistcnnError

        try:
            return fn(*args, **kwargs)
        except _engine_error("PeerFailure"):  # another rank failed and printed why: one message
            sys.exit(exit_codes.ERROR)
        except MnistcnnError as exc:
            click.echo(f"error: {cli_message(exc)}", err=True)
            sys.exit(exit_codes.ERROR)
        except _engine_error("TrainingInterrupted") as exc:
            click.echo(f"interrupted: {interrupted_message(exc)}", err=True)
            sys.exit(exit_codes.INTERRUPTED)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(exit_codes.INTERRUPTED)
        except BrokenPipeError:  # e.g. `mnistcnn ... | head`: the reader left; not an error
            _silence_stdout()
            sys.exit(exit_codes.OK)
        except OSError as exc:  # read-only folder, full disk, permissions: the user's to fix
            click.echo(f"error: {os_error_message(exc)}", err=True)
            sys.exit(exit_codes.ERROR)

    return wrapper  # type: ignore[return-value]


def _name_pattern(name: str) -> re.Pattern[str]:
    """``name`` as a word of its own: not part of a longer name, a path or a ``name:`` label."""
    return re.compile(rf"(?<![\w./-]){re.escape(name)}(?![\w/-]|:)")


def cli_message(exc: BaseException) -> str:
    """The message of library error ``exc`` as the command line says it: with flags.

    Library messages name settings (``train_subset 700000 is larger ...``);
    here the first mention of ``exc.setting`` becomes its flag
    (``--train-subset 700000 is larger ...``, from
    :func:`mnistcnn.config.setting_flag`), and so does every mention of a
    training setting whose name has an underscore (``val_fraction``): those
    cannot be ordinary words.
    """
    from mnistcnn.config import TrainConfig, setting_flag

    text = str(exc)
    setting = getattr(exc, "setting", None)
    if setting:
        text = _name_pattern(setting).sub(setting_flag(setting), text, count=1)
    for f in dataclasses.fields(TrainConfig):
        if "_" in f.name:
            text = _name_pattern(f.name).sub(setting_flag(f.name), text)
    return text


def os_error_message(exc: OSError) -> str:
    """``cannot write PATH: Read-only file system``-style text for an OSError.

    The path is the user's file, not a temporary name next to it: a temporary
    file written for an atomic replace (``.name.123.tmp`` / ``.name.tmp.png``)
    is reported as its folder.
    """
    import errno

    from mnistcnn._io import is_temp_file_name

    name = exc.filename
    reason = exc.strerror or str(exc)
    if name is None:
        return reason
    path = Path(os.fsdecode(name))
    if is_temp_file_name(path.name):
        path = path.parent
    verb = "write" if exc.errno in (errno.EROFS, errno.ENOSPC, errno.EDQUOT) else "use"
    if exc.errno in (errno.EACCES, errno.EPERM):
        verb = "access"
    return f"cannot {verb} {path}: {reason}"


def _silence_stdout() -> None:
    """Point stdout at /dev/null so Python's exit-time flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


#: Encodings that can write every character: streams in these are left alone.
_ENCODES_EVERYTHING = frozenset(("utf-8", "utf-8-sig", "utf-16", "utf-32", "gb18030"))


def tolerant_std_streams() -> list[str]:
    """Make stdout and stderr replace what their encoding cannot write, instead of failing.

    A console in a legacy code page (``PYTHONIOENCODING=cp1252``, a Windows
    console, ``LANG=C`` on old systems) cannot encode a file name such as
    ``数字.png``: Python raises ``UnicodeEncodeError`` in the middle of the
    output, after the work is done but before the report is written. Each
    stream whose encoding is not a Unicode one and that is strict is
    reconfigured with ``errors="replace"``: the character prints as ``?``,
    everything else carries on. Files the commands write are UTF-8 whatever
    the console.

    Returns:
        The names of the streams changed (``["stdout", "stderr"]``, or fewer).
    """
    import codecs

    changed = []
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name, None)
        encoding = getattr(stream, "encoding", None)
        if stream is None or not encoding or getattr(stream, "errors", None) != "strict":
            continue
        try:
            if codecs.lookup(encoding).name in _ENCODES_EVERYTHING:
                continue
            stream.reconfigure(errors="replace")
        except (LookupError, AttributeError, ValueError, OSError):
            continue  # an unknown codec or a stream that cannot be reconfigured: leave it
        changed.append(name)
    return changed


def pct(fraction: float) -> str:
    """A 0..1 fraction as a percentage with two decimals, e.g. ``98.31%``."""
    return f"{100 * fraction:.2f}%"


def cli_command(args: str) -> str:
    """How to run ``mnistcnn ARGS`` where the user is: the command line to print in hints.

    Under ``make`` (``make train``): ``make train ARGS="..."`` for training
    flags; where ``mnistcnn`` is not on ``PATH`` (``make train`` installs into
    ``.venv/`` only): ``<this python> -m mnistcnn ARGS``; else ``mnistcnn ARGS``.
    """
    import shlex
    import shutil

    if os.environ.get("MAKELEVEL") and args.startswith("train "):
        return f"make train ARGS={shlex.quote(args.removeprefix('train '))}"
    if shutil.which("mnistcnn") is None:
        return f"{shlex.quote(sys.executable)} -m mnistcnn {args}"
    return f"mnistcnn {args}"


def resume_args(run_dir: Path, nproc: int = 1) -> str:
    """``train [--nproc N] --resume RUN`` (shell-quoted) for :func:`cli_command`."""
    import shlex

    return f"train {f'--nproc {nproc} ' if nproc > 1 else ''}--resume {shlex.quote(str(run_dir))}"


def interrupted_message(exc: Exception) -> str:
    """A stopped training's message with the command that resumes it (or writes its report)."""
    checkpoint = getattr(exc, "checkpoint", None)
    text = str(exc).split("; ")[0]
    if checkpoint is None:
        return str(exc)
    command = cli_command(resume_args(Path(checkpoint).parent, getattr(exc, "nproc", 1)))
    if getattr(exc, "complete", False):
        return f"{text}; to write its report: {command}"
    return f"{text}; resume with: {command}"
