"""The pictures of ``mnistcnn explain activations``: one input with its class
probabilities, grids of feature maps or kernels, and a saliency map over the input.

Each function returns a matplotlib ``Figure`` (no pyplot state); the caller
saves it with :func:`mnistcnn.evaluation.plots.save_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from matplotlib.figure import Figure

from mnistcnn._text import short_label


def plot_prediction(
    pixels: torch.Tensor, probabilities: torch.Tensor, classes: Sequence[str], title: str
) -> Figure:
    """One input image beside bars of its class probabilities (the most probable highlighted).

    Args:
        pixels: float (H, W) or (1, H, W), values 0..1 (white ink on black).
        probabilities: float (C,) summing to 1.
        classes: C class names.
    """
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax_img, ax_bar = fig.subplots(1, 2, width_ratios=[1, 1.4])
    image = pixels.squeeze().cpu().numpy()
    h, w = image.shape
    ax_img.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax_img.set_title(f"input, {h}x{w}, pixels 0..1", fontsize=10)
    ax_img.set_xticks([0, w - 1])
    ax_img.set_yticks([0, h - 1])
    best = int(probabilities.argmax())
    colors = ["tab:orange" if i == best else "tab:blue" for i in range(len(classes))]
    probs = probabilities.cpu().numpy()
    bars = ax_bar.barh(range(len(classes)), probs, color=colors)
    ax_bar.bar_label(bars, [f"{p:.3f}" if p >= 0.01 else "" for p in probs], fontsize=8, padding=2)
    ax_bar.set_yticks(range(len(classes)), [short_label(c) for c in classes])
    ax_bar.invert_yaxis()
    ax_bar.set(xlim=(0, 1.1), xlabel="probability (softmax)", title="class probabilities")
    ax_bar.grid(axis="x", alpha=0.3)
    fig.suptitle(title)
    return fig


def plot_map_grid(arrays: torch.Tensor, title: str, *, prefix: str, label: str) -> Figure:
    """A grid of 2-D maps (feature maps, kernels) on one colour scale symmetric around 0.

    Red is positive, blue negative, white 0; one scale for all maps so they can
    be compared. Five columns up to 20 maps, else about square.

    Args:
        arrays: float (N, H, W), N >= 1.
        prefix: each map's title is ``f"{prefix} {i}"``.
        label: the colour bar's label.
    """
    n = len(arrays)
    cols = min(5, n) if n <= 20 else math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(1.3 * cols + 1.2, 1.4 * rows + 0.9), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    bound = float(arrays.abs().max()) or 1.0
    image = None
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            data = arrays[i].cpu().numpy()
            image = ax.imshow(data, cmap="RdBu_r", vmin=-bound, vmax=bound)
            ax.set_title(f"{prefix} {i}", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label=label)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_saliency(
    pixels: torch.Tensor, saliency: torch.Tensor, what: str, *, signed: bool, title: str
) -> Figure:
    """Input, saliency map, and the saliency over the input (opaque where strong).

    Args:
        pixels: float (H, W) or (1, H, W), values 0..1.
        saliency: float (H, W); ``signed``: diverging colours around 0 (else
            non-negative, "hot" colours).
        what: what the saliency values are, for the map's title.
    """
    import numpy as np

    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    image = pixels.squeeze().cpu().numpy()
    sal = saliency.cpu().numpy()
    hi = float(abs(sal).max()) or 1.0
    scale: dict[str, Any] = (
        {"cmap": "RdBu_r", "vmin": -hi, "vmax": hi}
        if signed
        else {"cmap": "hot", "vmin": 0.0, "vmax": hi}
    )
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("input")
    shown = axes[1].imshow(sal, **scale)
    axes[1].set_title(f"saliency: {what}", fontsize=10)
    fig.colorbar(shown, ax=axes[1], shrink=0.8)
    axes[2].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[2].imshow(sal, alpha=np.clip(0.9 * abs(sal) / hi, 0, 1), **scale)
    axes[2].set_title("saliency over the input")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    return fig
