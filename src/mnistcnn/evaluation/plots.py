"""Figures from training histories and evaluation results.

Each ``plot_*`` function returns a matplotlib ``Figure``; the caller saves it
(:func:`save_figure`), so nothing here writes files except the two ``save``/
``write`` helpers. Uses the non-interactive Agg backend (no display needed).
"""

from __future__ import annotations

import csv
import functools
import io
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mnistcnn._io import atomic_write  # noqa: E402
from mnistcnn._text import short_label


def figure_format(path: str | os.PathLike[str]) -> str:
    """The picture format ``path``'s extension names: ``png``, ``jpg``, ``pdf``, ``svg``, ...

    Raises:
        ValueError: no extension, or one matplotlib cannot write; the message
            lists the ones it can.
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    formats = Figure().canvas.get_supported_filetypes()
    if suffix not in formats:
        what = f"unknown picture format '.{suffix}'" if suffix else "no extension"
        valid = ", ".join(f".{f}" for f in sorted(formats))
        raise ValueError(f"{path}: {what}; name the file with one of {valid}")
    return suffix


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Save ``fig`` in the format of ``path``'s extension (via a temp name, then rename); close it.

    An error or interruption (Ctrl-C) part-way leaves any previous file at
    ``path`` intact and removes the temporary file.

    Raises:
        ValueError: an extension that names no format matplotlib writes
            (:func:`figure_format`); nothing is written.
        OSError: the folder is not writable or the disk is full.
    """
    path = Path(path)
    try:
        fmt = figure_format(path)
    except ValueError:
        plt.close(fig)
        raise

    def write(fh: BinaryIO) -> None:
        with warnings.catch_warnings():
            # a character the font lacks (a file name in a title) is drawn as a box;
            # matplotlib's warning about it is noise to the user
            warnings.filterwarnings("ignore", "Glyph .* missing from", UserWarning)
            fig.savefig(fh, dpi=dpi, bbox_inches="tight", format=fmt)

    try:
        return atomic_write(path, write, suffix="." + fmt)
    finally:
        plt.close(fig)


@functools.lru_cache(maxsize=1)
def _font_codepoints() -> frozenset[int]:
    """Code points the default font (matplotlib's ``font.sans-serif``, DejaVu Sans) draws."""
    from matplotlib import font_manager, ft2font

    path = font_manager.findfont(font_manager.FontProperties())
    return frozenset(ft2font.FT2Font(path).get_charmap())


def renderable(text: str) -> str:
    """``text`` with each character the figure font cannot draw written as ``\\uXXXX``.

    A title naming ``ünïcödé 七.png`` becomes ``ünïcödé \\u4e03.png`` instead of
    showing a box (and matplotlib warning "Glyph ... missing from font").
    """
    known = _font_codepoints()
    return "".join(c if ord(c) in known or c in "\n\t" else ascii(c)[1:-1] for c in text)


def close_figures(figures: Iterable[Figure]) -> None:
    """Close ``figures`` (closing one twice is harmless)."""
    for fig in figures:
        plt.close(fig)


def plot_curves(rows: Sequence[dict[str, Any]], label_smoothing: float = 0.0) -> Figure:
    """Loss (left) and accuracy in percent (right) per epoch, for train, test and val if present.

    ``label_smoothing``: the training loss's smoothing (Szegedy et al. 2016); when
    > 0 the training curve is labelled as that loss, which is not the plain
    cross-entropy the evaluation splits are measured with (nor comparable to it).
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [r["epoch"] for r in rows]
    loss_names = {"train": "train", "test": "test", "val": "val"}
    if label_smoothing > 0:
        loss_names["train"] = f"train (label smoothing {label_smoothing:g})"
    for split, style in (("train", "o-"), ("test", "s-"), ("val", "^--")):
        if f"{split}_loss" not in rows[0]:
            continue
        ax_loss.plot(epochs, [r[f"{split}_loss"] for r in rows], style, label=loss_names[split])
        ax_acc.plot(epochs, [100 * r[f"{split}_accuracy"] for r in rows], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    best = max(rows, key=lambda r: r.get("test_accuracy", 0.0))
    if "test_accuracy" in best:
        ax_acc.annotate(
            f"{100 * best['test_accuracy']:.2f}%",
            (best["epoch"], 100 * best["test_accuracy"]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
        )
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        ax.margins(y=0.15)  # room for the best-accuracy label under the title
        if len(epochs) <= 12:  # one tick per epoch, no fractional epochs (one epoch: "1")
            ax.set_xticks(epochs)
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
        if len(epochs) == 1:
            ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(confusion: torch.Tensor, classes: Sequence[str]) -> Figure:
    """Heat map of an int (C, C) confusion matrix; rows true class, columns predicted."""
    c = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * c, 0.6 * c + 0.8))
    mat = confusion.cpu().numpy()
    ax.imshow(mat, cmap="Blues")
    ax.set_xticks(range(c), classes, rotation=45 if max(map(len, classes)) > 2 else 0, ha="right")
    ax.set_yticks(range(c), classes)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    threshold = mat.max() / 2
    for i in range(c):
        for j in range(c):
            ax.text(
                j,
                i,
                str(mat[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if mat[i, j] > threshold else "black",
            )
    fig.tight_layout()
    return fig


def write_confusion_csv(
    path: str | os.PathLike[str], confusion: torch.Tensor, classes: Sequence[str]
) -> None:
    """CSV with a header row of predicted classes and one row per true class.

    Written via a temporary file and a rename (never half-written; the
    temporary file is removed on an error or Ctrl-C).

    Raises:
        OSError: the folder is not writable or the disk is full.
    """
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["true\\predicted", *classes])
    for name, row in zip(classes, confusion.tolist()):
        writer.writerow([name, *row])
    atomic_write(path, buf.getvalue())


def plot_samples(images: torch.Tensor, titles: Sequence[str], columns: int = 8) -> Figure:
    """A grid of grayscale images with a title each.

    Args:
        images: float (N, 1, H, W) or (N, H, W), values 0..1 (white ink on black, as stored).
        titles: N strings.
    """
    n = len(images)
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    lines = max((t.count("\n") + 1 for t in titles), default=1)
    row_height = 1.4 + 0.15 * lines  # inches: the image and its title lines
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, row_height * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles):
        ax.imshow(image.squeeze(0).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
    fig.tight_layout(h_pad=1.6)  # a gap between a row's images and the next row's titles
    return fig


def plot_per_class_accuracy(
    accuracy: Sequence[float], classes: Sequence[str], overall: float | None = None
) -> Figure:
    """Bars of per-class accuracy (recall) in percent, with the overall accuracy as a line.

    Args:
        accuracy: C fractions in [0, 1] (NaN for a class without test samples: no bar).
        classes: C class names.
        overall: the overall accuracy (0..1), drawn dashed when given.
    """
    c = len(classes)
    fig = Figure(figsize=(max(6.0, 0.7 * c + 2), 4), layout="constrained")
    ax = fig.subplots()
    values = [100 * a for a in accuracy]
    bars = ax.bar(range(c), values, color="tab:blue")
    ax.bar_label(bars, [f"{v:.1f}" for v in values], fontsize=8, padding=-12, color="white")
    long_names = max(map(len, classes)) > 2
    ax.set_xticks(
        range(c), classes, rotation=45 if long_names else 0, ha="right" if long_names else "center"
    )
    shown = [v for v in values if v == v] + ([100 * overall] if overall is not None else [])
    ax.set_ylim(max(0.0, 10 * math.floor((min(shown, default=0.0) - 5) / 10)), 101)
    if overall is not None:  # behind the bars (never across their labels), named at the right
        ax.axhline(100 * overall, ls="--", color="tab:orange", zorder=0.5)
        ax.annotate(
            f"overall\n{100 * overall:.2f}%",
            xy=(1, 100 * overall),
            xycoords=("axes fraction", "data"),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
            color="tab:orange",
        )
    ax.set(xlabel="true class", ylabel="accuracy (recall, %)", title="Accuracy per class")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)  # grid lines behind the bars and their labels
    return fig


def plot_confused_pairs(labels: Sequence[str], counts: Sequence[int], total: int) -> Figure:
    """Horizontal bars of the most-confused (true -> predicted) pairs, most frequent on top.

    Args:
        labels: one text per pair, e.g. ``"4 → 9"``.
        counts: test images of each pair.
        total: all misclassified test images (for the title).
    """
    n = len(labels)
    fig = Figure(figsize=(7, 0.4 * max(n, 1) + 1.4), layout="constrained")
    ax = fig.subplots()
    bars = ax.barh(range(n), counts, color="tab:red")
    ax.bar_label(bars, [str(v) for v in counts], fontsize=8, padding=2)
    ax.set_yticks(range(n), labels)
    ax.invert_yaxis()
    ax.set(
        xlabel="test images",
        ylabel="true → predicted",
        title=f"Most-confused pairs ({total} errors in all)",
    )
    ax.margins(x=0.12)
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_predict_input(
    original: Any,
    pixels: Any,
    probabilities: Any,
    classes: Sequence[str],
    title: str,
    calibrated: bool = True,
    original_size: tuple[int, int] | None = None,
) -> Figure:
    """What ``mnistcnn predict`` did with one picture: original, the 28x28 input, probabilities.

    Args:
        original: the picture as decoded (a Pillow image or an (H, W[, 3|4])
            array; transparency shows the grey axes behind it), or None when
            there is none (an IDX image is used as it is).
        pixels: uint8 (28, 28), 0..255, light ink on black: what the model saw.
        probabilities: float (C,) summing to 1, or None (blank: not shown to the model).
        classes: C class names (shortened as by :func:`mnistcnn._text.short_label`).
        title: the figure's title (file name, prediction).
        calibrated: the probabilities are temperature-scaled (said on the axis).
        original_size: (width, height) of the full picture, for the panel's title.
    """
    import numpy as np

    fig = Figure(figsize=(11, 3.8), layout="constrained")
    ax_org, ax_in, ax_bar = fig.subplots(1, 3, width_ratios=[1, 1, 1.3])
    if original is not None:
        ax_org.set_facecolor("0.6")
        image = np.asarray(original)
        ax_org.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
        w, h = original_size or (image.shape[1], image.shape[0])
        ax_org.set_title(f"original, {w}x{h} px", fontsize=10)
    else:
        ax_org.text(0.5, 0.5, "no original:\nan IDX image,\nused as is", ha="center", va="center")
        ax_org.set_axis_off()
    ax_in.imshow(np.asarray(pixels), cmap="gray", vmin=0, vmax=255)
    seen = "what the model saw" if probabilities is not None else "the input (blank)"
    ax_in.set_title(f"{seen}, 28x28", fontsize=10)
    for ax in (ax_org, ax_in):
        ax.set_xticks([])
        ax.set_yticks([])
    names = [short_label(c) for c in classes]
    if probabilities is None:
        ax_bar.text(0.5, 0.5, "no ink found:\nnot shown to the model", ha="center", va="center")
        ax_bar.set_axis_off()
    else:
        probs = np.asarray(probabilities, dtype=float)
        best = int(probs.argmax())
        colors = ["tab:orange" if i == best else "tab:blue" for i in range(len(names))]
        bars = ax_bar.barh(range(len(names)), probs, color=colors)
        labels = [f"{100 * p:.1f}%" if p >= 0.005 else "" for p in probs]
        ax_bar.bar_label(bars, labels, fontsize=8, padding=2)
        ax_bar.set_yticks(range(len(names)), names)
        ax_bar.invert_yaxis()
        xlabel = "probability (calibrated)" if calibrated else "probability (softmax, uncalibrated)"
        ax_bar.set(xlim=(0, 1.15), xlabel=xlabel, title="class probabilities")
        ax_bar.grid(axis="x", alpha=0.3)
    fig.suptitle(renderable(title))
    return fig
