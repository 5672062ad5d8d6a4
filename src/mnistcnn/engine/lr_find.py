"""Learning-rate range test ("LR finder"): an exponential sweep of the learning rate.

Smith 2017, "Cyclical Learning Rates for Training Neural Networks" (WACV 2017,
arXiv:1506.01186), section 3.3: train for a few steps while the learning rate
grows, and read a good one off the loss curve. This follows fastai's
``Learner.lr_find`` (fastai v2, ``fastai/callback/schedule.py``), on a copy of
the model so the model given is never modified:

* learning rate of step ``i`` (``i = 0 .. steps-1``), exponential from
  ``start_lr`` to ``end_lr`` (both reached)::

      lr_i = start_lr * (end_lr / start_lr) ** (i / (steps - 1))

* smoothed loss: an exponential moving average of the batch losses ``l_i``
  with ``beta = 0.98``, bias-corrected as fastai (v1 ``Recorder``, and
  Sylvain Gugger's "How Do You Find A Good Learning Rate", 2017) does::

      avg_i = beta * avg_{i-1} + (1 - beta) * l_i,   avg_{-1} = 0
      smoothed_i = avg_i / (1 - beta ** (i + 1))

* early stop: after step ``i`` when ``smoothed_i > 4 * min(smoothed_0..i)``
  (fastai's ``stop_div``), or when a loss is not finite;
* suggestion: fastai's ``steep``, the learning rate at the steepest descent of
  the smoothed loss against ``log(lr)``: with ``g_i = (s_{i+1} - s_i) /
  (log lr_{i+1} - log lr_i)``, the ``lr_i`` of the most negative ``g_i``. As
  fastai, the first 10% of the steps and the last 5 are left out of the
  search (start-up noise and the divergence). One addition: the search ends
  at the minimum of the smoothed loss. A descent after it is the moving
  average decaying from a divergence spike, not a descent of the loss; it
  happens when the loss blows up without passing 4x its minimum (MNIST's
  loss starts at ln 10 = 2.3, so 4x the minimum is rarely reached). fastai's
  newer default suggestion, ``valley``, is not used here.

Units: learning rates as the optimizer takes them; losses are cross-entropy
in nats per sample (the batch mean, with the recipe's label smoothing).
"""

from __future__ import annotations

import copy
import itertools
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mnistcnn.artifact.trained import precision_autocast
from mnistcnn.config import TrainConfig
from mnistcnn.data.loaders import Batch, BatchSource
from mnistcnn.engine.optim import build_optimizer
from mnistcnn.models.outputs import training_loss

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PathLike = str | os.PathLike[str]

#: fastai's defaults: ``lr_find(start_lr=1e-7, end_lr=10, num_it=100)``, beta 0.98, stop at 4x.
START_LR, END_LR, STEPS, BETA, DIVERGE = 1e-7, 10.0, 100, 0.98, 4.0
SUGGESTION_METHOD = "steep"


@dataclass
class LRFindResult:
    """The curve of one sweep and its suggestion.

    Attributes:
        lrs: learning rate of each step taken (length ``n`` <= ``steps``).
        losses: raw batch loss of each step, nats per sample.
        smoothed: bias-corrected moving average of ``losses`` (see the module).
        suggestion: the suggested learning rate (``steep``): one of ``lrs``.
        suggestion_index: its index in ``lrs``.
        stopped_early: the sweep stopped before ``steps`` (the loss diverged).
        start_lr, end_lr, steps, beta: the sweep's settings.
        method: ``"steep"``.
        min_loss_lr: the learning rate of the smallest smoothed loss (for reference).
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    suggestion_index: int
    stopped_early: bool
    start_lr: float
    end_lr: float
    steps: int
    beta: float = BETA
    method: str = SUGGESTION_METHOD
    min_loss_lr: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {**asdict(self), "warning": self.warning}

    @property
    def warning(self) -> str | None:
        """Why the suggestion means little (the smoothed loss hardly fell), or None,
        saying which bound of the sweep to change.

        A sweep whose smoothed loss never drops 5 % below where it started
        found no learning-rate range where the model learns: its "steepest
        descent" is noise. Which setting helps depends on where the loss was
        lowest: at the first tenth of the sweep with a rise after it, the start
        is already too high (lower ``start_lr``); flat up to an ``end_lr`` below
        fastai's 10, the range stops too early (raise ``end_lr``); otherwise the
        curve is too short or too noisy (more ``steps``, more images).
        """
        if len(self.smoothed) < 2:
            return "the sweep took fewer than 2 steps"
        first, low = self.smoothed[0], min(self.smoothed)
        if low <= 0.95 * first:
            return None
        at = self.smoothed.index(low)
        said = (
            f"the smoothed loss hardly fell ({first:.3g} -> at best {low:.3g}): "
            "the suggestion is unreliable"
        )
        if at < max(1, len(self.smoothed) // 10) and (
            self.stopped_early or self.smoothed[-1] > first
        ):
            return (
                f"{said}; the loss rose from the first steps, so the sweep starts too high: "
                f"lower start_lr (now {self.start_lr:g}; try {self.start_lr / 100:g})"
            )
        if not self.stopped_early and self.end_lr < END_LR:
            return (
                f"{said}; the loss stayed flat up to the end of the sweep: raise end_lr "
                f"(now {self.end_lr:g}; try {min(END_LR, self.end_lr * 100):g})"
            )
        return f"{said}; sweep more steps or on more images"


def sweep_lrs(start_lr: float, end_lr: float, steps: int) -> list[float]:
    """The exponential schedule: ``start_lr * (end_lr / start_lr) ** (i / (steps - 1))``.

    Raises:
        ValueError: ``steps < 2``, or not ``0 < start_lr < end_lr``.
    """
    if steps < 2 or not 0 < start_lr < end_lr:
        raise ValueError(
            f"need steps >= 2 and 0 < start_lr < end_lr, got steps={steps}, "
            f"start_lr={start_lr:g}, end_lr={end_lr:g}"
        )
    ratio = end_lr / start_lr
    return [start_lr * ratio ** (i / (steps - 1)) for i in range(steps)]


def smooth(losses: list[float], beta: float = BETA) -> list[float]:
    """Bias-corrected exponential moving average of ``losses`` (see the module docstring)."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def steepest_index(lrs: list[float], smoothed: list[float]) -> int:
    """Index of fastai's ``steep`` suggestion in ``lrs`` (see the module docstring).

    The search skips the first ``len // 10`` points and the last 5, as fastai
    does, and ends at the smallest smoothed loss; when fewer than 3 points are
    left it uses every point up to that minimum (at least 2).
    """
    n = len(lrs)
    if n < 2:
        return 0
    end = min(range(n), key=smoothed.__getitem__) + 1  # points 0..argmin
    lo, hi = n // 10, min(n - 5, end)
    if hi - lo < 3:
        lo, hi = 0, max(end, 2)
    best, best_grad = lo, math.inf
    for i in range(lo, hi - 1):
        grad = (smoothed[i + 1] - smoothed[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i]))
        if grad < best_grad:
            best, best_grad = i, grad
    return best


def _batches(source: BatchSource) -> Iterator[Batch]:
    """The source's batches, epoch after epoch (``set_epoch(0), set_epoch(1), ...``)."""
    for epoch in itertools.count():
        source.set_epoch(epoch)
        empty = True
        for batch in source:
            empty = False
            yield batch
        if empty:
            raise ValueError("the training source yields no batches")


def lr_find(
    model: nn.Module,
    source: BatchSource,
    config: TrainConfig,
    *,
    start_lr: float = START_LR,
    end_lr: float = END_LR,
    steps: int = STEPS,
    beta: float = BETA,
    diverge: float = DIVERGE,
) -> LRFindResult:
    """Sweep the learning rate on a copy of ``model``; ``model`` itself is not modified.

    Args:
        model: takes float (B, C, 28, 28) batches of ``source`` and returns logits
            (B, num_classes) (a :class:`~mnistcnn.artifact.TrainedModel`, or any module);
            deep-copied, so its weights, buffers and mode are left as they are.
        source: training batches: images float (B, C, 28, 28) on the model's
            device, labels int64 (B,); cycled through epochs if ``steps`` is larger.
        config: the recipe: its optimizer (``config.optimizer``, momentum, weight
            decay), ``label_smoothing``, ``precision`` and ``channels_last``
            (its ``lr`` and scheduler are replaced by the sweep).
        start_lr, end_lr: first and last learning rate of the sweep.
        steps: number of training steps (one batch each) if it does not stop early.
        beta: smoothing factor of the moving average.
        diverge: stop once the smoothed loss exceeds ``diverge`` times its minimum.

    Returns:
        The curve (``n`` <= ``steps`` points) and the ``steep`` suggestion.

    Raises:
        ValueError: bad sweep settings (see :func:`sweep_lrs`) or an empty source.
    """
    schedule = sweep_lrs(start_lr, end_lr, steps)
    net = copy.deepcopy(model)
    net.train()
    if config.channels_last:
        net.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(net, config.replace(lr=start_lr))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best, stopped = 0.0, math.inf, False
    for i, (lr, (images, labels)) in enumerate(zip(schedule, _batches(source), strict=False)):
        for group in optimizer.param_groups:
            group["lr"] = lr
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with precision_autocast(config.precision, images.device):
            _, loss = training_loss(loss_fn, net(images), labels)  # aux logits (GoogLeNet) too
        value = float(loss.item())
        if not math.isfinite(value):  # diverged: the step is not taken nor recorded
            stopped = True
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        avg = beta * avg + (1 - beta) * value
        smooth_i = avg / (1 - beta ** (i + 1))
        lrs.append(lr)
        losses.append(value)
        smoothed.append(smooth_i)
        best = min(best, smooth_i)
        if i > 0 and smooth_i > diverge * best:
            stopped = i < steps - 1
            break
    if not lrs:
        raise ValueError(f"the loss was not finite at the first step (lr {start_lr:g})")
    index = steepest_index(lrs, smoothed)
    min_index = min(range(len(smoothed)), key=smoothed.__getitem__)
    return LRFindResult(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        suggestion=lrs[index],
        suggestion_index=index,
        stopped_early=stopped,
        start_lr=start_lr,
        end_lr=end_lr,
        steps=steps,
        beta=beta,
        min_loss_lr=lrs[min_index],
    )


def lr_find_for_config(
    config: TrainConfig,
    *,
    data_root: PathLike | None = None,
    mirror: PathLike | None = None,
    **sweep: Any,
) -> LRFindResult:
    """:func:`lr_find` for a recipe: its data, model and optimizer, as ``train`` builds them.

    The data come from :func:`mnistcnn.engine.session.build_sources` (the
    training split, with the recipe's ``train_subset``, ``val_fraction`` and
    augmentation), the model from :func:`mnistcnn.engine.model.trained_model`
    (freshly initialized with ``config.seed``, with the dataset's
    normalization), on ``config.device``. ``sweep``: ``start_lr``, ``end_lr``,
    ``steps``, ``beta``, ``diverge``.

    Raises:
        mnistcnn.data.DataError: the dataset cannot be obtained.
        ValueError: as :func:`lr_find`, or an invalid config.
    """
    from mnistcnn.engine import session
    from mnistcnn.engine.model import trained_model
    from mnistcnn.engine.utils import seed_everything, select_device

    device = select_device(config.device)
    seed_everything(config.seed)
    sources = session.build_sources(config, device, data_root=data_root, mirror=mirror)
    seed_everything(config.seed)
    model = trained_model(config, sources).to(device)
    if config.init is not None:  # the sweep starts where fine-tuning would
        from mnistcnn.engine.init import init_weights

        init_weights(model, config.init, config.model)
    result = lr_find(model, sources.train, config, **sweep)
    result.extra = {
        "recipe": config.recipe,
        "model": config.model,
        "dataset": config.dataset,
        "optimizer": config.optimizer,
        "batch_size": config.batch_size,
        "recipe_lr": config.lr,
        "device": str(device),
    }
    return result


def plot_lr_find(result: LRFindResult) -> Figure:
    """Loss against learning rate (log x): raw and smoothed, the suggestion marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    ax.plot(result.lrs, result.losses, color="0.75", lw=1, label="batch loss")
    ax.plot(result.lrs, result.smoothed, color="C0", lw=2, label=f"smoothed (beta {result.beta})")
    i = result.suggestion_index
    ax.plot(
        [result.suggestion],
        [result.smoothed[i]],
        "o",
        color="C3",
        ms=8,
        label=f"suggestion ({result.method}): {result.suggestion:.2g}",
    )
    ax.axvline(result.suggestion, color="C3", ls=":", lw=1)
    recipe_lr = result.extra.get("recipe_lr")
    if recipe_lr:
        ax.axvline(recipe_lr, color="C2", ls="--", lw=1, label=f"recipe lr {recipe_lr:g}")
    ax.set_xscale("log")
    top = max(result.smoothed[0], min(result.smoothed)) * 1.6 if result.smoothed else None
    if top is not None and math.isfinite(top):
        ax.set_ylim(top=top, bottom=0 if min(result.losses) >= 0 else None)
    ax.set(xlabel="learning rate (log scale)", ylabel="cross-entropy loss (nats)")
    title = "LR range test (Smith 2017)"
    if result.extra.get("model"):
        title += f": {result.extra['model']} on {result.extra['dataset']}"
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best")
    fig.tight_layout()
    return fig
