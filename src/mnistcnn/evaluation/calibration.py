"""Calibrated probabilities: temperature scaling, stored in the checkpoint.

A network trained with cross-entropy is usually over-confident: among test
images it gives a top softmax probability of 0.99, fewer than 99 % are right.
Temperature scaling (Guo, Pleiss, Sun, Weinberger 2017, "On Calibration of
Modern Neural Networks", ICML, section 4.2) divides every logit by one scalar
``T > 0`` fitted on held-out data by minimising the negative log-likelihood::

    p = softmax(z / T)

``T > 1`` softens over-confident probabilities, ``T < 1`` sharpens them; the
arg-max (the predicted class, hence accuracy) never changes. The fit is one
parameter, so a few thousand held-out images are plenty; it must be data the
model was not trained on (training images give over-confident logits and a
``T`` that is too small).

The checkpoint stores the result as ``calibration``::

    {"temperature": T, "fitted_on": "mnist train[val_fraction=0.1, seed=0] (6000 images)",
     "num_samples": 6000, "nll_before": ..., "nll_after": ..., "ece_before": ..., "ece_after": ...}
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from mnistcnn.artifact import CheckpointError, build_model, save_checkpoint
from mnistcnn.artifact.schema import temperature_of as temperature_of  # re-exported
from mnistcnn.errors import SettingError

log = logging.getLogger(__name__)

#: The range a fitted temperature is clamped to (log T in [-5, 5] is far beyond anything seen).
_MIN_T, _MAX_T = math.exp(-5.0), math.exp(5.0)


@dataclass(frozen=True)
class TemperatureFit:
    """Result of :func:`fit_temperature`.

    Attributes:
        temperature: the fitted ``T`` (> 0); divide logits by it.
        nll_before, nll_after: mean negative log-likelihood (nats per sample)
            with ``T = 1`` and with the fitted ``T``.
        ece_before, ece_after: expected calibration error (0..1, see
            :func:`expected_calibration_error`) before and after.
        num_samples: held-out samples the fit used.
        fitted_on: free text naming those samples (split, seed, count).
    """

    temperature: float
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    num_samples: int
    fitted_on: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The ``calibration`` entry of a checkpoint (plain floats, ints and a string)."""
        return asdict(self)


def _check(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.ndim != 2 or labels.ndim != 1 or len(logits) != len(labels) or len(labels) == 0:
        raise ValueError(
            f"need logits (N, C) and labels (N,) with N >= 1, got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    z = logits.detach().to("cpu", torch.float64).clone()  # clone: inference tensors can't
    y = labels.detach().to("cpu", torch.int64).clone()  # take part in autograd
    if not torch.isfinite(z).all():
        raise ValueError("logits contain NaN or infinity")
    if int(y.min()) < 0 or int(y.max()) >= z.shape[1]:
        raise ValueError(f"labels must be in 0..{z.shape[1] - 1}")
    return z, y


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """Expected calibration error of the top-class probability (Guo et al. 2017, eq. 3).

    Samples are grouped by their top probability into ``bins`` equal-width bins
    of [0, 1]; ECE = sum over bins of (bin size / N) * |accuracy - mean confidence|.

    Args:
        probs: float (N, C), rows summing to 1.
        labels: int (N,) in 0..C-1.
        bins: number of bins (15, as in the paper).

    Returns:
        ECE in [0, 1]; 0 is perfectly calibrated.
    """
    conf, pred = probs.detach().cpu().double().max(1)
    right = (pred == labels.detach().cpu()).double()
    idx = torch.clamp((conf * bins).ceil().long() - 1, 0, bins - 1)  # bin (k/b, (k+1)/b]
    ece = torch.zeros((), dtype=torch.float64)
    for k in range(bins):
        m = idx == k
        if m.any():
            ece += m.double().mean() * (right[m].mean() - conf[m].mean()).abs()
    return float(ece)


def fit_temperature(
    logits: torch.Tensor, labels: torch.Tensor, *, fitted_on: str = "", max_iter: int = 100
) -> TemperatureFit:
    """Fit the temperature ``T`` minimising the NLL of ``softmax(logits / T)`` (Guo et al. 2017).

    Optimises ``log T`` (so ``T`` stays positive) with L-BFGS and a strong-Wolfe
    line search in float64, starting from ``T = 1``; the NLL is convex in
    ``1 / T``, so there is a single minimum. ``T`` is clamped to
    [e^-5, e^5].

    Args:
        logits: float (N, C), raw model outputs on held-out data (any device).
        labels: int (N,) true classes in 0..C-1.
        fitted_on: text stored with the result, naming the data.
        max_iter: L-BFGS iterations.

    Returns:
        :class:`TemperatureFit`.

    Raises:
        ValueError: wrong shapes, no samples, non-finite logits or labels out of range.
    """
    with torch.inference_mode(False), torch.enable_grad():  # callable from inside either
        z, y = _check(logits, labels)
        log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(z / log_t.exp(), y)
            loss.backward()
            return loss

        opt.step(closure)
    t = float(min(max(math.exp(float(log_t.detach())), _MIN_T), _MAX_T))
    with torch.no_grad():
        nll_before = float(F.cross_entropy(z, y))
        nll_after = float(F.cross_entropy(z / t, y))
        ece_before = expected_calibration_error(F.softmax(z, 1), y)
        ece_after = expected_calibration_error(F.softmax(z / t, 1), y)
    return TemperatureFit(t, nll_before, nll_after, ece_before, ece_after, len(y), fitted_on)


def calibrate_checkpoint(
    path: str | os.PathLike[str],
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    fitted_on: str = "",
) -> TemperatureFit:
    """Fit a temperature on held-out ``logits``/``labels`` and store it in checkpoint ``path``.

    The file is read with ``weights_only=True`` and rewritten atomically
    (:func:`~mnistcnn.artifact.save_checkpoint`) with its
    ``calibration`` entry set (replacing any earlier one); everything else is
    kept as it was. The logits must come from this checkpoint's model on data
    it was not trained on, e.g. the validation split of a run trained with
    ``val_fraction > 0``.

    Args:
        path: checkpoint file (a run directory means its best.pt, else last.pt).
        logits: float (N, C) from the checkpoint's model.
        labels: int (N,) true classes.
        fitted_on: text naming the held-out data (stored in the checkpoint).

    Returns:
        The :class:`TemperatureFit` that was stored.

    Raises:
        CheckpointError: ``path`` is not a readable mnistcnn checkpoint, or its
            class count differs from the logits'.
        ValueError: see :func:`fit_temperature`.
        OSError: the file cannot be rewritten.
    """
    from mnistcnn.artifact import load_checkpoint

    ckpt = load_checkpoint(path)  # validates the file and resolves a run directory
    if logits.ndim == 2 and logits.shape[1] != len(ckpt.classes):
        raise CheckpointError(
            f"{ckpt.path}: {len(ckpt.classes)} classes, but the logits have {logits.shape[1]}"
        )
    fit = fit_temperature(logits, labels, fitted_on=fitted_on)
    weights = build_model(ckpt).state_dict()  # checked, under the current format's names
    save_checkpoint(ckpt.path, ckpt.replace(state_dict=weights, calibration=fit.to_dict()))
    log.info(
        "%s: temperature %.4f (NLL %.4f -> %.4f, ECE %.4f -> %.4f on %s)",
        ckpt.path,
        fit.temperature,
        fit.nll_before,
        fit.nll_after,
        fit.ece_before,
        fit.ece_after,
        fitted_on or f"{fit.num_samples} samples",
    )
    return fit


@torch.inference_mode()
def split_logits(
    path: str | os.PathLike[str],
    split: str = "val",
    *,
    data_root: str | os.PathLike[str] | None = None,
    mirror: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    batch_size: int = 1000,
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Logits of a checkpoint's model on its dataset's held-out ``val`` split or ``test`` split.

    ``val`` is rebuilt exactly as training built it: the same seeded split
    (:func:`~mnistcnn.data.loaders.split_indices` with the run's
    ``val_fraction`` and ``seed``) of the training images, which the model
    never trained on. The model normalizes its inputs itself.

    Returns:
        (logits float32 (N, C) on the CPU, labels int64 (N,), a description
        such as ``"mnist train[val_fraction=0.1, seed=0] (6000 images)"``).

    Raises:
        ValueError: unknown ``split``, or ``val`` for a model trained on the
            whole training split (it has no held-out images).
        CheckpointError, mnistcnn.data.DataError: the checkpoint or dataset cannot be read.
    """
    from mnistcnn import data as mdata
    from mnistcnn.artifact import load_model
    from mnistcnn.data.loaders import split_indices

    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    model, ckpt = load_model(path, map_location=device)
    name = ckpt.dataset or str(ckpt.config.get("dataset", "mnist"))
    fraction = float(ckpt.config.get("val_fraction", 0.0))
    seed = int(ckpt.config.get("seed", 0))
    if split == "val" and fraction <= 0:
        raise SettingError(
            f"{ckpt.path}: the model was trained on the whole training split, so no "
            "held-out validation images exist; train with val_fraction 0.1 (--val-fraction), "
            "or calibrate with split 'test' (--split test; then test-set figures are no "
            "longer independent)",
            setting="split",
        )
    x, y = mdata.load_arrays(name, train=split == "val", root=data_root, mirror=mirror)
    what = f"{name} test ({len(y)} images)"
    if split == "val":
        _, idx = split_indices(len(y), fraction, seed)
        x, y = x[idx], y[idx]
        what = f"{name} train[val_fraction={fraction:g}, seed={seed}] ({len(y)} images)"
    out = []
    for i in range(0, len(y), batch_size):
        xb = x[i : i + batch_size].to(device).float().unsqueeze(1) / 255.0  # (B, 1, 28, 28)
        out.append(model(xb).float().cpu())  # the model normalizes its pixels itself
    return torch.cat(out), y.long().cpu(), what


@dataclass(frozen=True)
class ThresholdRow:
    """What a confidence threshold does on labelled data (one row of :func:`threshold_table`).

    Attributes:
        threshold: top probability below which a prediction is reported unsure.
        answered: fraction (0..1) of samples at or above the threshold.
        error_answered: fraction of the answered samples that are wrong.
        error_unsure: fraction of the unsure samples that are wrong (nan if none).
        errors_caught: fraction of all wrong predictions that were flagged unsure.
    """

    threshold: float
    answered: float
    error_answered: float
    error_unsure: float
    errors_caught: float


def threshold_table(
    probs: torch.Tensor, labels: torch.Tensor, thresholds: tuple[float, ...] = (0.5, 0.7, 0.9)
) -> list[ThresholdRow]:
    """Coverage and error rates above/below each threshold on the top-class probability.

    Args:
        probs: float (N, C), rows summing to 1 (calibrated, if the threshold is used so).
        labels: int (N,) true classes.
        thresholds: values in [0, 1].
    """
    conf, pred = probs.detach().cpu().double().max(1)
    wrong = pred != labels.detach().cpu()
    rows, n_wrong = [], int(wrong.sum())
    for t in thresholds:
        ok = conf >= t
        n_ok, n_unsure = int(ok.sum()), int((~ok).sum())
        rows.append(
            ThresholdRow(
                threshold=t,
                answered=n_ok / len(conf),
                error_answered=float(wrong[ok].double().mean()) if n_ok else math.nan,
                error_unsure=float(wrong[~ok].double().mean()) if n_unsure else math.nan,
                errors_caught=int((wrong & ~ok).sum()) / n_wrong if n_wrong else math.nan,
            )
        )
    return rows


@dataclass(frozen=True)
class CalibrationReport:
    """What :func:`calibrate_from_split` did.

    Attributes:
        path: the checkpoint file that was rewritten.
        fit: the stored temperature and its NLL/ECE before and after.
        test_rows: :func:`threshold_table` of the calibrated probabilities on
            the test split (the same data as the fit when ``split="test"``).
        test_accuracy: top-1 accuracy on the test split (0..1).
        test_described: which test data the rows are about.
    """

    path: Path
    fit: TemperatureFit
    test_rows: list[ThresholdRow]
    test_accuracy: float
    test_described: str


def calibrate_from_split(
    path: str | os.PathLike[str],
    split: str = "val",
    *,
    thresholds: tuple[float, ...] = (0.5, 0.7, 0.9, 0.99),
    data_root: str | os.PathLike[str] | None = None,
    mirror: str | os.PathLike[str] | None = None,
    device: str = "cpu",
) -> CalibrationReport:
    """Fit the temperature of checkpoint ``path`` on ``split``, store it, and measure thresholds.

    ``split="val"`` (honest) uses the validation images training held out
    (needs a run trained with ``val_fraction > 0``); ``"test"`` fits on the
    test split itself, after which test-set figures are no longer independent
    of the calibration (one parameter, so the bias is small, but it is there).

    The checkpoint's folder is locked (:class:`~mnistcnn.engine.run_dir.RunLock`)
    for the whole job: a run still being trained would overwrite ``best.pt``
    and lose the calibration, so it is refused as ``train --resume`` is.

    Raises:
        ValueError: see :func:`split_logits`.
        RunDirError: another process is training into the checkpoint's folder,
            or the folder cannot be written.
        CheckpointError, mnistcnn.data.DataError, OSError: unreadable
            checkpoint or data, or the checkpoint cannot be rewritten.
    """
    from mnistcnn.artifact import load_checkpoint
    from mnistcnn.engine.run_dir import RunLock

    file = load_checkpoint(path).path
    kw: dict[str, Any] = {"data_root": data_root, "mirror": mirror, "device": device}
    with RunLock(file.parent):
        z, y, what = split_logits(file, split, **kw)
        fit = calibrate_checkpoint(file, z, y, fitted_on=what)
    if split != "test":
        z, y, what = split_logits(file, "test", **kw)
    probs = F.softmax(z.double() / fit.temperature, dim=1)
    accuracy = float((probs.argmax(1) == y).double().mean())
    return CalibrationReport(file, fit, threshold_table(probs, y, thresholds), accuracy, what)
