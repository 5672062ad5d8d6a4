"""The members of an evaluation: one checkpoint or an ensemble, checked and run alike.

``mnistcnn evaluate`` (:func:`mnistcnn.engine.session.evaluate`) and its report
(:mod:`mnistcnn.report`) both load their checkpoints with :func:`load_members`
and compute probabilities with :func:`ensemble_probabilities`, so the printed
accuracy and the report's are the same numbers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from mnistcnn import data as mdata
from mnistcnn.data.loaders import TensorSource
from mnistcnn.data.specs import shown_class_names
from mnistcnn.engine.checkpoint import Checkpoint, CheckpointError, load_model
from mnistcnn.engine.evaluate import predict_probabilities
from mnistcnn.engine.utils import precision_autocast

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def load_members(
    checkpoints: Sequence[PathLike],
    device: torch.device,
    dataset: str | None = None,
    *,
    warn_duplicates: bool = True,
) -> tuple[list[tuple[torch.nn.Module, Checkpoint]], str]:
    """Load the checkpoints of an evaluation (one, or an ensemble) and name its dataset.

    Returns ``([(model in eval mode on device, checkpoint), ...], dataset name)``;
    the dataset is ``dataset``, else the first checkpoint's, else ``"mnist"``.
    The same file given twice is logged as a warning (once, if ``warn_duplicates``):
    it counts twice in the average.

    Raises:
        CheckpointError: an unreadable checkpoint, or members whose classes differ.
        ValueError: an unknown dataset, or one whose classes are not the models'
            (:func:`mnistcnn.data.check_model_classes`).
    """
    if not checkpoints:
        raise ValueError("give at least one checkpoint")
    loaded = [load_model(p, map_location=device) for p in checkpoints]
    first = loaded[0][1]
    for _, ck in loaded[1:]:
        if not mdata.same_class_names(ck.classes, first.classes):
            raise CheckpointError(
                f"{ck.path}: its classes ({shown_class_names(ck.classes)}) differ "
                f"from {first.path}'s ({shown_class_names(first.classes)}); "
                "an ensemble needs models of the same classes"
            )
    name = dataset or first.dataset or "mnist"
    mdata.check_model_classes(
        first.classes, name, subject=str(first.path), model_dataset=first.dataset
    )
    seen: dict[Path, Path] = {}
    for _, ck in loaded:
        key = ck.path.resolve()
        if key in seen and warn_duplicates:
            log.warning(
                "%s is given more than once (as %s): it counts twice in the ensemble",
                ck.path,
                seen[key],
            )
        seen.setdefault(key, ck.path)
    return loaded, name


def member_precision(ckpt: Checkpoint, precision: str | None = None) -> str:
    """The precision to run ``ckpt``'s model in: ``precision``, else the one it was trained with.

    A bf16 run evaluates under bf16 autocast during training; evaluating it the
    same way reproduces the accuracy it recorded.

    Raises:
        ValueError: ``precision`` (or the recorded one) is neither fp32 nor bf16.
    """
    chosen = precision or str(ckpt.config.get("precision") or "fp32")
    if chosen not in ("fp32", "bf16"):
        raise ValueError(f"{ckpt.path}: precision must be fp32 or bf16, got {chosen!r}")
    return chosen


def ensemble_probabilities(
    loaded: Sequence[tuple[torch.nn.Module, Checkpoint]],
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    batch_size: int,
    precision: str | None = None,
) -> tuple[torch.Tensor, str]:
    """Mean softmax probabilities float32 (N, C) of the members on uint8 ``images`` (N, 28, 28).

    Each member sees the images with its own normalization and runs in
    :func:`member_precision`. Returns (probabilities on the CPU, the
    precision used: ``"bf16"``, ``"fp32"``, or e.g. ``"bf16, fp32"`` for a mixed ensemble).
    """
    total, used = None, []
    for model, ck in loaded:
        prec = member_precision(ck, precision)
        used.append(prec)
        src = TensorSource(images, labels, batch_size, mean=ck.mean, std=ck.std, device=device)
        with precision_autocast(prec, device):
            probs, _ = predict_probabilities([model], src)
        total = probs if total is None else total + probs
    assert total is not None
    return total / len(loaded), ", ".join(dict.fromkeys(used))
