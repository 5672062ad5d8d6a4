"""Several checkpoints and test-time augmentation behind the :class:`Predictor` interface.

:class:`EnsemblePredictor` is a :class:`~mnistcnn.predict.Predictor` whose
probabilities are the mean over its members (each a Predictor of its own, with
its own calibration temperature) and over the test-time views of each picture
(:mod:`mnistcnn.predict.tta`)::

    p(class | picture) = 1/(M V) * sum_m sum_v softmax(logits_m(view_v(x)) / T_m)

the average of calibrated probabilities, as ``mnistcnn evaluate a.pt b.pt``
averages its members (:mod:`mnistcnn.evaluation.ensemble`; Lakshminarayanan
et al. 2017, "Simple and Scalable Predictive Uncertainty Estimation using Deep
Ensembles", eq. in section 2.4). Picture preparation, the unsure rule and
``top_k`` are the ensemble's, done once per picture; the members must agree on
their classes and on their picture preparation.

One member and only the identity view give exactly (bit for bit) the plain
Predictor's probabilities.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mnistcnn.artifact import CheckpointError
from mnistcnn.data import same_class_names
from mnistcnn.data.specs import shown_class_names
from mnistcnn.predict.predictor import DEFAULT_THRESHOLD, Predictor
from mnistcnn.predict.tta import DEFAULT_VIEWS, IDENTITY, View, apply_views
from mnistcnn.prepare import InvertMode, PreparationSettings

log = logging.getLogger(__name__)


def member_name(member: Predictor) -> str:
    """The member's checkpoint path as given, or ``the <architecture> model`` (made in memory)."""
    if member.checkpoint is not None:
        return str(member.checkpoint.path)
    return f"the {getattr(member.model, 'model_name', type(member.model).__name__)} model"


def check_members(members: Sequence[Predictor]) -> None:
    """Refuse an ensemble whose members disagree on classes or picture preparation.

    Raises:
        ValueError: no member.
        CheckpointError: a member whose classes (names, in order) or picture
            preparation (``TrainedModel.preparation``) differ from the first
            member's; the message names both checkpoints.
    """
    if not members:
        raise ValueError("an ensemble needs at least one model")
    first = members[0]
    prep = getattr(first.model, "preparation", None)
    for m in members[1:]:
        path = m.checkpoint.path if m.checkpoint is not None else None
        if not same_class_names(m.classes, first.classes):
            raise CheckpointError(
                f"{member_name(m)}: its classes ({shown_class_names(m.classes)}) differ "
                f"from {member_name(first)}'s ({shown_class_names(first.classes)}); "
                "an ensemble needs models of the same classes",
                path=path,
            )
        if getattr(m.model, "preparation", None) != prep:
            raise CheckpointError(
                f"{member_name(m)}: its picture preparation "
                f"({getattr(m.model, 'preparation', None)}) differs from "
                f"{member_name(first)}'s ({prep}); an ensemble needs models that "
                "take pictures prepared the same way",
                path=path,
            )


class EnsemblePredictor(Predictor):
    """A Predictor averaging several members and test-time views of each picture.

    Args:
        members: loaded Predictors (:meth:`Predictor.from_checkpoint`), one or
            more, on one device; only their models and temperatures are used.
        views: test-time views (:mod:`mnistcnn.predict.tta`); :data:`IDENTITY`
            (the default) is no augmentation, :data:`DEFAULT_VIEWS` is ``--tta``.
        threshold, invert, top_k, settings: as :class:`Predictor` (the
            ensemble's own; the members' are not used).

    Attributes:
        members: the member Predictors, in order.
        views: the views, in order.
        calibrated: True when every member is calibrated.
        temperature: the first member's (each member uses its own; see
            :meth:`describe`).

    Raises:
        ValueError: no member, no view, or a bad threshold/invert/top_k.
        CheckpointError: members disagree on classes or preparation
            (:func:`check_members`).
    """

    def __init__(
        self,
        members: Sequence[Predictor],
        views: Sequence[View] = IDENTITY,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        invert: InvertMode = "auto",
        top_k: int = 3,
        settings: PreparationSettings | None = None,
    ) -> None:
        check_members(members)
        if not views:
            raise ValueError("give at least one test-time view (IDENTITY for none)")
        first = members[0]
        super().__init__(
            first.model,
            temperature=first.temperature,
            threshold=threshold,
            invert=invert,
            device=first.device,
            top_k=top_k,
            settings=settings,
        )
        self.members = list(members)
        self.views = tuple(views)
        self.calibrated = all(m.calibrated for m in self.members)

    @classmethod
    def from_checkpoints(
        cls,
        paths: Sequence[str | os.PathLike[str]],
        device: str = "cpu",
        invert: InvertMode = "auto",
        threshold: float | None = None,
        top_k: int = 3,
        tta: bool | Sequence[View] = False,
    ) -> EnsemblePredictor:
        """Load each checkpoint (file or run folder) as a member.

        Args:
            paths: one or more checkpoints; the same file twice counts twice
                (logged as a warning).
            device, invert, threshold, top_k: as :meth:`Predictor.from_checkpoint`.
            tta: True for :data:`DEFAULT_VIEWS`, False for none, or the views.

        Raises:
            CheckpointError: an unreadable checkpoint, one that does not take
                1x28x28 inputs, or members that disagree (:func:`check_members`).
            ValueError: no checkpoint; a bad device, threshold, invert or top_k.
        """
        if not paths:
            raise ValueError("give at least one checkpoint")
        members = [Predictor.from_checkpoint(p, device=device) for p in paths]
        seen: dict[Path, str] = {}
        for p in paths:
            key = Path(p).resolve()
            if key in seen:
                log.warning("%s is given more than once (as %s): it counts twice", p, seen[key])
            seen.setdefault(key, str(p))
        views = DEFAULT_VIEWS if tta is True else IDENTITY if tta is False else tuple(tta)
        return cls(
            members,
            views,
            threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
            invert=invert,
            top_k=top_k,
        )

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28) -> float32 (N, C): the mean over members and views.

        Each member sees all ``V * N`` views in one forward pass of its own
        (:meth:`Predictor._forward`: ``softmax(logits / T_m)``).
        """
        n = len(batch)
        x = batch if self.views == IDENTITY else apply_views(batch, self.views)  # (V * N, 28, 28)
        total: np.ndarray | None = None
        for m in self.members:
            p = m._forward(x).reshape(len(self.views), n, -1)  # (V, N, C)
            p = p[0] if len(self.views) == 1 else p.mean(axis=0, dtype=np.float64)
            total = p if total is None else total + p
        assert total is not None
        out = total if len(self.members) == 1 else total / len(self.members)
        return np.asarray(out, np.float32)

    def summary(self) -> str:
        """One line: ``2 models averaged (a.pt, b.pt); test-time augmentation: 7 views``."""
        names = ", ".join(member_name(m) for m in self.members)
        n = len(self.members)
        text = f"{n} models averaged ({names})" if n > 1 else f"one model ({names})"
        if self.views != IDENTITY:
            text += f"; test-time augmentation: {len(self.views)} views"
            text += f" ({', '.join(v.name for v in self.views)})"
        return text

    def describe(self) -> dict[str, Any]:
        """``{"members": [{"checkpoint", "temperature", "calibrated"}], "tta": [view names]}``.

        ``checkpoint`` is the path as given (:func:`member_name`); ``tta`` is
        ``[]`` without augmentation, else the :attr:`View.name` of each view.
        JSON-ready.
        """
        return {
            "members": [
                {
                    "checkpoint": member_name(m),
                    "temperature": m.temperature,
                    "calibrated": m.calibrated,
                }
                for m in self.members
            ],
            "tta": [] if self.views == IDENTITY else [v.name for v in self.views],
        }
