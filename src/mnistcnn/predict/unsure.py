"""Which threshold ``predict`` uses by default for a checkpoint: the "unsure" rule.

``predict`` calls a picture unsure when its calibrated top probability (the
maximum softmax probability, MSP: Hendrycks & Gimpel 2017) is below a
threshold: 0.5 by default. A model trained with outlier exposure
(``TrainConfig.outlier_exposure`` > 0, recipe ``robust``; Hendrycks et al. 2019)
gives non-digits an almost uniform softmax (top probability near 0.1), so a
lower threshold, :data:`OUTLIER_EXPOSURE_THRESHOLD` = 0.4, keeps them unsure
while answering more digits: measured on the ``robust`` recipe's seed-0 run
(MNIST test images 5,000-9,999 and 1,000 generated drawings, letters and noise
images with seed 1, which ``evaluate --ood`` does not use), 0.4 leaves 0.34 % of
the digits unsure (0.58 % at 0.5) and 100 % of the drawings, 99.9 % of the
letters and 100 % of the noise images unsure (docs/robustness.md).
"""

from __future__ import annotations

from mnistcnn.artifact import Checkpoint

#: The default threshold for a checkpoint trained with outlier exposure.
OUTLIER_EXPOSURE_THRESHOLD = 0.4


def unsure_threshold(checkpoint: Checkpoint | None, default: float) -> float:
    """The default unsure threshold of ``checkpoint``: 0.4 after outlier exposure, else ``default``.

    Read from the training settings the checkpoint records (``outlier_exposure``);
    a checkpoint without them (another tool's, an older version's) gets ``default``.
    """
    config = checkpoint.config if checkpoint is not None else {}
    try:
        exposed = float(config.get("outlier_exposure") or 0.0) > 0
    except (TypeError, ValueError):
        exposed = False
    return OUTLIER_EXPOSURE_THRESHOLD if exposed else default
