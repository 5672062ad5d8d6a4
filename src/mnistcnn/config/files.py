"""Training settings from a file: ``mnistcnn train --config FILE`` (TOML, YAML or JSON).

A config file holds :class:`~mnistcnn.config.TrainConfig` settings by name,
flat (``batch_size = 128``; ``batch-size`` is read the same), with ``extra`` as
a table. Every key and value is checked against the setting's declaration
(:func:`~mnistcnn.config.setting`: type, choices, range) and then by
:class:`TrainConfig` itself; an error names the file and the key.

A run's ``config.json`` is a config file too: its ``data_root`` and
``mirror`` say where the data came from (used unless given otherwise), and
what it records about the machine (``device_used``, ``world_size``,
``backend``, ``versions``) is read and left aside.

Precedence (:func:`resolve_config`): the recipe < the file < the flags.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
import os
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnistcnn.config.recipes import recipe_config
from mnistcnn.config.settings import check_value, shown
from mnistcnn.config.training import TrainConfig
from mnistcnn.errors import SettingError

PathLike = str | os.PathLike[str]

#: What a run's config.json records besides the settings: read, not applied.
RECORD_KEYS = ("device_used", "world_size", "backend", "versions")
#: Where the data came from (config.json): the defaults of --data-root and --mirror.
SOURCE_KEYS = ("data_root", "mirror")
SUFFIXES = {".toml": "TOML", ".yaml": "YAML", ".yml": "YAML", ".json": "JSON"}


@dataclass(frozen=True)
class ConfigFile:
    """A config file read and checked: ``settings`` (TrainConfig field -> value), and the
    data root and mirror it names (a run's config.json), or None."""

    path: Path
    settings: dict[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    mirror: str | None = None


def read_config_file(path: PathLike) -> ConfigFile:
    """Read and check the settings in ``path`` (``.toml``, ``.yaml``/``.yml`` or ``.json``).

    Each key must name a :class:`TrainConfig` field (dashes read as underscores),
    or be one a run's config.json records (:data:`SOURCE_KEYS`, :data:`RECORD_KEYS`);
    each value must have the field's type (an int where a float is expected is
    taken; ``null`` only where the setting may be unset) and lie within its
    declared choices and range.

    Raises:
        SettingError: (``path`` set) an unknown suffix, a file that does not parse,
            is not a table of settings, an unknown key (with the nearest valid
            names) or a value of the wrong type or out of range; the message
            starts with the file and names the key.
        OSError: the file cannot be read.
    """
    path = Path(path)
    values = _parse(path)
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    hints = typing.get_type_hints(TrainConfig)
    settings: dict[str, Any] = {}
    sources: dict[str, str | None] = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key in RECORD_KEYS:
            continue
        if key in SOURCE_KEYS:
            if value is not None and not isinstance(value, str):
                raise _error(path, key, f"expected a path (a string), got {shown(value)}")
            sources[key] = value
            continue
        if key not in fields:
            raise _unknown(path, str(raw_key), [*fields, *SOURCE_KEYS])
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and float
            in (
                hints[key],
                *typing.get_args(hints[key]),
            )
        ):
            value = float(value)  # ``lr = 1`` in a file is the number 1.0
        problem = check_value(key, value, hints[key], fields[key].metadata)
        if problem is not None:
            raise SettingError(f"{path}: {problem.in_file()}", path=path)
        settings[key] = value
    return ConfigFile(path, settings, sources.get("data_root"), sources.get("mirror"))


def resolve_config(
    recipe: str | None, file: ConfigFile | None, flags: dict[str, Any]
) -> TrainConfig:
    """The settings of a new run: recipe ``recipe`` (else the file's, else ``tutorial``),
    then ``file``'s settings, then ``flags`` (None values: not given).

    Raises:
        SettingError: an unknown recipe or an invalid setting; when the setting at
            fault came from the file (not from a flag), the message starts with the
            file and ``path`` is set.
    """
    from_file = dict(file.settings) if file is not None else {}
    given = {k: v for k, v in flags.items() if v is not None}
    name = recipe or from_file.get("recipe") or "tutorial"
    try:
        return recipe_config(name, **{**from_file, **given, "recipe": name})
    except SettingError as exc:
        if file is not None and exc.setting in from_file and exc.setting not in given:
            raise SettingError(f"{file.path}: {exc}", setting=exc.setting, path=file.path) from None
        raise


def _parse(path: Path) -> dict[str, Any]:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise SettingError(
            f"{path}: a config file must end in .toml, .yaml, .yml or .json (TOML, YAML or JSON)",
            path=path,
        )
    text = read_text(path)
    try:
        if kind == "TOML":
            values = _toml().loads(text)
        elif kind == "YAML":
            values = _yaml_load(text)
        else:
            values = json.loads(text)
    except SettingError:
        raise
    except Exception as exc:  # each parser's own error class
        raise SettingError(f"{path}: not valid {kind}: {exc}", path=path) from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise SettingError(
            f"{path}: expected a table of settings (name = value), got {shown(values)}",
            path=path,
        )
    return values


#: Byte-order marks, longest first (a UTF-32 LE mark starts with the UTF-16 LE one).
_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)", None),
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian)", None),
    (b"\xef\xbb\xbf", "UTF-8 with a byte-order mark", "utf-8-sig"),
    (b"\xfe\xff", "UTF-16", "utf-16"),
    (b"\xff\xfe", "UTF-16", "utf-16"),
)


def read_text(path: Path) -> str:
    """The text of a config file in an encoding editors write: UTF-8 with or without a
    byte-order mark, or UTF-16 with one (Windows' "Unicode", ``iconv -t UTF-16``); the
    mark is dropped.

    Raises:
        SettingError: another encoding (UTF-32, UTF-16 without a mark, an 8-bit
            code page such as Windows-1252), naming the file, the encoding found and
            where the first byte that is not UTF-8 is.
        OSError: the file cannot be read.
    """
    data = path.read_bytes()
    for bom, name, codec in _BOMS:
        if data.startswith(bom):
            if codec is None:
                break
            try:
                return data.decode(codec)
            except UnicodeDecodeError as exc:
                raise _encoding_error(path, data, exc, f"{name}, but broken") from None
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _encoding_error(path, data, exc, _guess(data)) from None
        if "\x00" not in text:  # NUL is UTF-8, but no config text has one: UTF-16 without mark
            return text
        nul = data.index(0)
        nul_byte = UnicodeDecodeError("utf-8", data, nul, nul + 1, "NUL byte")
        raise _encoding_error(path, data, nul_byte, "UTF-16 without a byte-order mark")
    raise SettingError(
        f"{path}: the file is {name}; save it as UTF-8 (or UTF-16 with a byte-order mark)",
        path=path,
    )


def _guess(data: bytes) -> str:
    """The encoding bytes that are not UTF-8 look like (for the message only)."""
    if data.count(0) > len(data) // 4:  # ASCII text in 16 bits: every other byte is 0
        return "UTF-16 without a byte-order mark"
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return "an 8-bit encoding (Latin-1?)"
    return "Windows-1252 (cp1252) or another 8-bit encoding"


def _encoding_error(path: Path, data: bytes, exc: UnicodeDecodeError, found: str) -> SettingError:
    """``PATH: not UTF-8: byte 0x92 at line 3, column 12; the file looks like ...``."""
    start = exc.start
    before = data[:start]
    line = before.count(b"\n") + 1
    column = start - (before.rfind(b"\n") + 1) + 1
    return SettingError(
        f"{path}: not UTF-8: byte 0x{data[start]:02x} at line {line}, column {column}; the "
        f"file looks like {found}: save it as UTF-8 (or UTF-16 with a byte-order mark)",
        path=path,
    )


def _toml() -> Any:
    """``tomllib`` (Python >= 3.11), else the ``tomli`` package it came from."""
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:  # pragma: no cover - Python 3.10
        return importlib.import_module("tomli")
    except ImportError:  # pragma: no cover
        raise SettingError(
            "TOML config files need Python 3.11 or the tomli package (pip install tomli); "
            "or give the settings as YAML or JSON"
        ) from None


def _yaml_load(text: str) -> Any:
    """``yaml.safe_load`` that also reads ``1e-3`` as a number (YAML 1.1 wants ``1.0e-3``)."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        raise SettingError(
            "YAML config files need the pyyaml package: pip install 'mnistcnn[yaml]' "
            "(or write the settings as TOML or JSON)"
        ) from None

    class Loader(yaml.SafeLoader):
        pass

    number = r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)$"
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float", re.compile(number), list("-+0123456789")
    )
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader


def _error(path: Path, key: str, what: str) -> SettingError:
    return SettingError(f"{path}: {key}: {what}", path=path)


def _unknown(path: Path, key: str, valid: list[str]) -> SettingError:
    near = difflib.get_close_matches(key.replace("-", "_"), valid, n=3)
    hint = f"; did you mean {' or '.join(near)}?" if near else ""
    return SettingError(
        f"{path}: unknown setting {key!r}{hint} (valid settings: {', '.join(sorted(valid))})",
        path=path,
    )
