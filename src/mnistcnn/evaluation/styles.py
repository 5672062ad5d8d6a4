"""Accuracy on digits written in other styles: the held-out styles set, style by style.

The set is :func:`mnistcnn.data.styles.styles_set`: digits drawn from the
*evaluation* variants of the stroke templates (shapes that training with
``style_digits`` never draws) with seeds of their own, ``per_style`` per style
(a flagged 1, a crossed 7, an open 4, a 9 with a straight or curled tail, a
looped 2, a slashed 0; all ten digits with a thin and a thick pen, and plain).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from mnistcnn.artifact import TrainedModel
from mnistcnn.data.styles import EVAL_SEED, styles_set


@dataclass(frozen=True)
class StyleScore:
    """One style of the set.

    Attributes:
        name: the style (:data:`mnistcnn.data.styles.STYLES`).
        count: its pictures.
        accuracy: share read right (top-1), 0..1.
        unsure: share whose calibrated top probability is under the threshold, 0..1.
        mistakes: the wrong answers, as ``{"<true>-><answer>": count}``, most frequent first.
    """

    name: str
    count: int
    accuracy: float
    unsure: float
    mistakes: dict[str, int]


@dataclass(frozen=True)
class StylesReport:
    """:func:`styles_accuracy`'s result; ``mean`` is the mean of the styles' accuracies."""

    per_style: int
    seed: int
    threshold: float
    scores: list[StyleScore]

    @property
    def mean(self) -> float:
        """Mean accuracy over the styles (each style weighs the same), 0..1."""
        return sum(s.accuracy for s in self.scores) / len(self.scores)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready values."""
        return {**asdict(self), "mean": self.mean}


def styles_accuracy(
    model: TrainedModel,
    *,
    per_style: int = 200,
    seed: int = EVAL_SEED,
    threshold: float = 0.5,
    batch_size: int = 1000,
) -> StylesReport:
    """Top-1 accuracy and unsure share of ``model`` on every style of the held-out styles set.

    Args:
        model: a digit model (ten classes, 28x28 input), on its device.
        per_style: pictures per style (>= 1; drawing takes about 5 ms a picture, once per
            process).
        seed: the set's seed (:data:`mnistcnn.data.styles.EVAL_SEED` by default).
        threshold: ``predict``'s threshold on the calibrated top probability, 0..1.
        batch_size: pictures per forward pass (does not change the result).

    Raises:
        ValueError: ``per_style`` < 1, or a model without ten classes.
    """
    if len(model.classes) != 10:
        raise ValueError(
            f"the styles set is digits 0-9; the model has {len(model.classes)} classes"
        )
    data = styles_set(per_style, seed)
    probs = torch.cat(
        [
            model.probabilities(data.images[i : i + batch_size]).cpu()
            for i in range(0, len(data.images), batch_size)
        ]
    )  # (N, 10)
    top, answer = probs.max(1)
    scores = []
    for name, mask in data.groups():
        truth, said = data.labels[mask], answer[mask]
        wrong = truth != said
        pairs: dict[str, int] = {}
        for t, a in zip(truth[wrong].tolist(), said[wrong].tolist(), strict=True):
            pairs[f"{t}->{a}"] = pairs.get(f"{t}->{a}", 0) + 1
        mistakes = dict(sorted(pairs.items(), key=lambda kv: -kv[1]))
        unsure = float((top[mask] < threshold).float().mean())
        scores.append(
            StyleScore(name, int(mask.sum()), float((~wrong).float().mean()), unsure, mistakes)
        )
    return StylesReport(per_style, seed, threshold, scores)
