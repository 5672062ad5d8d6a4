"""What a trained model carries beside its network: classes, picture preparation, calibration.

:class:`ModelInfo` holds the behaviour every trained model shares, whatever
computes its logits: the calibration temperature, and the picture preparation
bound to the model (``model.prepare(picture)``). It imports no torch, so both
the PyTorch :class:`~mnistcnn.artifact.trained.TrainedModel` and the
ONNX-Runtime-only :class:`~mnistcnn.artifact.onnx_graph.OnnxGraph` are built
on it and answer alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from mnistcnn.prepare import Preparation

if TYPE_CHECKING:
    from PIL import Image

    from mnistcnn.prepare import PreparationSettings, PreparedPicture


class ModelInfo:
    """Mixin: a trained model's temperature and preparation, from its recorded fields.

    The class using it sets ``classes`` (names, one per logit), ``preparation``
    (the record, :mod:`mnistcnn.prepare.records`) and ``calibration`` (the
    fitted temperature record, or None).
    """

    classes: list[str]
    preparation: dict[str, Any]
    calibration: dict[str, Any] | None

    @property
    def temperature(self) -> float:
        """The calibration temperature T (> 0); 1.0 when not calibrated."""
        if not self.calibration:
            return 1.0
        return float(self.calibration.get("temperature", 1.0))

    @property
    def calibrated(self) -> bool:
        """True when a temperature was fitted (:mod:`mnistcnn.evaluation.calibration`)."""
        return bool(self.calibration and "temperature" in self.calibration)

    def preparer(
        self,
        invert: Literal["auto", "yes", "no"] = "auto",
        settings: PreparationSettings | None = None,
    ) -> Preparation:
        """This model's :class:`~mnistcnn.prepare.Preparation` (its record), callable on pictures.

        Raises:
            ValueError: a preparation this version does not know (an ImageNet
                network's, for one), or a bad ``invert``.
        """
        return Preparation.from_record(self.preparation, invert=invert, settings=settings)

    def prepare(
        self,
        picture: Image.Image | Any,
        *,
        invert: Literal["auto", "yes", "no"] = "auto",
        settings: PreparationSettings | None = None,
        keep_preview: bool = False,
    ) -> PreparedPicture:
        """A decoded picture (Pillow image or array) -> this model's input, prepared its way.

        ``model.prepare(picture).tensor`` is float32 (1, 28, 28) in [0, 1] for
        ``model(x[None])``; :class:`~mnistcnn.prepare.PreparedPicture` also
        says where the ink was and whether the picture was inverted.

        Raises:
            mnistcnn._io.ImageInputError: a size no digit picture has.
            ValueError: a preparation this version does not know, a bad
                ``invert``, or an array of another shape, type or range.
        """
        return self.preparer(invert, settings)(picture, keep_preview=keep_preview)
