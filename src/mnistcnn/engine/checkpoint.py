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
    extra           free-form dict (e.g. calibration temperature)
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

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
    ``format`` and ``format_version`` are added. Returns the final path.

    Raises:
        OSError: the folder is not writable or the disk is full (the temp file is removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_REQUIRED = ("model", "state_dict")


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Uses ``torch.load(weights_only=True)``: a file that would need arbitrary
    Python objects (code execution) is refused, not executed. A run directory
    may be given instead of a file: its ``best.pt`` (else ``last.pt``) is read.

    Raises:
        CheckpointError: missing, truncated, not a torch file, unsafe pickle,
            not an mnistcnn checkpoint, or from a newer format version.
    """
    path = _resolve(Path(path))
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise CheckpointError(
                f"{path}: not a readable checkpoint (truncated or not a torch file): {exc}"
            ) from None
        raise CheckpointError(
            f"{path}: refused to load: the file needs Python objects that are not plain data "
            f"(weights_only=True refused it; it may try to execute code). {_unpickler_detail(exc)}"
        ) from None
    except Exception as exc:  # torch raises many kinds (KeyError, EOFError, RuntimeError...)
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or not a torch file): {exc}"
        ) from None
    return _from_dict(path, raw)


def _unpickler_detail(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if "WeightsUnpickler error" in ln]
    return lines[0] if lines else ""


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
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is newer than this mnistcnn "
            f"understands ({FORMAT_VERSION}); upgrade mnistcnn"
        )
    missing = [k for k in _REQUIRED if k not in raw]
    model = raw.get("model") or {}
    if missing or not isinstance(model, dict) or "name" not in model:
        raise CheckpointError(f"{path}: checkpoint lacks {missing or ['model.name']}")
    kwargs = dict(model.get("kwargs") or {})
    return Checkpoint(
        path=path,
        model_name=str(model["name"]),
        model_kwargs=kwargs,
        state_dict=raw["state_dict"],
        classes=list(raw.get("classes") or [str(i) for i in range(kwargs.get("num_classes", 10))]),
        normalization=dict(raw.get("normalization") or {"mean": [0.0], "std": [1.0]}),
        input_size=list(raw.get("input_size") or [1, 28, 28]),
        epoch=int(raw.get("epoch", 0)),
        step=int(raw.get("step", 0)),
        dataset=str(raw.get("dataset", "")),
        config=dict(raw.get("config") or {}),
        metrics=dict(raw.get("metrics") or {}),
        history=list(raw.get("history") or []),
        optimizer=raw.get("optimizer"),
        scheduler=raw.get("scheduler"),
        rng=raw.get("rng"),
        versions=dict(raw.get("versions") or {}),
        extra=dict(raw.get("extra") or {}),
        position=raw.get("position"),
        best=raw.get("best"),
    )


def build_model(ckpt: Checkpoint) -> nn.Module:
    """Instantiate the checkpoint's architecture and load its weights (strict).

    Raises:
        CheckpointError: unknown model name, or weights that do not fit the
            architecture (missing/unexpected keys or shape mismatches are named).
    """
    from mnistcnn.models import create_model

    try:
        model = create_model(ckpt.model_name, **ckpt.model_kwargs)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{ckpt.path}: cannot build model: {exc}") from None
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{ckpt.path}: weights do not fit architecture {ckpt.model_name!r}: "
            + " ".join(str(exc).split())
        ) from None
    return model


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
