"""The library's errors: one base class; each names the setting or file it concerns."""

from __future__ import annotations


class MnistcnnError(Exception):
    """Base of mnistcnn's errors: a user-facing message, with the setting or file it concerns.

    Attributes:
        setting: the configuration field or argument name (``"device"``), or None.
        path: the file the error concerns, or None.
    """

    def __init__(self, message: str = "", *, setting: str | None = None, path: str | None = None):
        super().__init__(message)
        self.setting = setting
        self.path = path


class CheckpointError(MnistcnnError, RuntimeError):
    """A file is not a usable mnistcnn checkpoint; the message names the file and the reason."""
