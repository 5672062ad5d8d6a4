"""The members of an evaluation: one checkpoint or an ensemble, loaded and checked alike.

``mnistcnn evaluate`` (:func:`mnistcnn.evaluation.evaluate`) loads its
checkpoints with :func:`load_members`; :func:`~mnistcnn.evaluation.core.evaluate_models`
then runs each member once and averages their probabilities.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from mnistcnn import data as mdata
from mnistcnn.artifact import CheckpointError, TrainedModel, load
from mnistcnn.data.specs import shown_class_names

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def load_members(
    members: Sequence[PathLike | TrainedModel],
    device: torch.device,
    dataset: str | None = None,
    *,
    warn_duplicates: bool = True,
) -> tuple[list[TrainedModel], str]:
    """Load the models of an evaluation (one, or an ensemble) and name its dataset.

    ``members``: checkpoint paths (files or run folders) or already loaded
    models. Returns ``([model in eval mode on device, ...], dataset name)``;
    the dataset is ``dataset``, else the first model's, else ``"mnist"``.
    The same file given twice is logged as a warning (once, if
    ``warn_duplicates``): it counts twice in the average.

    Raises:
        CheckpointError: an unreadable checkpoint, or members whose classes differ.
        ValueError: no member, an unknown dataset, or one whose classes are not
            the models' (:func:`mnistcnn.data.check_model_classes`).
    """
    if not members:
        raise ValueError("give at least one checkpoint")
    models = [
        m.to(device).eval() if isinstance(m, TrainedModel) else load(m, map_location=device)
        for m in members
    ]
    first = models[0]
    for m in models[1:]:
        if not mdata.same_class_names(m.classes, first.classes):
            raise CheckpointError(
                f"{_name(m)}: its classes ({shown_class_names(m.classes)}) differ "
                f"from {_name(first)}'s ({shown_class_names(first.classes)}); "
                "an ensemble needs models of the same classes"
            )
    name = dataset or first.dataset or "mnist"
    mdata.check_model_classes(
        first.classes, name, subject=_name(first), model_dataset=first.dataset
    )
    seen: dict[Path, Path] = {}
    for m in models:
        if m.checkpoint is None:
            continue
        path = m.checkpoint.path
        key = path.resolve()
        if key in seen and warn_duplicates:
            log.warning(
                "%s is given more than once (as %s): it counts twice in the ensemble",
                path,
                seen[key],
            )
        seen.setdefault(key, path)
    return models, name


def _name(model: TrainedModel) -> str:
    """The model's checkpoint path, or ``the <name> model`` for one made in memory."""
    return str(model.checkpoint.path) if model.checkpoint else f"the {model.model_name} model"
