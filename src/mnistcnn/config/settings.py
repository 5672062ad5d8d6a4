"""How a setting is declared: :func:`setting` puts help text, whether it changes the
math, its command-line flag, choices and range beside the dataclass field;
:func:`check_settings` refuses a field declared without it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import field
from typing import Any

#: Metadata keys of a setting (see :func:`setting`).
SETTING_KEYS = ("help", "math", "math_if", "flag", "cli", "choices", "range", "flag_value")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,  # noqa: A002 - the name click uses
    math: bool,
    math_if: Callable[[Any], bool] | None = None,
    flag: str | None = None,
    cli: bool = True,
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None,
    min: float | None = None,  # noqa: A002
    max: float | None = None,  # noqa: A002
    min_open: bool = False,
    max_open: bool = False,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    flag_value: str | None = None,
) -> Any:
    """A :class:`TrainConfig` field with its declaration: help text, math, command-line flag.

    Everything the rest of the package needs to know about a setting lives
    here, beside the field: ``mnistcnn train``'s options are generated from
    it (:func:`mnistcnn.cli.config_options.config_options`) and so is the resume check
    (:meth:`TrainConfig.math_differences`).

    Args:
        default: the field's default (the ``tutorial`` recipe's value).
        help: the help text ``mnistcnn train --help`` shows.
        math: whether changing the setting changes the computed weights
            (a resume that changes it is refused without ``--force``).
            Required: a field without it fails :func:`check_settings`.
        math_if: with ``math=True``, a predicate on the config: the setting
            changes the math only when it returns True (``epochs``: only
            under a schedule that spans every step).
        flag: the command-line flag, if not ``--`` + the name with dashes.
        cli: False for settings without a ``mnistcnn train`` option.
        choices: the valid values (or a function returning them, for
            values defined in a module that imports this one).
        min, max, min_open, max_open: the numeric range the option accepts.
        default_factory: instead of ``default``, for mutable defaults.
        flag_value: the value of the flag given without one (an option whose
            value is optional: ``--tensorboard`` alone, or ``--tensorboard DIR``).
    """
    bounds = None if min is None and max is None else (min, max, min_open, max_open)
    metadata = {
        "help": help,
        "math": math,
        "math_if": math_if,
        "flag": flag,
        "cli": cli,
        "choices": choices,
        "range": bounds,
        "flag_value": flag_value,
    }
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def check_settings(cls: type) -> None:
    """Raise ``TypeError`` unless every field of dataclass ``cls`` is declared with :func:`setting`.

    A field without a declared ``math`` would otherwise count, silently, as
    one that does or does not change the result of a resumed run.
    """
    bare = [f.name for f in dataclasses.fields(cls) if not isinstance(f.metadata.get("math"), bool)]
    if bare:
        raise TypeError(
            f"{cls.__name__}: declare {', '.join(bare)} with mnistcnn.config.setting(..., "
            "help=..., math=True/False)"
        )
