"""Adapting a model to a batch of pictures without labels: AdaBN and TENT.

When many pictures come from one source (one writer, one scanner, one form),
their statistics differ from the training set's in the same way, and a model
with BatchNorm can be brought closer to them without any label:

* **adabn** (Li, Wang, Shi, Liu, Hou 2016, "Revisiting Batch Normalization For
  Practical Domain Adaptation", arXiv:1603.04779): every BatchNorm layer's
  running mean and variance are re-estimated on the batch (one pass in train
  mode, the cumulative average over the passes). As in Schneider et al. 2020
  ("Improving robustness against common corruptions by covariate shift
  adaptation", NeurIPS, section 3), the batch's statistics are mixed with the
  training ones, ``stat = (prior * train + n * batch) / (prior + n)`` for a
  batch of ``n`` pictures, so that a small batch moves them little
  (``prior`` 0: the batch's alone, AdaBN as published).
* **tent** (Wang, Shelhamer, Liu, Olshausen, Darrell, ICLR 2021, "Tent: Fully
  Test-Time Adaptation by Entropy Minimization", section 3): the BatchNorm
  affine parameters (weight and bias; nothing else) take ``steps`` passes of
  Adam (lr 1e-3, the paper's) over the batch in mini-batches, minimising the
  mean entropy of the softmax, BatchNorm normalising with each mini-batch's
  own statistics; then the running statistics are re-estimated as ``adabn``.

The model given is never changed: :func:`adapt` returns an adapted **copy** in
eval mode, and nothing is written to its checkpoint file. Fewer than
:data:`MIN_PICTURES` pictures adapt nothing (a single picture has no
statistics of a source): the copy answers exactly as the model does.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from mnistcnn.artifact import TrainedModel
from mnistcnn.errors import SettingError
from mnistcnn.predict.prediction import Prediction
from mnistcnn.predict.predictor import Predictor
from mnistcnn.predict.reader import Reader
from mnistcnn.predict.reading import Reading

log = logging.getLogger(__name__)

#: The adaptation methods :func:`adapt` knows.
ADAPT_METHODS = ("adabn", "tent")
#: Fewer pictures than this adapt nothing.
MIN_PICTURES = 2
#: Weight of the training statistics, in pictures (Schneider et al. 2020's ``N``); 0: AdaBN.
DEFAULT_PRIOR = 16

_BN = nn.modules.batchnorm._BatchNorm


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``model`` that keep running statistics (in module order)."""
    return [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]


def _as_batch(pictures: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) / (N, 1, 28, 28) 0..255, or float in [0, 1] -> float32 (N, 1, H, W)."""
    x = torch.as_tensor(np.asarray(pictures) if isinstance(pictures, np.ndarray) else pictures)
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    return x[:, None] if x.ndim == 3 else x


def adapt(
    model: TrainedModel,
    pictures: torch.Tensor | np.ndarray,
    method: str = "adabn",
    *,
    prior: float = DEFAULT_PRIOR,
    steps: int = 1,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
) -> TrainedModel:
    """A copy of ``model`` adapted to ``pictures`` without labels (module docstring).

    Args:
        model: a trained model with BatchNorm layers (e.g. recipe ``robust``'s ``bncnn``).
        pictures: the batch, as the model takes it: uint8 (N, 28, 28) or (N, 1, 28, 28)
            0..255, or float (N, 1, 28, 28) in [0, 1] (prepared pictures, ink light).
        method: ``adabn`` or ``tent``.
        prior: weight of the training statistics in pictures (>= 0; 0: the batch's alone).
        steps: ``tent``'s passes over the batch (>= 1).
        lr: ``tent``'s Adam learning rate (> 0).
        batch_size: pictures per forward pass (``tent``: per step), >= 2.
        seed: order of ``tent``'s mini-batches.

    Returns:
        A new :class:`TrainedModel` in eval mode on the model's device; ``model`` is unchanged.

    Raises:
        SettingError: an unknown ``method`` (setting ``adapt``), a model without BatchNorm
            (setting ``adapt``: the message names the recipes that have it), or a bad
            ``prior``, ``steps``, ``lr`` or ``batch_size``.
    """
    if method not in ADAPT_METHODS:
        raise SettingError(
            f"unknown adaptation {method!r}; valid: {', '.join(ADAPT_METHODS)}", setting="adapt"
        )
    if prior < 0 or steps < 1 or not lr > 0 or batch_size < 2:
        raise SettingError(
            f"adapt needs prior >= 0, steps >= 1, lr > 0 and batch_size >= 2; got prior={prior}, "
            f"steps={steps}, lr={lr}, batch_size={batch_size}",
            setting="adapt",
        )
    if not batchnorm_layers(model):
        raise SettingError(
            f"adapting to a batch re-estimates BatchNorm statistics, and this model "
            f"({model.model_name}) has no BatchNorm layer; use a BatchNorm model (recipes "
            "robust, robust-styles, best: bncnn; fast: fastcnn)",
            setting="adapt",
        )
    adapted = copy.deepcopy(model).eval()
    x = _as_batch(pictures).to(model.normalize.mean.device)  # (N, 1, 28, 28)
    if len(x) < MIN_PICTURES:
        log.info("adapt: %d picture(s), fewer than %d: nothing adapted", len(x), MIN_PICTURES)
        return adapted
    if method == "tent":
        _tent(adapted, x, steps, lr, batch_size, seed)
    _adabn(adapted, x, prior, batch_size)
    return adapted.eval()


def _adabn(model: TrainedModel, x: torch.Tensor, prior: float, batch_size: int) -> None:
    """Re-estimate every BatchNorm's running statistics on ``x``, mixed with the old ones."""
    layers = batchnorm_layers(model)
    old = [(m.running_mean.clone(), m.running_var.clone(), m.momentum) for m in layers]  # type: ignore[union-attr]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the passes
    model.eval()
    for m in layers:
        m.train()  # only BatchNorm: dropout and the rest stay as in inference
    with torch.no_grad(), model.autocast():
        for start in range(0, len(x), batch_size):
            chunk = x[start : start + batch_size]
            if len(chunk) >= 2:  # one picture has no variance
                model(chunk)
    n = len(x)
    for m, (mean, var, momentum) in zip(layers, old, strict=True):
        w = n / (prior + n)
        assert m.running_mean is not None and m.running_var is not None
        m.running_mean.mul_(w).add_(mean, alpha=1 - w)
        m.running_var.mul_(w).add_(var, alpha=1 - w)
        m.momentum = momentum
    model.eval()


def _tent(
    model: TrainedModel, x: torch.Tensor, steps: int, lr: float, batch_size: int, seed: int
) -> None:
    """Entropy minimisation on the BatchNorm affine parameters, batch statistics in BatchNorm."""
    layers = batchnorm_layers(model)
    params = [p for m in layers for p in (m.weight, m.bias) if p is not None]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr)
    saved = [(m.running_mean.clone(), m.running_var.clone()) for m in layers]  # type: ignore[union-attr]
    model.eval()
    for m in layers:
        m.train()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        order = torch.randperm(len(x), generator=gen).to(x.device)
        for start in range(0, len(x), batch_size):
            chunk = x[order[start : start + batch_size]]
            if len(chunk) < 2:
                continue
            with torch.enable_grad(), model.autocast():
                logits = model(chunk).float()
            logp = torch.log_softmax(logits, 1)
            entropy = -(logp.exp() * logp).sum(1).mean()
            optimizer.zero_grad()
            entropy.backward()
            optimizer.step()
    for m, (mean, var) in zip(layers, saved, strict=True):  # _adabn starts from these
        assert m.running_mean is not None and m.running_var is not None
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()


@dataclass(frozen=True)
class AdaptOutcome:
    """What adapting changed: ``changed`` answers (label or unsure) of ``counted`` pictures."""

    method: str
    pictures: int
    counted: int
    changed: int

    def summary(self, unit: str = "pictures", answer: str = "answer") -> str:
        """One line for people: what was adapted (``unit``: what ``counted`` counts) and how
        many answers (``answer``: what ``changed`` counts, singular) changed."""
        if self.counted < MIN_PICTURES:
            return (
                f"note: adapting needs at least {MIN_PICTURES} {unit} with ink; "
                f"{self.counted} given, nothing adapted"
            )
        answers = answer if self.changed == 1 else answer + "s"
        return f"adapted to {self.counted} {unit} ({self.method}): {self.changed} {answers} changed"


def adapt_predictions(
    predictor: Predictor, predictions: Sequence[Prediction], method: str = "adabn"
) -> tuple[list[Prediction], AdaptOutcome]:
    """Predictions again, by a copy of ``predictor``'s model adapted to their pictures.

    Args:
        predictor: the :class:`~mnistcnn.predict.Predictor` that made ``predictions``.
        predictions: its Predictions; those with an ``input`` (what the model saw) and
            ink form the batch; the others (blank, errors) are returned as they are.
        method: ``adabn`` or ``tent`` (:func:`adapt`).

    Returns:
        (the new Predictions in the same order, an :class:`AdaptOutcome` counting the
        pictures whose label or unsure verdict changed).

    Raises:
        SettingError: as :func:`adapt`.
    """
    keep = [i for i, p in enumerate(predictions) if p.input is not None and not p.blank]
    inputs = [predictions[i].input for i in keep]
    batch = (
        np.stack([np.asarray(a, np.uint8) for a in inputs if a is not None])
        if keep
        else (np.zeros((0, 28, 28), np.uint8))
    )
    again = copy.copy(predictor)
    again.model = adapt(predictor.model, batch, method)
    out = list(predictions)
    changed = 0
    for i, image in zip(keep, batch, strict=True):
        before = predictions[i]
        judged = again._judge(before.path, image, before.inverted)
        after = replace(before, **{k: getattr(judged, k) for k in _VERDICT})
        changed += (after.label, after.unsure) != (before.label, before.unsure)
        out[i] = after
    return out, AdaptOutcome(method, len(predictions), len(keep), changed)


_VERDICT = ("label", "probability", "topk", "unsure", "probabilities")


def adapted_reader(reader: Reader, readings: Sequence[Reading], method: str = "adabn") -> Reader:
    """A :class:`~mnistcnn.predict.reader.Reader` whose model is adapted to ``readings``' digits.

    The batch is every digit the first reading saw (``ReadDigit.input``, uint8 (28, 28)),
    of every picture; read the pictures again with the returned reader (the
    segmentation of touching digits asks the model too, so a second reading is the
    consistent one). ``reader`` and its model are unchanged.

    Raises:
        SettingError: as :func:`adapt`.
    """
    inputs = [d.input for r in readings for d in r.digits if d.input is not None]
    batch = np.stack(inputs).astype(np.uint8) if inputs else np.zeros((0, 28, 28), np.uint8)
    predictor = copy.copy(reader.predictor)
    predictor.model = adapt(reader.predictor.model, batch, method)
    again = copy.copy(reader)
    again.predictor = predictor
    return again
