"""The outlier-exposure settings of a training run: :class:`OutlierSettings`, a base of
:class:`~mnistcnn.config.training.TrainConfig` (kept apart so that each file stays short)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mnistcnn.config.settings import setting

#: The outlier kinds training can use (mnistcnn.data.outlier_pool).
OUTLIER_KINDS = ("fashion-mnist", "drawings", "letters", "noise")


@dataclass(frozen=True)
class OutlierSettings:
    """Outlier exposure (Hendrycks, Mazeika, Dietterich 2019; mnistcnn.engine.outlier_exposure).

    Attributes:
        outlier_exposure: weight of the outlier-exposure term, >= 0 (the paper: 0.5); 0: off.
        outliers: comma-separated outlier kinds (:data:`OUTLIER_KINDS`).
        outlier_batch_size: outliers added to every training batch (>= 1).
        outlier_count: generated pictures per generated outlier kind (>= 1).
    """

    outlier_exposure: float = setting(
        0.0,
        help="Weight of outlier exposure (Hendrycks et al. 2019; 0.5 in the paper): every step "
        "also trains on non-digit images (--outliers) towards a uniform softmax, so that "
        "predict calls them unsure. 0: off. [recipe: 0]",
        math=True,
        min=0,
    )
    outliers: str = setting(
        "fashion-mnist,drawings,letters,noise",
        help="Outlier kinds of --outlier-exposure, comma-separated: fashion-mnist (its train "
        "split), drawings, letters, noise (generated).",
        math=True,
        math_if=lambda c: c.outlier_exposure > 0,
    )
    outlier_batch_size: int = setting(
        64,
        help="Outlier images added to every step of --outlier-exposure.",
        math=True,
        math_if=lambda c: c.outlier_exposure > 0,
        cli=False,
        min=1,
    )
    outlier_count: int = setting(
        3000,
        help="Generated pictures per outlier kind (drawings, letters, noise).",
        math=True,
        math_if=lambda c: c.outlier_exposure > 0,
        cli=False,
        min=1,
    )

    def _outlier_problems(self) -> list[str]:
        """Problems with the outlier-exposure settings."""
        problems = []
        if not (math.isfinite(self.outlier_exposure) and self.outlier_exposure >= 0):
            problems.append(
                f"outlier_exposure must be a finite number >= 0, got {self.outlier_exposure}"
            )
        kinds = [k.strip() for k in self.outliers.split(",") if k.strip()]
        unknown = [k for k in kinds if k not in OUTLIER_KINDS]
        if self.outlier_exposure > 0 and (unknown or not kinds):
            problems.append(
                f"outliers must name kinds from {', '.join(OUTLIER_KINDS)}, got {self.outliers!r}"
            )
        if self.outlier_exposure > 0 and getattr(self, "dataset", None) in kinds:
            problems.append(
                f"outliers include the training dataset {getattr(self, 'dataset', None)}"
            )
        if self.outlier_batch_size < 1:
            problems.append(f"outlier_batch_size must be >= 1, got {self.outlier_batch_size}")
        if self.outlier_count < 1:
            problems.append(f"outlier_count must be >= 1, got {self.outlier_count}")
        return problems
