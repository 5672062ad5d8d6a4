"""How well a model tells its own classes from things that are not: AUROC and "unsure" shares.

For each out-of-distribution (OOD) set, the test images of the model's own
dataset are the positives and the OOD images the negatives, scored two ways:

* **MSP**, the maximum softmax probability (Hendrycks & Gimpel 2017, "A
  Baseline for Detecting Misclassified and Out-of-Distribution Examples"),
  with the model's calibration temperature, as ``predict`` computes it;
* **energy**, ``T * logsumexp(logits / T)``, the negative free energy (Liu,
  Wang, Owens, Li 2020, "Energy-based Out-of-distribution Detection"), T the
  calibration temperature.

AUROC (torchmetrics) is the probability that a random in-distribution image
scores higher than a random OOD one: 0.5 is chance, 1.0 perfect. The unsure
shares use ``predict``'s own rule: no ink, or a top probability under the
threshold. Pictures (drawings, letters, symbols: :mod:`mnistcnn.data.outlier_symbols`,
a kind that outlier exposure never trains on) go through ``predict``'s preparation;
dataset images (Fashion-MNIST, noise) are used as they are.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from mnistcnn.artifact import TrainedModel
from mnistcnn.errors import SettingError
from mnistcnn.predict.predictor import Predictor

PathLike = str | os.PathLike[str]
log = logging.getLogger(__name__)

#: The OOD sets :func:`ood_scores` knows (datasets must be obtainable; the rest are generated).
OOD_SETS = ("fashion-mnist", "mnist", "kmnist", "drawings", "letters", "noise", "symbols")


@dataclass(frozen=True)
class OodResult:
    """One OOD set against the in-distribution test split.

    Attributes:
        name: the OOD set.
        count: OOD images scored.
        auroc_msp, auroc_energy: AUROC of each score (0..1).
        unsure: share of the OOD images ``predict`` calls unsure (0..1).
    """

    name: str
    count: int
    auroc_msp: float
    auroc_energy: float
    unsure: float


@dataclass(frozen=True)
class OodReport:
    """:func:`ood_scores`'s result: ``in_unsure`` is the share of the model's own test images
    called unsure (0..1), over its first ``in_count`` test images; ``threshold`` the rule's
    threshold; ``skipped``: sets that could not be obtained, with the reason."""

    dataset: str
    in_count: int
    in_unsure: float
    threshold: float
    results: list[OodResult]
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready values."""
        return {**asdict(self), "results": [asdict(r) for r in self.results]}


def parse_ood_sets(text: str, model_dataset: str) -> list[str]:
    """``"fashion-mnist,drawings"`` -> the names, checked.

    Raises:
        SettingError: an unknown name, or the model's own dataset.
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if name not in OOD_SETS:
            raise SettingError(
                f"unknown OOD set {name!r}; known: {', '.join(OOD_SETS)}", setting="ood"
            )
        if name == model_dataset:
            raise SettingError(
                f"{name} is the model's own dataset, not out of its distribution", setting="ood"
            )
    if not names:
        raise SettingError(f"no OOD set named; known: {', '.join(OOD_SETS)}", setting="ood")
    return names


def ood_scores(
    model: TrainedModel,
    names: list[str],
    *,
    threshold: float,
    data_root: PathLike | None = None,
    mirror: PathLike | None = None,
    device: str = "cpu",
    limit: int = 1000,
    seed: int = 0,
) -> OodReport:
    """AUROC (MSP and energy) and unsure shares of ``model`` against each OOD set in ``names``.

    Args:
        model: the trained model; its dataset's test split is the in-distribution set.
        names: OOD sets from :data:`OOD_SETS`.
        threshold: ``predict``'s threshold on the calibrated top probability (0..1).
        limit: at most this many images per set (the first ones; generated sets
            make exactly this many).
        seed: seed of the generated sets.

    Raises:
        SettingError: an unknown set; mnistcnn.data.DataError: a dataset cannot be obtained.
    """
    from mnistcnn import data as mdata

    predictor = Predictor(model, threshold=threshold, device=device)
    own = model.dataset or "mnist"
    images, _ = mdata.load_arrays(own, train=False, root=data_root, mirror=mirror)
    inside = _scores(predictor, images[:limit].numpy(), np.zeros(min(limit, len(images)), bool))
    from mnistcnn.data import DataError

    results, skipped = [], {}
    for name in names:
        try:
            inputs, blank = _ood_inputs(predictor, name, limit, seed, data_root, mirror)
        except DataError as exc:  # a dataset that cannot be had here: the others still count
            skipped[name] = str(exc).splitlines()[0]
            log.warning("OOD set %s skipped: %s", name, skipped[name])
            continue
        outside = _scores(predictor, inputs, blank)
        results.append(_compare(name, inside, outside, threshold))
    in_unsure = float(np.mean(inside[0] < threshold))
    return OodReport(own, len(inside[0]), in_unsure, threshold, results, skipped)


def _ood_inputs(
    predictor: Predictor,
    name: str,
    limit: int,
    seed: int,
    root: PathLike | None,
    mirror: PathLike | None,
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 28, 28) model inputs of OOD set ``name`` and which were blank (no ink)."""
    from mnistcnn import data as mdata
    from mnistcnn.data import outliers

    if name in ("drawings", "letters", "symbols"):
        from mnistcnn.data.outlier_symbols import symbols

        make = {"drawings": outliers.drawings, "letters": outliers.letters, "symbols": symbols}
        pictures = make[name](limit, seed)
        preds = predictor.predict(list(pictures))
        inputs = np.stack(
            [p.input if p.input is not None else np.zeros((28, 28), np.uint8) for p in preds]
        )
        return inputs, np.array([p.blank or p.input is None for p in preds])
    if name == "noise":
        x = outliers.noise(limit, seed)
    else:
        x = mdata.load_arrays(name, train=False, root=root, mirror=mirror)[0][:limit].numpy()
    return x, np.asarray(~x.reshape(len(x), -1).any(axis=1))


def _scores(
    predictor: Predictor, inputs: np.ndarray, blank: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated top probability, energy score) per image; blank images score lowest."""
    model: TrainedModel = predictor.model
    t = predictor.temperature
    device = model.normalize.mean.device
    msp, energy = [], []
    with torch.inference_mode():
        for start in range(0, len(inputs), 500):
            x = torch.from_numpy(inputs[start : start + 500]).to(device).float().div(255.0)[:, None]
            logits = model(x).float() / t  # (B, C)
            msp.append(torch.softmax(logits, 1).amax(1).cpu())
            energy.append((t * torch.logsumexp(logits, 1)).cpu())
    p, e = torch.cat(msp).numpy(), torch.cat(energy).numpy()
    p[blank], e[blank] = 0.0, -np.inf
    return p, e


def _compare(
    name: str,
    inside: tuple[np.ndarray, np.ndarray],
    outside: tuple[np.ndarray, np.ndarray],
    threshold: float,
) -> OodResult:
    from torchmetrics.functional.classification import binary_auroc

    target = torch.cat([torch.ones(len(inside[0])), torch.zeros(len(outside[0]))]).long()
    aurocs = []
    for k in (0, 1):
        scores = torch.from_numpy(np.concatenate([inside[k], outside[k]])).double()
        finite = torch.nan_to_num(scores, neginf=float(scores[torch.isfinite(scores)].min()) - 1)
        aurocs.append(float(binary_auroc(finite, target)))
    unsure = float(np.mean(outside[0] < threshold))
    return OodResult(name, len(outside[0]), aurocs[0], aurocs[1], unsure)
