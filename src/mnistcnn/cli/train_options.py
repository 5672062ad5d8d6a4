"""``mnistcnn train --config FILE`` and ``--print-config``: settings from a file, and the
settings a command line resolves to (:mod:`mnistcnn.config.files`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from mnistcnn.config import TrainConfig
from mnistcnn.config.files import ConfigFile, read_config_file, resolve_config
from mnistcnn.errors import SettingError

F = TypeVar("F", bound=Callable[..., Any])


def config_file_options(fn: F) -> F:
    """``--config FILE`` and ``--print-config`` (reaching the command as ``config_file``,
    ``print_config``)."""
    fn = click.option(
        "--print-config",
        is_flag=True,
        help="Print the settings this command line resolves to, as JSON (a file --config "
        "reads back), and exit without training.",
    )(fn)
    fn = click.option(
        "--config",
        "config_file",
        type=click.Path(exists=True, dir_okay=False),
        help="Settings from a TOML, YAML or JSON file (a run's config.json too); the recipe "
        "< the file < flags. YAML needs mnistcnn[yaml].",
    )(fn)
    return fn


class ConfigFileError(click.ClickException):
    """A config file's error, said as the file says it (its keys, not flags); exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@contextmanager
def file_errors(file: ConfigFile | None) -> Iterator[None]:
    """Report a :class:`SettingError` about ``file`` with its keys as written there."""
    try:
        yield
    except SettingError as exc:
        if file is not None and exc.path == file.path:
            raise ConfigFileError(str(exc)) from None
        raise


def read_config_option(config_file: str | None, resume: str | None) -> ConfigFile | None:
    """The ``--config`` file read and checked (None without one).

    Raises:
        click.UsageError: ``--config`` with ``--resume`` (a resumed run keeps its settings).
        ConfigFileError: the file's settings are not valid (exit status 1).
    """
    if config_file is None:
        return None
    if resume:
        raise click.UsageError(
            "--config starts a new run; a resumed run keeps its recorded settings "
            "(give a changed one as its flag)"
        )
    with file_errors(ConfigFile(Path(config_file))):
        return read_config_file(config_file)


def config_for(recipe: str | None, file: ConfigFile | None, flags: dict[str, Any]) -> TrainConfig:
    """A new run's settings: the recipe, then ``file``, then ``flags`` (see ``resolve_config``)."""
    with file_errors(file):
        return resolve_config(recipe, file, flags)


def print_config(config: TrainConfig) -> None:
    """The settings as JSON on standard output (every field, unset ones as null)."""
    click.echo(json.dumps(config.to_dict(), indent=2))
