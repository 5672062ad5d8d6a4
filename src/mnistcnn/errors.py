"""The library's exception classes: one base, naming the setting or file at fault.

A leaf module (it imports nothing from mnistcnn), so every part of the
package can raise these without import cycles.

Library messages name settings as the library knows them (``train_subset``,
``device``, ``resume``), never command-line flags; the command line maps
:attr:`MnistcnnError.setting` to its flag (``--train-subset``) when it prints
the error. Catch :class:`MnistcnnError` for every error the library raises
on purpose; anything else is a bug.
"""

from __future__ import annotations

import os
from typing import Any


class MnistcnnError(Exception):
    """Base class of the errors mnistcnn raises on purpose (bad settings, files, data).

    Attributes:
        setting: the configuration field or argument the error is about
            (``"device"``, ``"resume"``, ``"batch_size"``), or None.
        path: the file or folder the error is about, or None.
    """

    setting: str | None = None
    path: str | os.PathLike[str] | None = None

    def __init__(
        self,
        *args: Any,
        setting: str | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(*args)
        if setting is not None:
            self.setting = setting
        if path is not None:
            self.path = path


class SettingError(MnistcnnError, ValueError):
    """A setting (``setting``) has a value that cannot be used; the message names it.

    A ``ValueError`` too, so code that catches ``ValueError`` keeps working.
    """


class CheckpointError(MnistcnnError, RuntimeError):
    """A file is not a usable mnistcnn checkpoint; the message names the file and the reason."""
