"""Evaluate a model on your own labelled pictures: ``DIR/<class>/*`` (torchvision's ImageFolder).

Every picture goes through the same preparation as ``mnistcnn predict``
(:class:`~mnistcnn.predict.Predictor`), so the accuracy is the one ``predict``
would have on them. The report shows the worst errors twice: as the pictures
you gave and as the 28x28 images the model saw.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from mnistcnn.artifact import TrainedModel
from mnistcnn.errors import SettingError
from mnistcnn.evaluation.core import Evaluation, summarize
from mnistcnn.prepare import InvertMode

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


@dataclass
class PictureEvaluation:
    """The result of :func:`evaluate_pictures`.

    Attributes:
        evaluation: figures over the pictures that could be read (no ink: a
            uniform probability row, so they count as errors).
        inputs: uint8 (N, 28, 28): what the model saw, in ``paths`` order.
        paths: the N pictures evaluated.
        previews: the N decoded pictures (longest side at most 256 px).
        skipped: ``(path, reason)`` of files that could not be read as pictures.
        blank: how many pictures had no ink.
    """

    evaluation: Evaluation
    inputs: torch.Tensor
    paths: list[str]
    previews: list[Image.Image | None] = field(default_factory=list, repr=False)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    blank: int = 0


def class_folders(folder: PathLike, classes: list[str]) -> list[tuple[Path, int]]:
    """``folder``'s class subfolders, each with the model's class index it names.

    A subfolder names a class by its :func:`~mnistcnn._text.class_key`: the
    class's short label (``7`` for ``7 - seven``, or the full name), letter case
    ignored. Hidden folders are skipped.

    Raises:
        SettingError: ``folder`` has no subfolders, or one names no class of the
            model (the message lists the names that would).
    """
    from mnistcnn._text import class_key, short_label

    root = Path(folder)
    names = {class_key(c): i for i, c in enumerate(classes)}
    subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subs:
        raise SettingError(
            f"{root}: no class folders; lay pictures out as {root}/<class>/<picture> "
            "(torchvision's ImageFolder layout)",
            setting="images",
        )
    out = []
    for sub in subs:
        index = names.get(class_key(sub.name))
        if index is None:
            valid = ", ".join(short_label(c) for c in classes)
            raise SettingError(
                f"{sub}: the folder name {sub.name!r} is none of the model's classes ({valid})",
                setting="images",
            )
        out.append((sub, index))
    return out


def evaluate_pictures(
    model: TrainedModel,
    folder: PathLike,
    *,
    device: str = "cpu",
    invert: InvertMode = "auto",
) -> PictureEvaluation:
    """Accuracy, per-class metrics and confusion matrix of ``model`` on ``folder/<class>/*``.

    Args:
        model: the trained model (:func:`mnistcnn.load`).
        folder: one subfolder per class (see :func:`class_folders`); every
            file below it, in sorted order, is a picture of that class.
        device: where the model runs.
        invert: polarity handling, as ``mnistcnn predict --invert``.

    Returns:
        A :class:`PictureEvaluation`; probabilities are the plain softmax
        (temperature 1, as ``evaluate`` reports them).

    Raises:
        SettingError: a bad folder layout, or no readable picture at all.
    """
    from mnistcnn.predict.predictor import Predictor

    labelled = [
        (str(p), index)
        for sub, index in class_folders(folder, model.classes)
        for p in sorted(sub.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    ]
    predictor = Predictor(model, temperature=1.0, device=device, invert=invert)
    preds = predictor.predict([p for p, _ in labelled], keep_previews=True)
    c = len(model.classes)
    rows, labels, inputs, paths, previews, skipped, blank = [], [], [], [], [], [], 0
    for pred, (path, index) in zip(preds, labelled):
        if pred.error is not None or pred.input is None:
            skipped.append((path, pred.error or "no picture"))
            continue
        if pred.probabilities is None:  # no ink: no class named, an error
            blank += 1
            rows.append(np.full(c, 1.0 / c, np.float32))
        else:
            rows.append(pred.probabilities.astype(np.float32))
        labels.append(index)
        inputs.append(pred.input)
        paths.append(path)
        previews.append(pred.preview)
    for path, reason in skipped:
        log.info("%s: skipped: %s", path, reason)  # listed in the result (the CLI prints them)
    if not rows:
        raise SettingError(f"{folder}: no readable picture in its class folders", setting="images")
    probs = torch.from_numpy(np.stack(rows))
    evaluation = summarize(probs, torch.tensor(labels), model.classes)
    evaluation.dataset = f"pictures in {folder}"
    evaluation.checkpoints = [str(model.checkpoint.path)] if model.checkpoint else [""]
    evaluation.precision = "fp32"
    images = torch.from_numpy(np.stack(inputs))
    return PictureEvaluation(evaluation, images, paths, previews, skipped, blank)


def write_pictures_report(result: PictureEvaluation, model: TrainedModel, folder: PathLike) -> Path:
    """``report.html`` of a :class:`PictureEvaluation` in ``folder``, with the worst errors
    also shown as the pictures given (``worst_errors_pictures.png``); returns its path.

    Raises:
        OSError: ``folder`` cannot be written.
    """
    from mnistcnn.evaluation.plots import write_confusion_csv
    from mnistcnn.evaluation.report import models_report, save_report, worst_errors

    out = Path(folder)
    report = models_report(result.evaluation, [model], result.inputs, history=[])
    worst = worst_errors(result.evaluation.probabilities, result.evaluation.labels, 24)
    if worst:
        from mnistcnn.predict.prediction import short_label

        short = [short_label(c) for c in result.evaluation.classes]
        names = [
            f"#{w.index} {Path(result.paths[w.index]).name[:16]}\n"
            f"true {short[w.true]} pred {short[w.predicted]}"
            for w in worst
        ]
        shown = [result.previews[w.index] for w in worst]
        figures = {}
        for name, figure in report.figures.items():  # right after the 28x28 ones
            figures[name] = figure
            if name == "worst_errors.png":
                figures["worst_errors_pictures.png"] = _pictures_figure(shown, names)
        report.figures = figures
        report.captions["worst_errors_pictures.png"] = (
            "The same pictures as given (above: the 28x28 each became, as the model saw it)."
        )
    path = save_report(report, out)
    ev = result.evaluation
    write_confusion_csv(out / "confusion_matrix.csv", ev.confusion, ev.classes)
    return path


def _pictures_figure(pictures: list[Image.Image | None], titles: list[str]) -> Figure:
    """A grid of the given pictures (as decoded, in colour) with their file names."""
    import matplotlib.pyplot as plt

    cols = min(8, len(pictures))
    rows = (len(pictures) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, picture, title in zip(axes.flat, pictures, titles):
        if picture is not None:
            ax.imshow(np.asarray(picture.convert("RGB")))
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    return fig
