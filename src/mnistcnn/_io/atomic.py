"""Atomic writes: a temporary file beside the destination, fsync, rename, fsync the folder.

:func:`atomic_write` (bytes, text, or a function writing to a binary file) and
:func:`atomic_path` (a temporary path for writers that need one). The temporary
file ``.<name>.<random>.tmp[<suffix>]`` is created in the destination's folder
with mode 0666 less the umask (not ``mkstemp``'s 0600), fsynced, renamed over
the destination with :func:`os.replace`, and the folder is fsynced; on any
exception, Ctrl-C included, the temporary file is removed and a previous file
at the destination is left as it was. :data:`TEMP_FILE_PATTERN` matches those
names (stale-file clean-up).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

PathLike = str | os.PathLike[str]

#: Names of the temporary files of atomic writes: ``.<name>.<id>.tmp[.<ext>]``.
TEMP_FILE_PATTERN = re.compile(r"^\..+\.tmp(\.[A-Za-z0-9]+)?$")


def is_temp_file_name(name: str) -> bool:
    """True for a name :func:`new_temp_file` makes: ``.a.html.1a2b3c4d.tmp``, ``.x.tmp.png``."""
    return TEMP_FILE_PATTERN.match(name) is not None


def new_temp_file(folder: PathLike, name: str, suffix: str = "") -> tuple[int, str]:
    """Create ``folder/.<name>.<8 hex digits>.tmp<suffix>``; return (its open fd, its path).

    The file is new (``O_EXCL``), opened write-only and close-on-exec, with the
    usual mode of a new file, 0666 less the umask (0644 under umask 022), unlike
    ``tempfile.mkstemp``'s 0600: the file it is renamed to reads like any other.

    Args:
        folder: an existing, writable folder (the destination's, for a rename).
        name: the destination's file name (the temporary name starts with it).
        suffix: appended after ``.tmp``, e.g. ``".png"``; letters and digits after a dot.

    Raises:
        OSError: the folder is missing or not writable; FileExistsError when
            100 random names were all taken.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = Path(folder) / f".{name}.{secrets.token_hex(4)}.tmp{suffix}"
        try:
            return os.open(tmp, flags, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder}: no free temporary name for {name}")


def fsync_dir(folder: PathLike) -> None:
    """Flush ``folder``'s entries (a rename in it) to disk; a no-op where that is impossible."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # a file system or platform that cannot fsync a folder
        pass
    finally:
        os.close(fd)


def _fsync_path(path: PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


Content = bytes | bytearray | memoryview | str | Callable[[BinaryIO], object]


def atomic_write(
    path: PathLike, content: Content, *, suffix: str = "", encoding: str = "utf-8"
) -> Path:
    """Write ``path`` all at once: a temporary file beside it, fsync, rename, fsync the folder.

    Args:
        path: the destination; its folder must exist. A previous file there is
            replaced only once the new one is complete.
        content: bytes; text (encoded with ``encoding``, newlines written as
            given, not translated); or a function called with the open binary
            temporary file (``torch.save``, ``Figure.savefig``, ``Image.save``...).
        suffix: appended to the temporary name after ``.tmp`` (``".png"``).
        encoding: for text ``content``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: the folder is missing or not writable, or the disk is full.
        Anything ``content`` (a function) raises. In every case, Ctrl-C
        included, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    fd, tmp = new_temp_file(path.parent, path.name, suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(content):
                content(fh)
            elif isinstance(content, str):
                fh.write(content.encode(encoding))
            else:
                fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_json(path: PathLike, data: Any, *, sort_keys: bool = False) -> Path:
    """Write ``data`` as JSON (indented by 2, ending in a newline) with :func:`atomic_write`.

    Raises:
        OSError: as :func:`atomic_write` (the previous file, if any, is left as it was).
        TypeError: ``data`` holds something JSON cannot represent (nothing is written).
    """
    return atomic_write(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


@contextlib.contextmanager
def atomic_path(path: PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield an empty temporary path beside ``path``; on a normal exit rename it to ``path``.

    For writers that need a path rather than a file object (copies, gunzip,
    a check of the written file before it gets its name). The temporary file
    is named and created as by :func:`new_temp_file`; on exit it is fsynced,
    renamed over ``path`` and the folder fsynced.

    Raises:
        OSError: as :func:`atomic_write`. If the ``with`` block raises
            (Ctrl-C included), the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    fd, name = new_temp_file(path.parent, path.name, suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
