"""Accuracy under MNIST-C's 15 corruptions (``mnistcnn evaluate --corruptions``).

Each corruption of :mod:`mnistcnn.data.corruptions` makes a copy of the test
split (cached with checksums by :mod:`mnistcnn.data.corruption_cache`); the
models make one pass over each copy through
:func:`~mnistcnn.evaluation.core.evaluate_models`, the same pass as the clean
evaluation. The result holds per-corruption accuracy and loss, their mean
(MNIST-C's summary: the mean over corruptions, Mu & Gilmer 2019,
arXiv:1906.02337) and the worst corruption, and a few example images per
corruption for the picture :func:`plot_corruption_examples` draws.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from mnistcnn.artifact import TrainedModel
from mnistcnn.evaluation.core import Evaluation, evaluate_models

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]

#: The examples picture's file name, written beside ``report.html``.
EXAMPLES_NAME = "corruption_examples.png"


@dataclass(frozen=True)
class CorruptionScore:
    """One corruption's figures: ``accuracy`` 0..1, ``loss`` in nats per image, over
    ``num_samples`` images; ``cached`` if its images came from the cache; ``sha256`` of
    the cached ``.npy``; ``seconds`` to build or read them."""

    name: str
    accuracy: float
    loss: float
    num_samples: int
    cached: bool
    sha256: str
    seconds: float

    @property
    def error(self) -> float:
        """1 - accuracy."""
        return 1.0 - self.accuracy


@dataclass
class RobustnessResult:
    """The corruption benchmark of one model (or an ensemble).

    Attributes:
        dataset: the test split corrupted.
        seed: the corruptions' seed.
        num_samples: images per corruption (the first ones of the split).
        clean_accuracy: accuracy on the same clean images, 0..1.
        scores: one per corruption, in the order asked.
        cache: the folder of the cached copies.
        examples: uint8 (1 + len(scores), k, 28, 28): the first k clean images,
            then the same images under each corruption (not in :meth:`to_dict`).
    """

    dataset: str
    seed: int
    num_samples: int
    clean_accuracy: float
    scores: list[CorruptionScore]
    cache: str
    examples: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 28, 28), np.uint8))

    @property
    def mean_accuracy(self) -> float:
        """Mean accuracy over the corruptions, 0..1."""
        return float(np.mean([s.accuracy for s in self.scores]))

    @property
    def worst(self) -> CorruptionScore:
        """The corruption with the lowest accuracy (the first of equals)."""
        return min(self.scores, key=lambda s: s.accuracy)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values: each corruption's figures, the mean and the worst."""
        return {
            "dataset": self.dataset,
            "seed": self.seed,
            "num_samples": self.num_samples,
            "clean_accuracy": self.clean_accuracy,
            "mean_accuracy": self.mean_accuracy,
            "mean_error": 1.0 - self.mean_accuracy,
            "worst": {"name": self.worst.name, "accuracy": self.worst.accuracy},
            "corruptions": [{**asdict(s), "error": s.error} for s in self.scores],
            "cache": self.cache,
        }


def evaluate_corruptions(
    models: Sequence[TrainedModel],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    names: Sequence[str],
    dataset: str,
    root: PathLike | None = None,
    seed: int = 0,
    limit: int | None = None,
    batch_size: int = 1000,
    precision: str | None = None,
    clean: Evaluation | None = None,
    num_examples: int = 8,
) -> RobustnessResult:
    """Accuracy of ``models`` on each corrupted copy of ``images``: one pass per copy.

    Args:
        models: one model or an ensemble (averaged probabilities), as
            :func:`~mnistcnn.evaluation.core.evaluate_models` takes them.
        images: uint8 (N, 28, 28) clean test images, 0..255; labels: int64 (N,).
        names: corruptions of :data:`~mnistcnn.data.corruptions.CORRUPTIONS`.
        dataset: the split's dataset (names the cache folder ``<root>/<dataset>-c``).
        root: the data root.
        seed: the corruptions' seed (>= 0).
        limit: evaluate the first ``limit`` images only (default: all N).
        clean: the clean evaluation of the same images, if already made (its
            accuracy is reused when it covers the same images).
        num_examples: clean/corrupted image pairs kept for the picture.

    Raises:
        SettingError: an unknown corruption, a negative seed, ``limit`` < 1.
        ValueError: as :func:`~mnistcnn.evaluation.core.evaluate_models`.
    """
    from mnistcnn.data.corruption_cache import cache_folder, corrupted_images
    from mnistcnn.errors import SettingError

    if limit is not None and limit < 1:
        raise SettingError(
            f"corruption_limit must be >= 1, got {limit}", setting="corruption_limit"
        )
    n = len(images) if limit is None else min(limit, len(images))
    source = images.cpu().numpy()  # all of them: the cache checks what it was made from
    labels = labels[:n]
    kw: dict[str, Any] = {"batch_size": batch_size, "precision": precision, "dataset": dataset}
    if clean is None or clean.num_samples != n:
        clean = evaluate_models(models, images[:n], labels, **kw)
    k = min(num_examples, n)
    examples = [source[:k]]  # the clean ones first
    scores = []
    for name in names:
        copy = corrupted_images(source, name, dataset=dataset, root=root, seed=seed, count=n)
        ev = evaluate_models(models, torch.from_numpy(copy.images), labels, **kw)
        scores.append(
            CorruptionScore(
                name, ev.accuracy, ev.loss, n, not copy.built, copy.sha256, copy.seconds
            )
        )
        examples.append(copy.images[:k])
        log.info("%s: accuracy %.4f (%d images)", name, ev.accuracy, n)
    return RobustnessResult(
        dataset,
        seed,
        n,
        clean.accuracy,
        scores,
        str(cache_folder(dataset, root)),
        np.stack(examples),
    )


def plot_corruption_examples(result: RobustnessResult) -> Figure:
    """One row per corruption (the clean images first) of the same test images, each row
    labelled with the corruption's accuracy: one mosaic image (2-px light blue gaps)."""
    rows, k = result.examples.shape[:2]
    names = ["clean", *(s.name for s in result.scores)]
    accuracies = [result.clean_accuracy, *(s.accuracy for s in result.scores)]
    side, gap = 28, 2
    height, width = rows * (side + gap) - gap, k * (side + gap) - gap
    mosaic = np.empty((height, width, 3))  # RGB: light blue gaps, unlike any grey pixel
    mosaic[:] = (0.75, 0.85, 1.0)
    for r in range(rows):
        for c in range(k):
            top, left = r * (side + gap), c * (side + gap)
            tile = result.examples[r, c, :, :, None] / 255.0  # (28, 28, 1)
            mosaic[top : top + side, left : left + side] = tile
    fig = Figure(figsize=(0.55 * k + 2.0, 0.55 * rows + 0.3), layout="constrained")
    ax = fig.subplots()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    centres = [r * (side + gap) + side / 2 for r in range(rows)]
    ax.set_yticks(centres, [f"{n}  {100 * a:.1f}%" for n, a in zip(names, accuracies)])
    ax.tick_params(axis="y", length=0, labelsize=9)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig
