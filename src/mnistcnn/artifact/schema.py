"""The checkpoint format, owned here alone: one schema that writes and reads.

A checkpoint file is a plain dict (only tensors, numbers, strings, lists and
dicts, so ``torch.load(weights_only=True)`` reads it without executing code)::

    format          "mnistcnn.checkpoint"
    format_version  2 (version 1 files are converted on read, see :func:`migrate`)
    model           {"name": str, "kwargs": {"num_classes": int, "in_chans": int, ...}}
    state_dict      the TrainedModel's weights: "net.*" (the architecture) and
                    "normalize.mean" / "normalize.std" (its input normalization)
    normalization   {"mean": [float], "std": [float]}: the same values, readable
                    without tensors; x = (pixels / 255 - mean) / std
    input_size      [channels, height, width]
    preparation     how a picture becomes an input (e.g. {"method": "mnist", ...})
    precision       "fp32" or "bf16": the arithmetic it was trained in
    classes         class names (list of str)
    dataset         dataset name
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
    rng             RNG states (torch, numpy, python)
    versions        python, torch, torchvision, mnistcnn
    extra           free-form dict (EMA runs: "train_state_dict", the raw weights)
    calibration     optional: {"temperature", "fitted_on", "nll_before", ...}
                    (see mnistcnn.evaluation.calibration); absent = not calibrated

:class:`Checkpoint` is that dict as a dataclass: :meth:`Checkpoint.to_dict`
writes it, :func:`load_checkpoint` reads and checks it, :func:`save_checkpoint`
writes it atomically. Nothing else builds or patches the dict.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistcnn._io import atomic_write
from mnistcnn.artifact.foreign import BARE_STATE_DICT_ADVICE, foreign_checkpoint_kind, is_tensor
from mnistcnn.artifact.sniff import describe_non_checkpoint
from mnistcnn.config import PRECISIONS
from mnistcnn.errors import CheckpointError
from mnistcnn.prepare.records import MNIST_RECORD, preparation_method, preparation_record

if TYPE_CHECKING:
    import torch

    from mnistcnn.artifact.trained import TrainedModel

log = logging.getLogger(__name__)

FORMAT = "mnistcnn.checkpoint"
FORMAT_VERSION = 2

_MAX_CLASSES = 100_000  # default class names are made for at most this many
_EXPECTED = "expected a .pt file written by `mnistcnn train`, such as runs/<run>/best.pt"


@dataclass
class Checkpoint:
    """A checkpoint (see the module docstring for each field); ``path`` is where it was read."""

    path: Path
    model_name: str
    model_kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    classes: list[str]
    normalization: dict[str, list[float]]
    input_size: list[int]
    preparation: dict[str, Any] = field(default_factory=lambda: dict(MNIST_RECORD))
    precision: str = "fp32"
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

    @classmethod
    def of(cls, model: TrainedModel, path: str | os.PathLike[str] = "", **state: Any) -> Checkpoint:
        """The checkpoint of ``model`` (its weights on the CPU and its metadata) with ``state``.

        ``state``: training fields (``epoch``, ``step``, ``optimizer``, ``config``,
        ...; see the module docstring). ``model`` may be an ``AveragedModel``'s
        module or sit under DistributedDataParallel: pass the TrainedModel itself.
        """
        weights = cpu_state_dict(model)
        return cls(
            path=Path(path),
            model_name=model.model_name,
            model_kwargs=dict(model.model_kwargs),
            state_dict=weights,
            classes=list(model.classes),
            normalization={"mean": model.mean, "std": model.std},
            input_size=list(model.input_size),
            preparation=dict(model.preparation),
            precision=model.precision,
            dataset=model.dataset,
            calibration=model.calibration,
            **state,
        )

    def replace(self, **changes: Any) -> Checkpoint:
        """A copy with ``changes`` (dataclass field names) applied."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The file's dict, current format version (what :func:`save_checkpoint` writes)."""
        body = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del body["path"]
        name, kwargs = body.pop("model_name"), body.pop("model_kwargs")
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": {"name": name, "kwargs": kwargs},
            **body,
        }


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state dict with every tensor detached and on the CPU (what a file holds)."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def save_checkpoint(path: str | os.PathLike[str], ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to ``path`` atomically (temp file in the same folder, fsync, rename).

    A crash during the write leaves any previous file at ``path`` intact. The
    file gets the usual mode of a new file (0666 less the umask). Returns the path.

    Raises:
        OSError: the folder is not writable or the disk is full (the temp file is removed).
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ckpt.to_dict()
    atomic_write(path, lambda fh: torch.save(data, fh))
    return path


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read and check a checkpoint; a version-1 file is converted (:func:`migrate`).

    Uses ``torch.load(weights_only=True)``: a file that would need arbitrary
    Python objects (code execution) is refused, not executed. A run directory
    may be given instead of a file: its ``best.pt`` (else ``last.pt``) is read.

    Raises:
        CheckpointError: missing, empty, another kind of file (an image, JSON,
            text...: named), truncated, not a torch file, unsafe pickle, not an
            mnistcnn checkpoint, from a newer format version, a field of the
            wrong type (classes, normalization, input_size...), or GPU tensors
            with a ``map_location`` that has no GPU.
    """
    import torch

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
    return from_dict(path, raw)


def _unpickler_detail(exc: Exception) -> str:
    """The reason torch's weights-only unpickler gave, without torch's advice around it."""
    text = str(exc)
    _, found, rest = text.partition("WeightsUnpickler error:")
    if not found:
        return ""
    return " ".join(rest.split("Check the documentation of torch.load")[0].split())


def _resolve(path: Path) -> Path:
    if path.is_dir():
        if (path / "best.pt").is_file():
            return path / "best.pt"
        if (path / "last.pt").is_file():
            log.warning(
                "%s has no best.pt (stopped before its first epoch ended?): using last.pt", path
            )
            return path / "last.pt"
        raise CheckpointError(f"{path}: a folder without best.pt or last.pt")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    return path


def from_dict(path: Path, raw: Any) -> Checkpoint:
    """The checked :class:`Checkpoint` of a loaded file's dict ``raw`` (any known version).

    Raises:
        CheckpointError: not an mnistcnn checkpoint (a bare state_dict, or another
            tool's checkpoint holding one, is named as such, with what to do), an
            unknown or newer format version, or a field of the wrong type or content
            (named).
    """
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        foreign = foreign_checkpoint_kind(raw)
        if foreign is not None:  # weights without what mnistcnn needs: say so, and what to do
            raise CheckpointError(
                f"{path}: {foreign}, not an mnistcnn checkpoint: {BARE_STATE_DICT_ADVICE}",
                path=path,
            )
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
    missing = [k for k in ("model", "state_dict") if k not in raw]
    model = raw.get("model")
    if missing or not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise CheckpointError(f"{path}: checkpoint lacks {missing or ['model.name']}")
    try:
        return _checked(path, migrate(raw), model)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: malformed checkpoint: {exc}") from None


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """Convert a checkpoint dict of an older format version to the current one (a new dict).

    Version 1 held the bare architecture's weights (``conv1.weight`` ...) and
    applied the normalization outside the model; version 2 holds the
    :class:`~mnistcnn.artifact.trained.TrainedModel`'s (``net.`` prefix, plus
    the normalization buffers) and records ``preparation`` and ``precision``.

    Weights saved from a wrapped model (``nn.DataParallel`` or
    ``DistributedDataParallel``: ``module.`` before every key; ``torch.compile``:
    ``_orig_mod.``) are unwrapped first: a prefix on every key of
    ``state_dict`` (and of ``extra.train_state_dict``) is removed, in any
    version.

    Raises:
        ValueError: a field needed for the conversion has the wrong type.
    """
    raw = dict(raw)

    def unwrapped(state: Any) -> Any:
        while isinstance(state, dict) and state and all(isinstance(k, str) for k in state):
            prefix = next(
                (p for p in ("module.", "_orig_mod.") if all(k.startswith(p) for k in state)), None
            )
            if prefix is None:
                break
            state = {k[len(prefix) :]: v for k, v in state.items()}
        return state

    if "state_dict" in raw:
        raw["state_dict"] = unwrapped(raw["state_dict"])
    if isinstance(raw.get("extra"), dict) and "train_state_dict" in raw["extra"]:
        extra = dict(raw["extra"])
        extra["train_state_dict"] = unwrapped(extra["train_state_dict"])
        raw["extra"] = extra
    if raw.get("format_version") == 1:
        norm = _field(raw, "normalization", dict, {"mean": [0.0], "std": [1.0]})
        raw["state_dict"] = _v1_weights(raw["state_dict"], norm)
        extra = dict(_field(raw, "extra", dict, {}))
        if isinstance(extra.get("train_state_dict"), dict):
            extra["train_state_dict"] = _v1_weights(extra["train_state_dict"], norm)
        raw["extra"] = extra
        config = _field(raw, "config", dict, {})
        raw.setdefault("precision", str(config.get("precision") or "fp32"))
        raw.setdefault("preparation", dict(MNIST_RECORD))
        raw["format_version"] = 2
    return raw


def _v1_weights(state: Any, norm: dict[str, Any]) -> Any:
    """Version-1 architecture weights -> TrainedModel weights (unchanged if not a dict)."""
    import torch

    if not isinstance(state, dict):
        return state
    out = {f"net.{k}": v for k, v in state.items()}
    try:
        out["normalize.mean"] = torch.tensor(norm["mean"], dtype=torch.float32)
        out["normalize.std"] = torch.tensor(norm["std"], dtype=torch.float32)
    except (KeyError, TypeError, ValueError, RuntimeError):
        raise ValueError("field 'normalization' needs lists 'mean' and 'std'") from None
    return out


def stored_preparation(record: dict[str, Any], dataset: Any) -> dict[str, Any]:
    """A checkpoint's picture preparation record (``{"method": ..., settings}``), as used.

    Checkpoints written before each dataset had its own preparation recorded
    MNIST's for every dataset: that record on a dataset whose own method is
    another (a Fashion-MNIST model) is read as the dataset's record
    (:func:`mnistcnn.prepare.records.preparation_method`), so ``load`` of an old
    Fashion-MNIST checkpoint prepares pictures the way Fashion-MNIST's were made.
    Any other record is returned as stored (a copy).
    """
    prep = dict(record)
    if prep == MNIST_RECORD and isinstance(dataset, str) and dataset:
        method = preparation_method(dataset.strip().lower().replace("_", "-"))
        if method != prep["method"]:
            return preparation_record(method)
    return prep


def temperature_of(ckpt: Checkpoint) -> float | None:
    """The checkpoint's fitted temperature, or None when it was never calibrated.

    Raises:
        CheckpointError: a ``calibration`` entry whose temperature is not a positive number.
    """
    cal = ckpt.calibration
    if not cal:
        return None
    t = cal.get("temperature")
    if not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        raise CheckpointError(
            f"{ckpt.path}: calibration temperature {t!r} is not a positive number"
        )
    return float(t)


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
        isinstance(k, str) and is_tensor(v) for k, v in state.items()
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
    precision = _field(raw, "precision", str, "fp32")
    if precision not in PRECISIONS:
        raise ValueError(f"field 'precision' must be one of {PRECISIONS}, found {precision!r}")
    opt = (dict, type(None))
    return Checkpoint(
        path=path,
        model_name=model["name"],
        model_kwargs=dict(kwargs),
        state_dict=state,
        classes=list(classes),
        normalization={"mean": list(mean), "std": list(std)},
        input_size=list(size),
        preparation=stored_preparation(
            _field(raw, "preparation", dict, dict(MNIST_RECORD)), raw.get("dataset")
        ),
        precision=precision,
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
