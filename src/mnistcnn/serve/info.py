"""What ``GET /v1/model`` reports about the served checkpoint."""

from __future__ import annotations

import os
from typing import Any

from mnistcnn.artifact import Checkpoint, OnnxModel, load_model
from mnistcnn.predict.ensemble import EnsemblePredictor


def model_info(ckpt: Checkpoint, parameters: int | None = None) -> dict[str, Any]:
    """The public description of a loaded checkpoint (JSON-ready).

    Keys: ``name`` (architecture), ``dataset``, ``classes``, ``parameters``
    (trainable count, or None if unknown), ``input_size`` ([C, H, W] pixels),
    ``normalization`` ({"mean", "std"} on the 0..1 scale), ``epoch``,
    ``test_accuracy`` (0..1 from the checkpoint's last metrics row, None if it
    has none), ``best`` ({"value", "epoch"} of the monitored accuracy, or None),
    ``versions`` (python, torch, ... that trained it) and ``checkpoint`` (the
    file name only, never the full path). :func:`mnistcnn.serve.build_app`
    adds the Predictor's ``calibrated``, ``temperature`` and ``unsure_below``.
    """
    acc = ckpt.metrics.get("test_accuracy")
    return {
        "name": ckpt.model_name,
        "dataset": ckpt.dataset or None,
        "classes": list(ckpt.classes),
        "parameters": parameters,
        "input_size": list(ckpt.input_size),
        "normalization": {"mean": ckpt.mean, "std": ckpt.std},
        "epoch": ckpt.epoch,
        "test_accuracy": float(acc) if isinstance(acc, (int, float)) else None,
        "best": dict(ckpt.best) if ckpt.best else None,
        "versions": dict(ckpt.versions),
        "checkpoint": ckpt.path.name,
    }


def describe_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`model_info` of the checkpoint at ``path`` (a file, a run directory or an ``.onnx``).

    Raises:
        CheckpointError: the file is missing or not a usable checkpoint.
    """
    model, ckpt = load_model(path)
    if isinstance(model, OnnxModel):  # the weights are in the graph; the export counted them
        params = model.metadata.get("parameters")
    else:
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return model_info(ckpt, params)


def ensemble_info(predictor: EnsemblePredictor) -> dict[str, Any]:
    """What ``GET /v1/model`` adds for an ensemble or test-time augmentation (JSON-ready).

    ``{"members": [...], "tta": [view names]}``: each member is its
    :func:`model_info` (file name only) plus its own ``calibrated`` and
    ``temperature``; ``tta`` is ``[]`` without augmentation (see
    :meth:`~mnistcnn.predict.ensemble.EnsemblePredictor.describe`). The
    top-level fields stay the first member's.
    """
    members = []
    for m in predictor.members:
        params = sum(p.numel() for p in m.model.parameters() if p.requires_grad)
        entry = model_info(m.checkpoint, params) if m.checkpoint is not None else {}
        entry.update(calibrated=m.calibrated, temperature=m.temperature)
        members.append(entry)
    return {"members": members, "tta": predictor.describe()["tta"]}
