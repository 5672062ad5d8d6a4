"""Self-describing checkpoints: written atomically, loaded with ``weights_only=True``.

A checkpoint is a plain dict (only tensors, numbers, strings, lists and dicts,
so ``torch.load(weights_only=True)`` can read it without executing code)::

    format          "mnistcnn.checkpoint"
    format_version  1
    model           {"name": str, "kwargs": {"num_classes": int, "in_chans": int, ...}}
    state_dict      model weights
    optimizer       optimizer state_dict (or None)
    scheduler       scheduler state_dict (or None)
    epoch           completed epochs (int)
    step            optimizer steps taken in total (int)
    position        where to resume: {"epoch", "batch" (batches done in it),
                    "loss_sum", "correct", "seen", "seconds" (partial epoch sums)}
    best            {"value", "epoch"}: the best monitored accuracy so far
    metrics         the last metrics row (dict)
    history         every metrics row (list of dicts)
    config          TrainConfig.to_dict()
    dataset         dataset name
    classes         class names (list of str)
    normalization   {"mean": [float], "std": [float]}: what the model expects,
                    x = (pixels / 255 - mean) / std
    input_size      [channels, height, width]
    rng             RNG states (torch, numpy, python)
    versions        python, torch, torchvision, mnistcnn
    extra           free-form dict
    calibration     optional: {"temperature", "fitted_on", "nll_before", "nll_after", ...}
                    (see mnistcnn.engine.calibration); absent = not calibrated
"""

from __future__ import annotations

import math
import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnistcnn._io import atomic_write, describe_kind, sniff_file

FORMAT = "mnistcnn.checkpoint"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A file is not a usable mnistcnn checkpoint; the message names the file and the reason."""


@dataclass
class Checkpoint:
    """A loaded checkpoint (see the module docstring for each field)."""

    path: Path
    model_name: str
    model_kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    classes: list[str]
    normalization: dict[str, list[float]]
    input_size: list[int]
    epoch: int = 0
    step: int = 0
    dataset: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    position: dict[str, Any] | None = None
    best: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None

    @property
    def mean(self) -> list[float]:
        """Per-channel mean subtracted from inputs on the 0..1 scale."""
        return list(self.normalization["mean"])

    @property
    def std(self) -> list[float]:
        """Per-channel std inputs are divided by, on the 0..1 scale."""
        return list(self.normalization["std"])


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    A crash during the write leaves any previous file at ``path`` intact.
    The file gets the usual mode of a new file (0666 less the umask).
    ``format`` and ``format_version`` are added. Returns the final path.

    Raises:
        OSError: the folder is not writable or the disk is full (the temp file is removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    return atomic_write(path, lambda fh: torch.save(data, fh))  # mode 0666 less the umask


_REQUIRED = ("model", "state_dict")
_MAX_CLASSES = 100_000  # default class names are made for at most this many


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Uses ``torch.load(weights_only=True)``: a file that would need arbitrary
    Python objects (code execution) is refused, not executed. A run directory
    may be given instead of a file: its ``best.pt`` (else ``last.pt``) is read.

    Raises:
        CheckpointError: missing, empty, another kind of file (an image, JSON,
            text...: named, see :func:`describe_non_checkpoint`), truncated,
            not a torch file, unsafe pickle,
            not an mnistcnn checkpoint, from a newer format version, a field
            of the wrong type (classes, normalization, input_size...), or
            GPU tensors with a ``map_location`` that has no GPU.
    """
    path = _resolve(Path(path))
    kind = describe_non_checkpoint(path)
    if kind is not None:
        raise CheckpointError(f"{path}: {kind}, not an mnistcnn checkpoint ({_EXPECTED})")
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _unpickler_detail(exc)
        if "Weights only load failed" not in str(exc):
            raise CheckpointError(
                f"{path}: not a readable checkpoint (truncated, corrupt or not a torch file): "
                f"{detail or exc}"
            ) from None
        raise CheckpointError(
            f"{path}: refused to load: the file needs Python objects that are not plain data "
            f"(weights_only=True refused it; it may try to execute code): {detail}"
        ) from None
    except Exception as exc:  # torch raises many kinds (KeyError, EOFError, RuntimeError...)
        if "CUDA" in str(exc):  # tensors saved on a GPU, map_location asks for an absent one
            raise CheckpointError(
                f"{path}: saved on a GPU and cannot be placed on {map_location!r} here "
                "(CUDA is not available); load it with map_location='cpu' (the default)"
            ) from None
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or not a torch file): {exc}"
        ) from None
    return _from_dict(path, raw)


_EXPECTED = "expected a .pt file written by `mnistcnn train`, such as runs/<run>/best.pt"
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
    if kind in ("zip", "pickle"):
        return None
    if kind == "binary":
        return f"binary data that is not a torch file (starts {head[:8].hex(' ')})"
    return describe_kind(kind) + _HINTS.get(kind, "")


def _unpickler_detail(exc: Exception) -> str:
    """The reason torch's weights-only unpickler gave, without torch's advice around it."""
    text = str(exc)
    _, found, rest = text.partition("WeightsUnpickler error:")
    if not found:
        return ""
    return " ".join(rest.split("Check the documentation of torch.load")[0].split())


def _resolve(path: Path) -> Path:
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: a folder without best.pt or last.pt")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    return path


def _from_dict(path: Path, raw: Any) -> Checkpoint:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not an mnistcnn checkpoint (expected a dict with format={FORMAT!r}; "
            "a bare state_dict or another tool's file cannot be used)"
        )
    version = raw.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: checkpoint format version {version!r} is not valid")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is newer than this mnistcnn "
            f"understands ({FORMAT_VERSION}); upgrade mnistcnn"
        )
    missing = [k for k in _REQUIRED if k not in raw]
    model = raw.get("model")
    if missing or not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise CheckpointError(f"{path}: checkpoint lacks {missing or ['model.name']}")
    try:
        return _checked(path, raw, model)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: malformed checkpoint: {exc}") from None


def _field(raw: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any) -> Any:
    """``raw[name]`` if it has type ``kind``, ``default`` if absent or None; else ValueError."""
    value = raw.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ValueError(f"field {name!r} has the wrong type ({type(value).__name__})")
    return value


def _checked(path: Path, raw: dict[str, Any], model: dict[str, Any]) -> Checkpoint:
    """The :class:`Checkpoint` of ``raw``; TypeError/ValueError name a field with bad content."""
    kwargs = _field(model, "kwargs", dict, {})
    state = raw["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ValueError("field 'state_dict' must map parameter names to tensors")
    classes = _field(raw, "classes", list, None)
    if classes is None:
        n = kwargs.get("num_classes", 10)
        if not isinstance(n, int) or not 1 <= n <= _MAX_CLASSES:
            raise ValueError(f"no 'classes', and model.kwargs.num_classes is {n!r}")
        classes = [str(i) for i in range(n)]
    if not classes or not all(isinstance(c, str) for c in classes):
        raise ValueError("field 'classes' must be a non-empty list of names")
    norm = _field(raw, "normalization", dict, {"mean": [0.0], "std": [1.0]})
    mean, std = norm.get("mean"), norm.get("std")
    if not (_numbers(mean) and _numbers(std) and len(mean) == len(std) and min(std) > 0):
        raise ValueError("field 'normalization' needs equally long lists 'mean' and 'std' > 0")
    size = _field(raw, "input_size", list, [1, 28, 28])
    if len(size) != 3 or not all(isinstance(v, int) and v > 0 for v in size):
        raise ValueError(f"field 'input_size' must be [channels, height, width], found {size}")
    opt = (dict, type(None))
    return Checkpoint(
        path=path,
        model_name=model["name"],
        model_kwargs=dict(kwargs),
        state_dict=state,
        classes=list(classes),
        normalization={"mean": list(mean), "std": list(std)},
        input_size=list(size),
        epoch=_field(raw, "epoch", int, 0),
        step=_field(raw, "step", int, 0),
        dataset=_field(raw, "dataset", str, ""),
        config=dict(_field(raw, "config", dict, {})),
        metrics=dict(_field(raw, "metrics", dict, {})),
        history=list(_field(raw, "history", list, [])),
        optimizer=_field(raw, "optimizer", opt, None),
        scheduler=_field(raw, "scheduler", opt, None),
        rng=_field(raw, "rng", opt, None),
        versions=dict(_field(raw, "versions", dict, {})),
        extra=dict(_field(raw, "extra", dict, {})),
        position=_field(raw, "position", opt, None),
        best=_field(raw, "best", opt, None),
        calibration=_field(raw, "calibration", opt, None),
    )


def _numbers(values: Any) -> bool:
    """A non-empty list of finite real numbers."""
    return (
        isinstance(values, list)
        and len(values) > 0
        and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        )
    )


def build_model(ckpt: Checkpoint) -> nn.Module:
    """Instantiate the checkpoint's architecture and load its weights (strict).

    Everything is checked first on a skeleton on the ``meta`` device (no
    memory): the keys and shapes of the weights, and one forward pass of the
    declared ``input_size``. So model arguments that lie (``num_classes`` of
    10**10) cannot make it allocate more than the weights in the file.

    Raises:
        CheckpointError: unknown model name or bad arguments, weights that do
            not fit the architecture (missing/unexpected keys or shape
            mismatches are named), or a model that cannot take ``input_size``
            or gives another number of logits than there are ``classes``.
    """
    from mnistcnn.models import create_model

    _check_on_meta(ckpt)
    model = create_model(ckpt.model_name, **ckpt.model_kwargs)
    model.load_state_dict(ckpt.state_dict, strict=True)
    return model


def _check_on_meta(ckpt: Checkpoint) -> None:
    """Build, load and run the architecture on the meta device; raise CheckpointError."""
    from mnistcnn.models import create_model

    try:
        with torch.device("meta"):
            skeleton = create_model(ckpt.model_name, **ckpt.model_kwargs)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{ckpt.path}: cannot build model: {exc}") from None
    try:
        with warnings.catch_warnings():  # copying into meta parameters is a no-op, on purpose
            warnings.simplefilter("ignore", UserWarning)
            skeleton.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{ckpt.path}: weights do not fit architecture {ckpt.model_name!r}: "
            + " ".join(str(exc).split())
        ) from None
    skeleton.eval()
    try:
        logits = skeleton(torch.empty(1, *ckpt.input_size, device="meta"))
    except NotImplementedError:  # an operator without a meta kernel: skip this check
        return
    except RuntimeError as exc:
        raise CheckpointError(
            f"{ckpt.path}: model {ckpt.model_name!r} cannot take the checkpoint's input size "
            f"{ckpt.input_size}: {' '.join(str(exc).split())}"
        ) from None
    if tuple(logits.shape) != (1, len(ckpt.classes)):
        raise CheckpointError(
            f"{ckpt.path}: model outputs {tuple(logits.shape)[1:]} logits per image but the "
            f"checkpoint names {len(ckpt.classes)} classes"
        )


def load_model(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, Checkpoint]:
    """Load a checkpoint and return ``(model in eval mode on map_location, checkpoint)``.

    Raises:
        CheckpointError: see :func:`load_checkpoint` and :func:`build_model`.
    """
    ckpt = load_checkpoint(path, map_location=map_location)
    model = build_model(ckpt).to(map_location)
    model.eval()
    return model, ckpt
