"""What a file is, from its first bytes, when it cannot be a torch checkpoint."""

from __future__ import annotations

import os

from mnistcnn._io import describe_kind, sniff_file
from mnistcnn.errors import CheckpointError

#: What a file of some kinds may be instead of a checkpoint, after :func:`describe_kind`'s words.
_HINTS = {
    "gzip": " (an MNIST .gz download?)",
    "hdf5": " (a Keras model?)",
    "protobuf": " (an ONNX model?)",
    "idx": " (MNIST images or labels)",
    "html": " (a download that saved an error page?)",
}


def describe_non_checkpoint(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` looks like when it cannot be a torch checkpoint; None when it may be one.

    A torch checkpoint is a zip archive (``torch.save``'s format since torch
    1.6) or a pickle of protocol 2 or later (the legacy format, and bare
    pickles); such files return None and are left to ``torch.load``. Anything
    else is named from its first bytes (:func:`mnistcnn._io.sniff`):
    ``"an empty file (0 bytes)"``, ``"a PNG image"``, ``"JSON text"``, ``"a text file"``, ... .

    Raises:
        CheckpointError: the file cannot be read (permissions, I/O error).
    """
    try:
        kind, head = sniff_file(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if kind == "zip":
        return _exported_archive(path)
    if kind == "pickle":
        return None
    if kind == "binary":
        return f"binary data that is not a torch file (starts {head[:8].hex(' ')})"
    return describe_kind(kind) + _HINTS.get(kind, "")


def _exported_archive(path: str | os.PathLike[str]) -> str | None:
    """A zip that ``mnistcnn export`` (or ``torch.jit``/``torch.export``) wrote, named; else None.

    TorchScript archives hold ``<name>/constants.pkl`` and ExportedPrograms
    ``<name>/models/model.json``; ``mnistcnn export`` adds ``<name>/extra/mnistcnn.json``.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = [n.split("/", 1)[-1] for n in archive.namelist()]
    except (OSError, zipfile.BadZipFile):
        return None  # left to torch.load, which says what is wrong
    ours = " written by `mnistcnn export`" if "extra/mnistcnn.json" in names else ""
    if "models/model.json" in names:
        return f"an ExportedProgram (torch.export){ours}: load it with torch.export.load"
    if "constants.pkl" in names and "data.pkl" not in names or "code/" in {n[:5] for n in names}:
        return f"a TorchScript archive{ours}: load it with torch.jit.load"
    return None
