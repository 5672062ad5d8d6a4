"""How a setting is declared, and the one check of a value against its declaration.

:func:`setting` puts help text, whether it changes the math, its command-line
flag, choices and range beside the dataclass field; :func:`check_settings`
refuses a field declared without it. :func:`check_value` checks one value
against the field's type, choices and range; :class:`TrainConfig` runs it on
every field (so a Python call, a flag and a config file are checked alike),
and :mod:`mnistcnn.config.files` runs it on each key of a file so that its
error names the file and the key.

Why dataclass metadata and not pydantic ``Field``: the declaration already
carries what pydantic has no place for (``math``, ``math_if``, the flag, the
``cli`` switch) and drives the ``train`` options and the resume check; a
frozen dataclass keeps ``dataclasses.replace``/``asdict`` that the engine and
checkpoints use, and the config layer stays free of a dependency.
"""

from __future__ import annotations

import dataclasses
import math as _math
import numbers
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
        choices: the valid values; or a function returning them, for names
            registered in a module that imports this one (``recipe``): the
            flag offers those, and the lookup by name refuses others
            (:func:`~mnistcnn.config.recipe_config`), while a config records
            any name it started from.
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


#: Words for what a value of each declared type must be.
TYPE_WORDS: Mapping[type, str] = types.MappingProxyType(
    {
        int: "a whole number",
        float: "a finite number",
        bool: "true or false",
        str: "a string",
        dict: "a table",
    }  # fmt: skip
)
_KIND_WORDS = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
               list: "a list", dict: "a table", type(None): "nothing"}  # fmt: skip


def shown(value: Any) -> str:
    """``value`` as an error message shows it: its repr and what kind of value it is."""
    return f"{value!r} ({_KIND_WORDS.get(type(value), 'a value')})"


@dataclass(frozen=True)
class SettingProblem:
    """Why one value does not fit its setting's declaration.

    ``reason``: ``null`` (None for a setting never unset), ``type``, ``choice``
    or ``range``; ``expected``: the type's words or the comma-separated
    choices; ``span``: the declared range in words (``>= 1``, ``in [0, 1)``),
    or "" without one.
    """

    name: str
    value: Any
    reason: str
    expected: str = ""
    span: str = ""

    def message(self) -> str:
        """As the library says it, naming the setting: ``epochs must be >= 1, got 0``."""
        if self.reason == "null":
            return f"{self.name} must be {self.expected}, got None"
        if self.reason == "type":
            if self.expected == TYPE_WORDS[float] and isinstance(self.value, float):
                words = f"{self.expected} {self.span}".strip()  # nan, inf: "a finite number > 0"
                return f"{self.name} must be {words}, got {self.value!r}"
            return f"{self.name} must be {self.expected}, got {shown(self.value)}"
        if self.reason == "choice":
            return f"{self.name} must be one of {self.expected}, got {self.value!r}"
        return f"{self.name} must be {self.span}, got {self.value!r}"

    def in_file(self) -> str:
        """As a config file's error says it, after the file: ``epochs: expected a value >= 1``."""
        if self.reason == "null":
            what = "a value, got nothing (null); this setting is never unset"
            return f"{self.name}: expected {what}"
        if self.reason == "type":
            return f"{self.name}: expected {self.expected}, got {shown(self.value)}"
        if self.reason == "choice":
            return f"{self.name}: expected one of {self.expected}, got {self.value!r}"
        span = self.span
        if span.startswith("in ") and ".." in span:  # a file says integer ranges as [lo, hi]
            lo, hi = span[3:].split("..")
            span = f"in [{lo}, {hi}]"
        return f"{self.name}: expected a value {span}, got {self.value!r}"


def field_kind(hint: Any) -> tuple[type, bool]:
    """(the type a field's values have, whether None is allowed) from its annotation."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    kinds = [k for k in typing.get_args(hint) if k is not type(None)] if union else [hint]
    optional = union and type(None) in typing.get_args(hint)
    kind = typing.get_origin(kinds[0]) or kinds[0]
    return kind, optional


def range_words(bounds: tuple[Any, Any, bool, bool], kind: type) -> str:
    """A declared range in words: ``>= 1``, ``> 0``, ``in [0, 1)``, ``in 0..4294967295``."""
    lo, hi, lo_open, hi_open = bounds
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if lo is None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    if kind is int and not (lo_open or hi_open):
        return f"in {lo}..{hi}"
    left, right = ("(" if lo_open else "["), (")" if hi_open else "]")
    return f"in {left}{lo:g}, {hi:g}{right}"


def check_value(name: str, value: Any, hint: Any, meta: Mapping[str, Any]) -> SettingProblem | None:
    """Check ``value`` against setting ``name``'s type ``hint`` and declaration ``meta``.

    The one check of a setting by itself, whatever the value came from (a
    Python call, a flag, a config file). An int is a float; a bool is not a
    number; a float must be finite. Rules that relate two settings are
    :class:`~mnistcnn.config.TrainConfig`'s own.

    Returns:
        None if it fits, else the :class:`SettingProblem` (type, choices or range).
    """
    kind, optional = field_kind(hint)
    bounds = meta.get("range")
    span = range_words(bounds, kind) if bounds is not None else ""
    words = TYPE_WORDS.get(kind, kind.__name__)
    if value is None:
        return None if optional else SettingProblem(name, value, "null", words)
    if kind is float:
        fits = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not fits or not _math.isfinite(value):
            return SettingProblem(name, value, "type", words, span)
    elif kind is int:
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            return SettingProblem(name, value, "type", words)
    elif not isinstance(value, kind):
        return SettingProblem(name, value, "type", words)
    choices = meta.get("choices")
    if choices is not None and not callable(choices):  # a function: see setting()
        valid = list(choices)
        if value not in valid:
            return SettingProblem(name, value, "choice", ", ".join(valid))
    if bounds is not None:
        lo, hi, lo_open, hi_open = bounds
        low = lo is not None and (value <= lo if lo_open else value < lo)
        high = hi is not None and (value >= hi if hi_open else value > hi)
        if low or high:
            return SettingProblem(name, value, "range", span=span)
    return None
