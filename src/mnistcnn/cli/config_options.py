"""The ``train`` options generated from the settings (``mnistcnn.config``): declared once.

Each :class:`~mnistcnn.config.TrainConfig` field's flag, type, choices, range
and help text come from its metadata (:func:`mnistcnn.config.setting`), so a new
field gets its option here and its resume check in the engine without another
declaration. ``mnistcnn train`` and ``mnistcnn lr-find`` share them.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import click

from mnistcnn.config import TrainConfig, setting_flag

F = TypeVar("F", bound=Callable[..., Any])


def config_option(f: dataclasses.Field[Any], kind: Any) -> Callable[[F], F]:
    """The click option of one :class:`~mnistcnn.config.TrainConfig` field, from its metadata.

    Its default is None (not given: the recipe's, or the resumed run's,
    value stays); a bool is a ``--name/--no-name`` switch, a field with
    ``choices`` a :class:`click.Choice`, one with a range a
    :class:`click.IntRange` / :class:`click.FloatRange`; one declared with a
    ``flag_value`` takes an optional value (the flag alone gives ``flag_value``).
    """
    meta = f.metadata
    flag = setting_flag(f.name)
    choices = meta.get("choices")
    bounds = meta.get("range")
    param_type: Any = None
    if kind is bool:
        decls = [f"{flag}/--no-{flag[2:]}", f.name]
    else:
        decls = [flag, f.name]
        if choices is not None:
            param_type = click.Choice(list(choices() if callable(choices) else choices))
        elif bounds is not None:
            lo, hi, lo_open, hi_open = bounds
            ranged = click.IntRange if kind is int else click.FloatRange
            param_type = ranged(lo, hi, min_open=lo_open, max_open=hi_open)
        elif kind in (int, float):
            param_type = kind
    if meta.get("flag_value") is not None:  # the value is optional: the flag alone means this
        return click.option(
            *decls,
            type=param_type,
            default=None,
            help=meta["help"],
            is_flag=False,
            flag_value=meta["flag_value"],
            metavar="[DIR]" if kind is str else None,
        )
    return click.option(*decls, type=param_type, default=None, help=meta["help"])


def config_options(fn: F, *, without: tuple[str, ...] = ()) -> F:
    """Every :class:`~mnistcnn.config.TrainConfig` field declared with ``cli=True``, as options.

    Generated from the fields' :func:`mnistcnn.config.setting` metadata, in
    field order; each option's value reaches the command under the field's name.
    ``without``: fields left out (settings the command has no use for).
    """
    hints = typing.get_type_hints(TrainConfig)
    for f in reversed(dataclasses.fields(TrainConfig)):  # click stacks them bottom-up
        if not f.metadata.get("cli") or f.name in without:
            continue
        kinds = [k for k in typing.get_args(hints[f.name]) if k is not type(None)]
        fn = config_option(f, kinds[0] if kinds else hints[f.name])(fn)
    return fn
