"""The trained-model artifact: the checkpoint format and the model it loads into.

``load(path)`` gives a :class:`TrainedModel` whose forward takes raw pixels in
[0, 1] and normalizes itself, and which knows its classes, its picture
preparation, its calibration temperature, its precision and its provenance.

Importing this package imports no torch: the checkpoint format
(:mod:`~mnistcnn.artifact.schema`) and the ONNX Runtime path
(:mod:`~mnistcnn.artifact.onnx_graph`) work without it, and the torch classes
(``TrainedModel``, ``Normalize``, ``OnnxModel``, ``load_onnx``) are imported
on first use, so ``mnistcnn predict model.onnx`` never loads torch.
"""

from __future__ import annotations

import importlib
import os
import warnings
from typing import TYPE_CHECKING, Any

from mnistcnn.artifact.onnx_graph import is_onnx_file
from mnistcnn.artifact.schema import (
    FORMAT,
    FORMAT_VERSION,
    Checkpoint,
    from_dict,
    load_checkpoint,
    migrate,
    save_checkpoint,
)
from mnistcnn.artifact.sniff import describe_non_checkpoint
from mnistcnn.errors import CheckpointError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from mnistcnn.artifact.onnx_model import OnnxModel, load_onnx
    from mnistcnn.artifact.trained import Normalize, TrainedModel

#: The torch classes and functions of this package: imported on first use.
_LAZY = {
    "Normalize": "mnistcnn.artifact.trained",
    "TrainedModel": "mnistcnn.artifact.trained",
    "OnnxModel": "mnistcnn.artifact.onnx_model",
    "load_onnx": "mnistcnn.artifact.onnx_model",
}

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "Normalize",
    "OnnxModel",
    "TrainedModel",
    "build_model",
    "describe_non_checkpoint",
    "from_dict",
    "load",
    "load_checkpoint",
    "load_model",
    "load_onnx",
    "migrate",
    "save",
    "save_checkpoint",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mnistcnn.artifact' has no attribute {name!r}")


def _wrap(ckpt: Checkpoint, net: nn.Module) -> TrainedModel:
    from mnistcnn.artifact.trained import TrainedModel, model_fields

    return TrainedModel(net, **model_fields(ckpt))


def build_model(ckpt: Checkpoint, net: nn.Module | None = None) -> TrainedModel:
    """The checkpoint's :class:`TrainedModel`, weights loaded (strict), on the CPU, in eval mode.

    The architecture is built from the registry by ``ckpt.model_name``, or is
    ``net`` (a user's own module, for checkpoints of ``train(model=...)``).
    The keys and shapes of the weights are checked first on a skeleton on the ``meta``
    device (no memory), so model arguments that lie (``num_classes`` of 10**10) cannot
    make it allocate more than the weights in the file; then one image of the declared
    ``input_size`` goes through the built model.

    Raises:
        CheckpointError: unknown model name or bad arguments, weights that do
            not fit the architecture (missing/unexpected keys or shape
            mismatches are named), or a model that cannot take ``input_size``
            or gives another number of logits than there are ``classes``.
    """
    from mnistcnn.models import create_model

    registered = net is None
    if net is None:
        if ckpt.model_name == "custom":
            raise CheckpointError(
                f"{ckpt.path}: trained from your own module; pass it: load(path, net=YourNet())"
            )
        _check_on_meta(ckpt)
        net = create_model(ckpt.model_name, **ckpt.model_kwargs)
    model = _wrap(ckpt, net)
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{ckpt.path}: weights do not fit the given module: " + " ".join(str(exc).split())
        ) from None
    model.checkpoint = ckpt
    model.eval()
    if registered:
        _check_forward(ckpt, model)
    return model


def _check_on_meta(ckpt: Checkpoint) -> None:
    """Build the architecture on the meta device and load the weights; raise CheckpointError."""
    import torch

    from mnistcnn.models import create_model

    try:
        with torch.device("meta"):
            skeleton = _wrap(ckpt, create_model(ckpt.model_name, **ckpt.model_kwargs))
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


def _check_forward(ckpt: Checkpoint, model: nn.Module) -> None:
    """One image of ``input_size`` through the built model: it must give one logit per class.

    Run on the real model once its weights are loaded (their shapes were checked on the
    meta device first, so building it allocated no more than the file holds), not on the
    meta device: a meta forward runs torch's reference kernels, which import
    ``torch._dynamo`` (seconds, for a command that predicts one picture).
    """
    import torch

    try:
        # the architecture alone (normalization keeps the shape): the model's own forward
        # stays for the caller's pictures
        net = getattr(model, "net", model)
        with torch.inference_mode():
            logits = net(torch.zeros(1, *ckpt.input_size))
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


def load(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    *,
    net: nn.Module | None = None,
) -> TrainedModel:
    """Load a checkpoint (file, or run folder: its best.pt) as a :class:`TrainedModel`.

    The model is in eval mode on ``map_location``; ``model(x)`` takes float
    (N, 1, 28, 28) pixels in [0, 1] and returns logits (N, len(model.classes)).
    ``model.checkpoint`` is the :class:`Checkpoint` it came from.

    An ``.onnx`` file written by ``mnistcnn export`` gives an
    :class:`~mnistcnn.artifact.onnx_model.OnnxModel`: a TrainedModel run by
    ONNX Runtime (:func:`~mnistcnn.artifact.onnx_model.load_onnx`).

    Args:
        path: a ``.pt`` written by training (format version 1 or 2), a run
            folder, or an exported ``.onnx``.
        map_location: device for the weights (``"cpu"``, ``"cuda"``...).
        net: your own architecture, for a checkpoint of ``train(model=module)``.

    Raises:
        CheckpointError: see :func:`load_checkpoint`, :func:`build_model` and
            :func:`~mnistcnn.artifact.onnx_model.load_onnx`.
    """
    if net is None and is_onnx_file(path):
        from mnistcnn.artifact.onnx_model import load_onnx

        return load_onnx(path, map_location)
    ckpt = load_checkpoint(path, map_location=map_location)
    return build_model(ckpt, net).to(map_location)


def load_model(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[TrainedModel, Checkpoint]:
    """``(load(path), its Checkpoint)``: the model in eval mode on ``map_location``.

    Raises:
        CheckpointError: see :func:`load`.
    """
    model = load(path, map_location)
    assert model.checkpoint is not None
    return model, model.checkpoint


def save(model: TrainedModel, path: str | os.PathLike[str], **state: object) -> Checkpoint:
    """Write ``model`` (weights and metadata) and training ``state`` as a checkpoint at ``path``.

    ``state``: :class:`Checkpoint` fields such as ``epoch``, ``config``,
    ``history``. Written atomically (:func:`save_checkpoint`).

    Returns:
        The :class:`Checkpoint` written.

    Raises:
        OSError: the folder is not writable or the disk is full.
    """
    ckpt = Checkpoint.of(model, path, **state)
    save_checkpoint(path, ckpt)
    return ckpt
