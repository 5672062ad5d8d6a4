"""Options and error handling shared by the CLI commands."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

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


def user_errors(fn: F) -> F:
    """Turn the library's expected errors into a one-line message and exit status 1.

    Under torchrun, a rank that stops because another rank failed
    (``PeerFailure``) exits with status 1 silently: the failed rank prints.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mnistcnn.data import DataError
        from mnistcnn.engine.checkpoint import CheckpointError
        from mnistcnn.engine.distributed import PeerFailure
        from mnistcnn.engine.rundir import RunDirError
        from mnistcnn.engine.train import NonFiniteLossError, TrainingInterrupted

        try:
            return fn(*args, **kwargs)
        except PeerFailure:  # another rank failed and printed why: one message, not two
            sys.exit(1)
        except (DataError, CheckpointError, RunDirError, NonFiniteLossError, ValueError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except TrainingInterrupted as exc:
            click.echo(f"interrupted: {exc}", err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def pct(fraction: float) -> str:
    """A 0..1 fraction as a percentage with two decimals, e.g. ``98.31%``."""
    return f"{100 * fraction:.2f}%"
