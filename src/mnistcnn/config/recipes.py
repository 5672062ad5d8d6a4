"""Named starting points for a training run: :data:`RECIPES` and :func:`recipe_config`."""

from __future__ import annotations

from typing import Any

from mnistcnn.config.training import TrainConfig
from mnistcnn.errors import SettingError

#: Named starting points (``mnistcnn train --recipe NAME``); flags override any setting.
#:
#: * ``tutorial``: the seed tutorial's setup, unchanged forever (the dataclass defaults).
#: * ``fast``: the shortest whole ``mnistcnn train`` command to 99.0% MNIST test accuracy
#:   on a small CPU (``benchmarks/bench_time_to_accuracy.py --whole-process``): the small
#:   ``s2dcnn`` (a space-to-depth stem, then three 3x3 convolutions) for one epoch, Adam
#:   with a one-cycle schedule, label smoothing, bf16 autocast, channels_last; no report
#:   at the end (``--report`` or a later ``--resume`` writes it). The network, batch
#:   size and learning rate were chosen on 5,000 images held out of the training split,
#:   never on the test split (the candidates and their validation figures are in
#:   ``benchmarks/README.md``, "Time to 99 %").
#: * ``best``: the highest single-model accuracy in about 30 minutes of a 2-core CPU:
#:   ``bncnn`` (BatchNorm), batched random affine augmentation, label smoothing 0.1,
#:   SGD + momentum with a one-cycle schedule and weight decay, bf16 autocast. Reported
#:   at the final epoch (no selection on test). Weight EMA is off: with decay 0.999 the
#:   average lagged the annealed weights (99.57% vs 99.73% on MNIST, seed 0); set
#:   ``ema_decay`` to try it.
#: * ``best-fashion``: ``best`` for clothing (Fashion-MNIST by default): mirrors,
#:   shifts, zooms and random erasing instead of rotations (``affine-flip-erase``; a
#:   rotated shirt is rare, a mirrored one common), 20 epochs (about 20 minutes on one
#:   core). The wider ``bncnn-wide`` for 15 epochs did no better (benchmarks/README.md).
#: * ``robust``: the model to use for ``predict`` and ``serve``: ``best`` with the
#:   ``robust`` augmentation (stroke width, elastic distortion, slant, scale, shift, blur,
#:   contrast, noise: mnistcnn.data.augment_robust) and outlier exposure (weight 0.5, 64
#:   non-digits per step from Fashion-MNIST's train split, drawings, letters and noise:
#:   mnistcnn.data.outlier_pool), so that ``predict`` calls non-digits unsure. A step costs
#:   about twice a ``best`` step, hence 6 epochs (docs/robustness.md has the figures).
#: * ``robust-styles``: ``robust`` that also reads digits as writers outside MNIST's write
#:   them: 26 generated digits of other styles (a fifth of the batch; crossed 7, flagged 1,
#:   open 4, looped 2, slashed 0, 9 with a straight or curled tail, thin and thick pens:
#:   mnistcnn.data.styles) added to every batch of 128 (docs/robustness.md has the figures).
RECIPES: dict[str, dict[str, Any]] = {
    "tutorial": {},
    "fast": {
        "model": "s2dcnn",
        "epochs": 1,
        "batch_size": 256,
        "eval_batch_size": 2000,
        "lr": 0.045,
        "optimizer": "adam",
        "scheduler": "onecycle",
        "warmup_fraction": 0.25,
        "label_smoothing": 0.1,
        "normalize": True,
        "precision": "bf16",
        "channels_last": True,
        "report": False,
    },
    "best": {
        "model": "bncnn",
        "epochs": 15,
        "batch_size": 128,
        "lr": 0.1,
        "optimizer": "sgd",
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "scheduler": "onecycle",
        "warmup_fraction": 0.2,
        "label_smoothing": 0.1,
        "normalize": True,
        "augment": "affine",
        "aug_degrees": 10.0,
        "aug_translate": 0.1,
        "aug_scale": 0.1,
        "ema_decay": 0.0,
        "precision": "bf16",
        "channels_last": True,
    },
}
RECIPES["best-fashion"] = {
    **RECIPES["best"],
    "dataset": "fashion-mnist",
    "epochs": 20,
    "augment": "affine-flip-erase",
    "aug_degrees": 0.0,
}
RECIPES["robust"] = {
    **RECIPES["best"],
    "epochs": 6,
    "augment": "robust",
    "aug_degrees": 12.0,
    "aug_scale": 0.15,
    "outlier_exposure": 0.5,
    "outliers": "fashion-mnist,drawings,letters,noise",
    "outlier_batch_size": 64,
}
RECIPES["robust-styles"] = {**RECIPES["robust"], "style_digits": 0.2}


def recipe_config(name: str, **overrides: Any) -> TrainConfig:
    """The :class:`TrainConfig` of recipe ``name`` with ``overrides`` applied.

    Overrides whose value is ``None`` are ignored (unset CLI flags).

    Raises:
        SettingError: (a ``ValueError``) unknown recipe name (the message lists the valid ones) or
            an invalid setting.
    """
    if name not in RECIPES:
        raise SettingError(
            f"unknown recipe {name!r}; valid recipes: {', '.join(sorted(RECIPES))}",
            setting="recipe",
        )
    values: dict[str, Any] = {"recipe": name, **RECIPES[name]}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)
