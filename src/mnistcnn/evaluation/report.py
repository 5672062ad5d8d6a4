"""Interpretation report of a trained model on its test split: figures and ``report.html``.

What a person wants to see after training or evaluating: the training curves,
the test images with the highest loss, the most-confused class pairs, the
accuracy of each class, the confusion matrix, the metrics table and the
configuration, in one page.

:func:`build_report` assembles a :class:`Report` from one
:class:`~mnistcnn.evaluation.Evaluation` (the models are not run again) and
the test images; :func:`save_report` writes its pictures and
``report.html`` (pictures linked relatively, so the folder can be moved whole)::

    report.html  curves.png  worst_errors.png  confused_pairs.png
    per_class_accuracy.png  confusion_matrix.png  [corruption_examples.png]

The page's HTML and tables are written by :mod:`mnistcnn.evaluation.report_html`.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from mnistcnn._text import plural, short_label
from mnistcnn.artifact import TrainedModel
from mnistcnn.evaluation import Evaluation
from mnistcnn.evaluation.report_html import report_page

PathLike = str | os.PathLike[str]
REPORT_NAME = "report.html"


@dataclass(frozen=True)
class WorstError:
    """One high-loss test sample. Probabilities are 0..1; loss is ``-ln p(true)`` in nats."""

    index: int
    true: int
    predicted: int
    prob_true: float
    prob_predicted: float
    loss: float


@dataclass(frozen=True)
class ConfusedPair:
    """``count`` test images of class ``true`` predicted as ``predicted``;
    ``rate`` = count / test images of ``true`` (0..1)."""

    true: int
    predicted: int
    count: int
    rate: float


def worst_errors(probs: torch.Tensor, labels: torch.Tensor, k: int = 24) -> list[WorstError]:
    """The ``k`` samples with the highest cross-entropy loss, highest first.

    Args:
        probs: float (N, C) class probabilities (rows sum to 1).
        labels: int64 (N,) true classes.

    Loss is ``-ln max(p(true), 1e-12)``; ties keep the lower index first. All
    samples compete (a correct but unsure prediction can rank too), but a
    sample with p(true) < 1/2 outranks any correct one with p(true) > 1/2.

    Raises:
        ValueError: shapes do not match.
    """
    if probs.ndim != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(
            f"expected probs (N, C) and labels (N,), got {tuple(probs.shape)} "
            f"and {tuple(labels.shape)}"
        )
    p_true = probs.gather(1, labels.view(-1, 1)).squeeze(1).double()  # (N,)
    loss = -p_true.clamp_min(1e-12).log()
    order = torch.sort(loss, descending=True, stable=True).indices[:k]
    pred = probs.argmax(1)
    return [
        WorstError(
            int(i),
            int(labels[i]),
            int(pred[i]),
            float(p_true[i]),
            float(probs[i, pred[i]]),
            float(loss[i]),
        )
        for i in order.tolist()
    ]


def most_confused_pairs(confusion: torch.Tensor, k: int = 10) -> list[ConfusedPair]:
    """The ``k`` most frequent off-diagonal cells of a confusion matrix, most frequent first.

    Args:
        confusion: int (C, C), rows = true class, columns = predicted class.

    Ties go to the lower (true, predicted) pair; empty cells are left out.
    """
    mat = confusion.long().cpu()
    support = mat.sum(1)
    cells = [
        (-int(mat[t, p]), t, p)
        for t in range(mat.shape[0])
        for p in range(mat.shape[1])
        if t != p and mat[t, p] > 0
    ]
    return [ConfusedPair(t, p, -neg, -neg / int(support[t])) for neg, t, p in sorted(cells)[:k]]


def per_class_accuracy(confusion: torch.Tensor) -> list[float]:
    """Accuracy (recall) of each true class, 0..1: diagonal / row sum (NaN for an empty row)."""
    mat = confusion.double().cpu()
    return (mat.diagonal() / mat.sum(1)).tolist()


@dataclass
class Report:
    """Everything the report shows; ``figures`` maps a PNG file name to its figure
    and ``captions`` the same names to a sentence."""

    title: str
    evaluation: Evaluation
    worst: list[WorstError]
    confused: list[ConfusedPair]
    figures: dict[str, Figure]
    captions: dict[str, str]
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    member_configs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: Sentences shown under the headline (which checkpoint this is, warnings).
    notes: list[str] = field(default_factory=list)

    def html(self) -> str:
        """The report page (UTF-8 HTML); pictures are referenced by their file names."""
        return report_page(self)


def build_report(
    evaluation: Evaluation,
    images: torch.Tensor,
    *,
    title: str,
    config: dict[str, Any] | None = None,
    history: Sequence[dict[str, Any]] | None = None,
    member_configs: Sequence[tuple[str, dict[str, Any]]] = (),
    num_worst: int = 24,
    num_pairs: int = 10,
) -> Report:
    """Assemble a :class:`Report` from one evaluation pass (nothing is run again).

    Args:
        evaluation: the test-set :class:`~mnistcnn.evaluation.Evaluation`.
        images: uint8 (N, H, W) or (N, 1, H, W), the evaluated images (0..255).
        title: the page's heading.
        config: training settings shown as a table.
        history: per-epoch metrics rows (as in metrics.csv); curves when given.
        member_configs: an ensemble's (checkpoint, config) pairs, one column each.
    """
    from mnistcnn.evaluation.plots import (
        plot_confused_pairs,
        plot_confusion_matrix,
        plot_curves,
        plot_per_class_accuracy,
        plot_samples,
    )

    probs, labels, classes = evaluation.probabilities, evaluation.labels, evaluation.classes
    worst = worst_errors(probs, labels, num_worst)
    confused = most_confused_pairs(evaluation.confusion, num_pairs)
    names = [short_label(c) for c in classes]
    figures: dict[str, Figure] = {}
    captions: dict[str, str] = {}
    if history:
        smoothing = float((config or {}).get("label_smoothing") or 0.0)
        figures["curves.png"] = plot_curves(list(history), smoothing)
        captions["curves.png"] = "Training curves: loss and accuracy after each epoch."
    picked = torch.tensor([w.index for w in worst], dtype=torch.long)
    titles = [
        f"#{w.index} true {names[w.true]}\npred {names[w.predicted]} p={w.prob_predicted:.2f}"
        for w in worst
    ]
    figures["worst_errors.png"] = plot_samples(images[picked].float() / 255.0, titles)
    captions["worst_errors.png"] = (
        f"The {plural(len(worst), 'test image')} with the highest loss (-ln p(true class)), "
        "worst first: "
        "test index, true class, predicted class and its probability."
    )
    errors = int(evaluation.confusion.sum() - evaluation.confusion.trace())
    figures["confused_pairs.png"] = plot_confused_pairs(
        [f"{names[c.true]} → {names[c.predicted]}" for c in confused],
        [c.count for c in confused],
        errors,
    )
    captions["confused_pairs.png"] = "The class pairs the model mixes up most (true → predicted)."
    figures["per_class_accuracy.png"] = plot_per_class_accuracy(
        per_class_accuracy(evaluation.confusion), names, evaluation.accuracy
    )
    captions["per_class_accuracy.png"] = "Fraction of each class's test images classified right."
    figures["confusion_matrix.png"] = plot_confusion_matrix(evaluation.confusion, list(classes))
    captions["confusion_matrix.png"] = "Confusion matrix: rows true class, columns predicted."
    if evaluation.corruptions is not None:
        from mnistcnn.evaluation.robustness import EXAMPLES_NAME, plot_corruption_examples

        figures[EXAMPLES_NAME] = plot_corruption_examples(evaluation.corruptions)
        captions[EXAMPLES_NAME] = (
            "The first test images clean and under each MNIST-C corruption (Mu & Gilmer 2019), "
            "with the accuracy on each corrupted copy."
        )
    return Report(
        title,
        evaluation,
        worst,
        confused,
        figures,
        captions,
        dict(config or {}),
        list(history or []),
        list(member_configs),
    )


def models_report(
    evaluation: Evaluation,
    models: Sequence[TrainedModel],
    images: torch.Tensor,
    history: Sequence[dict[str, Any]] | None = None,
) -> Report:
    """The report of ``evaluation``, made by ``models`` (one, or an ensemble), on ``images``.

    ``history``: the per-epoch rows for the curves; by default, for a single
    model loaded from a checkpoint, its run's ``metrics.csv`` if next to it,
    else the checkpoint's own history. An ensemble's configuration section has
    one column per member.
    """
    first = models[0]
    ckpt = first.checkpoint
    if history is None and len(models) == 1 and ckpt is not None:
        history = _history_of(ckpt.path, ckpt.history)
    single = len(models) == 1
    what = first.model_name if single else f"ensemble of {len(models)} checkpoints"
    members = [(str(m.checkpoint.path), dict(m.checkpoint.config)) for m in models if m.checkpoint]
    return build_report(
        evaluation,
        images,
        title=f"mnistcnn report: {what} on {evaluation.dataset}",
        config=dict(ckpt.config) if single and ckpt is not None else None,
        history=history,
        member_configs=members if not single else (),
    )


def write_report(
    folder: PathLike,
    evaluation: Evaluation,
    models: Sequence[TrainedModel],
    images: torch.Tensor,
    history: Sequence[dict[str, Any]] | None = None,
) -> Path:
    """:func:`models_report` saved into ``folder`` by :func:`save_report`; the path of
    ``report.html``.

    Raises:
        OSError: ``folder`` cannot be created or written (disk full).
    """
    return save_report(models_report(evaluation, models, images, history), folder)


def report_is_complete(folder: PathLike) -> bool:
    """True if ``folder`` holds a ``report.html`` and every picture it shows.

    :func:`save_report` writes the pictures first and the page last, each
    file whole (temp file, then rename), so a report cut short (Ctrl-C, a
    kill) lacks its ``report.html`` or, where one was there before, one of
    the pictures the page references. An unreadable page counts as missing.
    """
    import re

    page = Path(folder) / REPORT_NAME
    try:
        text = page.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    pictures = re.findall(r'<img src="([^"]+)"', text)
    return all((Path(folder) / html.unescape(src)).is_file() for src in pictures)


def _history_of(checkpoint: Path, fallback: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from mnistcnn.engine.run_dir import read_metrics

    csv_path = checkpoint.parent / "metrics.csv"
    if csv_path.is_file():
        try:
            return list(read_metrics(csv_path))
        except (OSError, ValueError, KeyError):
            pass
    return fallback


def save_report(report: Report, folder: PathLike) -> Path:
    """Write the report's PNGs and ``report.html`` into ``folder``; return the HTML's path.

    Figures are closed once saved. Existing files of the same names are replaced
    (each via a temporary file and a rename); an interruption (Ctrl-C) or an
    error part-way leaves each file either as it was or complete, and removes
    the temporary file.

    Raises:
        OSError: ``folder`` cannot be created or written (disk full).
    """
    from mnistcnn._io import atomic_write
    from mnistcnn.evaluation.plots import close_figures, save_figure

    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for file_name, fig in report.figures.items():
            save_figure(fig, out / file_name)
        path = atomic_write(out / REPORT_NAME, report.html())
    finally:
        close_figures(report.figures.values())  # the unsaved ones too
    return path
