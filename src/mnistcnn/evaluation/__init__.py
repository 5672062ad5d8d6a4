"""Evaluation: one pass per model -> :class:`Evaluation`; ensembles, calibration, reports.

``evaluate(["runs/a/best.pt"])`` (or loaded models) runs each model once over
the test split and returns an :class:`Evaluation` with the per-image
probabilities and every figure derived from them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mnistcnn.artifact import TrainedModel
from mnistcnn.evaluation.core import Evaluation, evaluate_models, model_probabilities, summarize
from mnistcnn.evaluation.ensemble import load_members

__all__ = [
    "Evaluation",
    "evaluate",
    "evaluate_models",
    "load_members",
    "model_probabilities",
    "summarize",
]

PathLike = str | os.PathLike[str]


def evaluate(
    models: Sequence[PathLike | TrainedModel] | PathLike | TrainedModel,
    *,
    dataset: str | None = None,
    data_root: PathLike | None = None,
    mirror: PathLike | None = None,
    device: str = "auto",
    batch_size: int = 1000,
    precision: str | None = None,
    out: PathLike | None = None,
    corruptions: Sequence[str] | str | None = None,
    corruption_limit: int | None = None,
    corruption_seed: int = 0,
) -> Evaluation:
    """Evaluate one model, or an ensemble (averaged probabilities), on a test split.

    Args:
        models: checkpoint paths (files or run folders) or loaded models
            (:func:`mnistcnn.load`), or one of them.
        dataset: the test split to use; default: the first model's dataset.
        data_root, mirror: where the dataset is found (see :mod:`mnistcnn.data`).
        device: ``auto``, ``cpu``, ``cuda``, ...
        batch_size: images per forward pass.
        precision: ``fp32`` or ``bf16`` for every model; by default each runs
            in the precision it was trained (and evaluated) with, so a bf16 run
            gives the accuracy its training recorded.
        out: also write the report here, built from the same pass: ``report.html``
            with its pictures (``confusion_matrix.png`` among them) and
            ``confusion_matrix.csv``; its path is then ``result.report``.
        corruptions: also measure accuracy under these MNIST-C corruptions
            (names, ``"all"`` or ``"fog,stripe"``); the result is then
            ``result.corruptions`` and the report has a section and
            ``corruption_examples.png`` (:mod:`mnistcnn.evaluation.robustness`).
        corruption_limit: corrupt and evaluate only the first this many test images.
        corruption_seed: the corruptions' seed.

    Returns:
        The :class:`Evaluation` (each model ran once over the split).

    Raises:
        CheckpointError: an unreadable checkpoint, or members of different classes.
        ValueError: no model, a bad ``precision`` or device, or a dataset whose
            classes are not the models' (an MNIST model on Fashion-MNIST).
        mnistcnn.data.DataError: the dataset cannot be obtained.
        SettingError: an unknown corruption, ``corruption_limit`` < 1, a negative seed.
        OSError: ``out`` cannot be written.
    """
    from mnistcnn import data as mdata
    from mnistcnn.engine.utils import select_device

    if isinstance(models, (str, os.PathLike, TrainedModel)):
        models = [models]
    dev = select_device(device)
    loaded, name = load_members(models, dev, dataset)
    images, labels = mdata.load_arrays(name, train=False, root=data_root, mirror=mirror)
    result = evaluate_models(
        loaded, images, labels, batch_size=batch_size, precision=precision, dataset=name
    )
    if corruptions is not None:
        from mnistcnn.data.corruptions import parse_corruptions
        from mnistcnn.evaluation.robustness import evaluate_corruptions

        text = corruptions if isinstance(corruptions, str) else ",".join(corruptions)
        names = parse_corruptions(text)
        result.corruptions = evaluate_corruptions(
            loaded,
            images,
            labels,
            names=names,
            dataset=name,
            root=data_root,
            seed=corruption_seed,
            limit=corruption_limit,
            batch_size=batch_size,
            precision=precision,
            clean=result,
        )
    if out is not None:
        from mnistcnn.evaluation.plots import write_confusion_csv
        from mnistcnn.evaluation.report import write_report

        result.report = write_report(out, result, loaded, images)
        write_confusion_csv(Path(out) / "confusion_matrix.csv", result.confusion, result.classes)
    return result
