"""Predict digits on people's pictures with a trained checkpoint.

:class:`Predictor` = a :class:`~mnistcnn.artifact.TrainedModel` (which normalizes
its own pixels, and knows its classes, calibration temperature and picture
preparation) + the "unsure" rule. A picture's way: :mod:`mnistcnn._io` decodes
it, the model's :class:`~mnistcnn.prepare.Preparation` makes the 28x28 input,
the model answers, and this module turns the logits into a verdict.
:meth:`Predictor.predict` returns one :class:`Prediction` per picture; a
picture that cannot be read gives a Prediction with ``error`` set and the
others are still predicted.

**Unsure.** A picture with no ink (blank) is not shown to the model: it is
reported unsure, without probabilities. Otherwise the probabilities are
``softmax(logits / T)`` with the checkpoint's fitted temperature ``T``
(:mod:`mnistcnn.evaluation.calibration`; ``T = 1`` when the checkpoint was never
calibrated), and the prediction is unsure when the top probability is below
``threshold`` (default :data:`DEFAULT_THRESHOLD`).

**Alone or in a batch.** A batched matrix product may pick a different kernel
or summation order for another batch size, which changes the last bits of the
logits (about 1e-8 for the tutorial model on a CPU). So that an image's
probabilities are bit-for-bit the same whatever else is predicted with it:

* every picture goes through the model in a forward pass of its own (batch
  size 1); the preprocessing takes far longer than that forward pass;
* MNIST-style images (IDX files, :meth:`Predictor.probabilities`) go through
  in forward passes of exactly :data:`FORWARD_BATCH` images, the last one
  filled up with blank images, so an image gives the same bits alone (a
  one-image IDX file) as among 10,000, and an IDX file of 10,000 images takes
  157 forward passes instead of 10,000. (An image's result does not depend on
  the other rows of a fixed-size batch: measured for every registered model on
  CPU, ``tests/test_predict_predictor.py``.) These agree with the one-picture
  passes to about 1e-7 in probability, not bit for bit.

**Without torch.** An exported ``.onnx`` on the CPU
(``Predictor.from_checkpoint("model.onnx")``) runs on ONNX Runtime alone: the
model is an :class:`~mnistcnn.artifact.onnx_graph.OnnxGraph`, the softmax is
numpy's (:func:`softmax`), and torch is never imported, so ``mnistcnn predict
model.onnx`` starts in a fraction of ``import torch``'s time. :attr:`Predictor.model`
(what ``--adapt``, ``explain``, ``evaluate --ood`` and ``serve``'s details
use) is then its :class:`~mnistcnn.artifact.onnx_model.OnnxModel`, built on
first use over the same ONNX Runtime session.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from mnistcnn._io import ImageInputError, decode_picture, open_image
from mnistcnn.artifact.onnx_graph import OnnxGraph, is_onnx_file, open_onnx
from mnistcnn.artifact.schema import Checkpoint, temperature_of
from mnistcnn.errors import CheckpointError
from mnistcnn.predict.inputs import Input, InputItem, prepare_picture, python_inputs, read_item
from mnistcnn.predict.prediction import Prediction, short_label
from mnistcnn.predict.unsure import unsure_threshold
from mnistcnn.prepare import (
    INVERT_MODES,
    InvertMode,
    Preparation,
    PreparationSettings,
    PreparedPicture,
    array_to_image,
    to_grayscale,
)

if TYPE_CHECKING:
    import torch

    from mnistcnn.artifact import TrainedModel

log = logging.getLogger(__name__)

#: Default threshold on the calibrated top probability (below it: unsure).
DEFAULT_THRESHOLD = 0.5
#: MNIST-style images go through the model in forward passes of exactly this many.
FORWARD_BATCH = 64
#: Picture files up to this size (bytes) are checked for the dataset's own 28x28 format
#: first, so a folder of such images is predicted in batches (a 28x28 PNG is under 1 kB).
SMALL_FILE = 16_384


def _failed(name: str, error: str) -> Prediction:
    return Prediction(name, None, None, [], False, error)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Calibrated probabilities ``softmax(logits / T)`` per row, in float32, with numpy.

    The operations of ``torch.nn.functional.softmax(logits / T, dim=1)`` on the
    CPU: a float32 division by ``T`` (bitwise torch's), the row maximum
    subtracted, ``exp``, and a division by the row sum. numpy's ``exp`` and
    torch's differ in the last bit, so the probabilities agree with torch's
    within 1e-6, not bit for bit (at most 4e-7 measured on random logits;
    ``tests/test_predict_onnx.py``).

    Args:
        logits: float (N, C).
        temperature: T > 0 (1.0: the plain softmax).

    Returns:
        float32 (N, C), each row summing to 1.
    """
    z = np.asarray(logits, np.float32) / np.float32(temperature)  # (N, C)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


class Predictor:
    """A trained model ready for pictures: preprocessing, calibrated probabilities, unsure rule.

    Args:
        model: the trained model (:func:`mnistcnn.load`): pixels float (N, 1, 28, 28)
            in [0, 1] in, logits (N, C) out; its classes and temperature are used.
            Put in eval mode on ``device``. Or an
            :class:`~mnistcnn.artifact.onnx_graph.OnnxGraph`
            (:func:`~mnistcnn.artifact.onnx_graph.open_onnx`): ONNX Runtime on
            the CPU, without torch (``device`` must then be ``"cpu"``).
        temperature: overrides the model's calibration temperature (> 0;
            1.0 gives the raw softmax); None: the model's.
        threshold: top probability below which a prediction is unsure, in [0, 1].
        invert: ``auto``, ``yes`` or ``no`` (see :class:`~mnistcnn.prepare.Preparation`).
        device: where the model runs.
        top_k: how many classes :class:`Prediction` lists.
        settings: ink-finding thresholds of the preparation (the geometry: the
            model's preparation record, :mod:`mnistcnn.prepare.records`).

    Attributes:
        preparation: the model's :class:`~mnistcnn.prepare.Preparation` with
            ``invert`` and ``settings``: what every picture goes through.
        graph: the OnnxGraph that computes the logits without torch, or None
            (a torch model: :attr:`model`).

    Raises:
        ValueError: a bad ``threshold``, ``temperature``, ``invert`` or
            ``top_k``, a model whose preparation this version does not know,
            or an OnnxGraph on another device than the CPU.
    """

    def __init__(
        self,
        model: TrainedModel | OnnxGraph,
        *,
        temperature: float | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        invert: InvertMode = "auto",
        device: torch.device | str = "cpu",
        top_k: int = 3,
        settings: PreparationSettings | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if invert not in INVERT_MODES:
            raise ValueError(f"invert must be one of {', '.join(INVERT_MODES)}, got {invert!r}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.graph: OnnxGraph | None = None
        self._model: TrainedModel | None = None
        self._device: torch.device | str = device
        if isinstance(model, OnnxGraph):  # ONNX Runtime alone: no torch
            if str(device) != "cpu":
                raise ValueError(f"an OnnxGraph runs on the CPU, not {device!r}: use load()")
            self.graph = model
        else:
            self.model = model.to(self.device).eval()
        self.classes = list(model.classes)
        self.temperature = float(model.temperature if temperature is None else temperature)
        self.calibrated = model.calibrated if temperature is None else temperature != 1.0
        self.threshold = float(threshold)
        self.invert: InvertMode = invert
        self.top_k = top_k
        self.settings = settings or PreparationSettings()
        self.preparation = model.preparer(invert, self.settings)
        #: The checkpoint the model was loaded from (dataset, history, ...), if any.
        self.checkpoint: Checkpoint | None = model.checkpoint

    @property
    def device(self) -> torch.device:
        """Where the model runs (``torch.device``; asking imports torch)."""
        import torch

        return torch.device(self._device)

    @property
    def model(self) -> TrainedModel:
        """The trained model as a torch module (for layers, gradients, adaptation).

        For an OnnxGraph, its :class:`~mnistcnn.artifact.onnx_model.OnnxModel`
        over the same session, built (and torch imported) on first use.
        Setting it makes the Predictor use that model from then on.
        """
        if self._model is None:
            from mnistcnn.artifact.onnx_model import OnnxModel

            assert self.graph is not None
            self._model = OnnxModel(self.graph).eval()
        return self._model

    @model.setter
    def model(self, model: TrainedModel) -> None:
        self._model, self.graph = model, None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        device: str = "cpu",
        invert: InvertMode = "auto",
        threshold: float | None = None,
        top_k: int = 3,
    ) -> Predictor:
        """Load a checkpoint (a file, or a run directory's best.pt) for prediction.

        An exported ``.onnx`` on the ``cpu`` is opened with ONNX Runtime alone
        (:func:`~mnistcnn.artifact.onnx_graph.open_onnx`): torch is not imported.

        Args:
            path: checkpoint written by training, or its ``.onnx`` export.
            device: ``cpu``, ``cuda``, ``mps``, ``auto``, ...
            invert: polarity handling (see :class:`~mnistcnn.prepare.Preparation`).
            threshold: unsure below this calibrated top probability; when None,
                :data:`DEFAULT_THRESHOLD`, or 0.4 for a model trained with outlier
                exposure (:func:`mnistcnn.predict.unsure.unsure_threshold`).
            top_k: classes listed per prediction.

        Raises:
            CheckpointError: unreadable checkpoint (a bare state_dict is named
                as such, with what to do), a model that does not take
                1x28x28 inputs, or a picture preparation this version does not
                know (the message lists the known methods).
            ValueError: a bad device, threshold, invert mode or top_k.
        """
        model: TrainedModel | OnnxGraph
        dev: torch.device | str
        if device == "cpu" and is_onnx_file(path):
            model, dev = open_onnx(path), "cpu"
        else:
            from mnistcnn.artifact import load
            from mnistcnn.engine.utils import select_device

            dev = select_device(device)
            model = load(path, map_location=dev)
        ckpt = model.checkpoint
        assert ckpt is not None
        if list(ckpt.input_size) != [1, 28, 28]:
            raise CheckpointError(
                f"{ckpt.path}: the model takes {ckpt.input_size} inputs; predict needs [1, 28, 28]"
            )
        temperature_of(ckpt)  # checks the stored calibration
        try:
            Preparation.from_record(model.preparation)
        except ValueError as exc:
            raise CheckpointError(f"{ckpt.path}: {exc}") from None
        if not model.calibrated:
            log.info("%s is not calibrated: probabilities are raw softmax (T = 1)", ckpt.path)
        return cls(
            model,
            threshold=unsure_threshold(ckpt, DEFAULT_THRESHOLD) if threshold is None else threshold,
            invert=invert,
            device=dev,
            top_k=top_k,
        )

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """One forward pass: uint8 (N, 28, 28) -> calibrated float32 (N, C) probabilities."""
        if self.graph is not None:  # ONNX Runtime, numpy: no torch
            x = batch.astype(np.float32)[:, None] / np.float32(255.0)  # (N, 1, 28, 28)
            return softmax(self.graph.logits(x), self.temperature)
        return self._torch_forward(batch)

    def _torch_forward(self, batch: np.ndarray) -> np.ndarray:
        """:meth:`_forward` with the torch model (:attr:`model`) on :attr:`device`."""
        import torch
        from torch.nn import functional as F

        from mnistcnn.models.fast_path import fast_path_enabled

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device).float().div(255.0)[:, None]  # (N,1,28,28)
            with fast_path_enabled(self.model):  # the same function, faster CPU kernels
                logits = self.model(x).float()  # (N, C); the model normalizes its pixels itself
            return F.softmax(logits / self.temperature, dim=1).cpu().numpy()

    def forward(self, images: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of uint8 (N, 28, 28) images in one forward pass of N.

        For a few images at a time (the reader's digits); a row may differ from
        :meth:`probabilities`' in the last bits (another batch size).

        Returns:
            float32 (N, C), each row ``softmax(logits / T)``.
        """
        return self._forward(np.array(images, np.uint8).reshape(-1, 28, 28))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities of MNIST-style images, batched.

        Forward passes of exactly :data:`FORWARD_BATCH` images (the last filled
        up with blank images), so each row is the same whatever the other
        images are (see the module docstring).

        Args:
            images: uint8 (N, 28, 28) or (28, 28), 0 background .. 255 ink.

        Returns:
            float32 (N, C), each row ``softmax(logits / T)``, summing to 1.
        """
        batch = np.array(images, np.uint8).reshape(-1, 28, 28)  # a writable copy
        out = np.zeros((len(batch), len(self.classes)), np.float32)
        for start in range(0, len(batch), FORWARD_BATCH):
            chunk = batch[start : start + FORWARD_BATCH]
            full = np.zeros((FORWARD_BATCH, 28, 28), np.uint8)
            full[: len(chunk)] = chunk
            out[start : start + len(chunk)] = self._forward(full)[: len(chunk)]
        return out

    def _judge(
        self, name: str, image: np.ndarray, inverted: bool | None, probs: np.ndarray | None = None
    ) -> Prediction:
        """The Prediction of a non-blank MNIST-style image (probabilities computed if not given)."""
        if probs is None:
            probs = self._forward(np.array(image[None], np.uint8))[0]  # batch of 1
        order = np.argsort(-probs, kind="stable")[: self.top_k]
        topk = [(short_label(self.classes[j]), float(probs[j])) for j in order]
        top = float(probs[order[0]])
        unsure = top < self.threshold
        label = None if unsure else topk[0][0]
        return Prediction(name, label, top, topk, unsure, None, image, False, inverted, probs)

    def judge_prepared(
        self, images: Sequence[np.ndarray], names: Sequence[str]
    ) -> list[Prediction]:
        """Predictions of MNIST-style images (IDX images), with batched forward passes.

        Args:
            images: uint8 (28, 28) each, 0 background .. 255 ink, used as they are.
            names: one name per image (the Predictions' ``path``).

        Returns:
            One Prediction per image, in order; an all-zero image is blank
            (unsure, no probabilities), as in :meth:`predict_item`.
        """
        arrays = [np.asarray(img, np.uint8) for img in images]
        probs = self.probabilities(np.stack(arrays)) if arrays else None
        out = []
        for i, (name, image) in enumerate(zip(names, arrays)):
            if not image.any():
                out.append(Prediction(name, None, None, [], True, None, image, True))
            else:
                assert probs is not None
                out.append(self._judge(name, image, None, probs[i]))
        return out

    def predict_picture(
        self, image: Image.Image | np.ndarray, name: str = "<image>", keep_preview: bool = False
    ) -> Prediction:
        """Prepare one decoded picture (or picture array) and predict it.

        The preparation is the model's (:attr:`preparation`, the same as
        ``model.prepare``). A picture that cannot be prepared (a refused size,
        a bad array, an unusual mode or damaged data Pillow only notices now)
        gives a Prediction with ``error`` set; errors of the model itself are raised.
        """
        try:
            prepared = prepare_picture(image, self.preparation, keep_preview)
        except ImageInputError as exc:
            return _failed(name, str(exc))
        pred = self._verdict(name, prepared)
        if not (prepared.as_given or prepared.blank) and self.preparation.method != "fashion-mnist":
            self._several(image, pred)
        return pred

    def _several(self, image: Image.Image | np.ndarray, pred: Prediction) -> None:
        """Make ``pred`` unsure, with :attr:`Prediction.digits_found`, when the picture
        holds several digits standing apart (:func:`mnistcnn.prepare.segment.digits_on_page`):
        one confident digit would be one of them, read as if it were the whole."""
        picture = array_to_image(image) if isinstance(image, np.ndarray) else image
        gray = to_grayscale(picture)
        from mnistcnn.prepare.segment import digits_on_page  # SciPy, scikit-image: here

        found = digits_on_page(gray, self.preparation.invert, self.preparation.settings)
        if found >= 2:
            pred.digits_found = found
            pred.unsure, pred.label = True, None

    def _verdict(self, name: str, prepared: PreparedPicture) -> Prediction:
        """The Prediction of a prepared picture (blank, or the model's answer)."""
        image = prepared.image
        if prepared.as_given:
            pred = self.judge_prepared([image], [name])[0]
        elif prepared.blank:
            pred = Prediction(name, None, None, [], True, None, image, True, prepared.inverted)
        else:
            pred = self._judge(name, image, prepared.inverted)
        pred.preview, pred.size = prepared.preview, prepared.size
        return pred

    def _small_file_in_format(self, item: InputItem) -> InputItem:
        """A picture file of at most :data:`SMALL_FILE` bytes that is 28x28 and already in the
        dataset's format, as a prepared item (batched like IDX images, with the same
        probabilities as alone); any other item unchanged (a file read here keeps its bytes).
        """
        if item.path is None or item.error is not None or self.invert == "yes":
            return item
        try:
            path = Path(item.path)
            if path.stat().st_size > SMALL_FILE:
                return item
            data = path.read_bytes()
            if item.page is None:  # the header says the size: decode only a 28x28 picture
                with open_image(data) as head:
                    if head.size != (28, 28):
                        return InputItem(item.name, data=data)
            with decode_picture(data, item.page) as picture:
                prepared = self.preparation.given(picture)
        except Exception:  # predict_item reports it
            return item
        if prepared is None:
            return InputItem(item.name, data=data, page=item.page)
        return InputItem(item.name, prepared=prepared)

    def predict_item(self, item: InputItem, keep_preview: bool = False) -> Prediction:
        """Predict one :class:`InputItem` (see :func:`~mnistcnn.predict.inputs.expand_inputs`).

        Never raises for a bad input: every failure is the Prediction's ``error``.
        Reading and decoding: :func:`~mnistcnn.predict.inputs.read_item`; then
        :meth:`predict_picture`.
        """
        if item.error is not None:
            return _failed(item.name, item.error)
        if item.prepared is not None:  # an IDX image: already the model's input
            return self.judge_prepared([np.asarray(item.prepared, np.uint8)], [item.name])[0]
        try:
            picture = read_item(item)
        except ImageInputError as exc:
            return _failed(item.name, str(exc))
        with picture:
            return self.predict_picture(picture, item.name, keep_preview)

    def predict_items(
        self,
        items: Iterable[InputItem],
        keep_previews: bool = False,
        on_prediction: Callable[[Prediction], None] | None = None,
    ) -> list[Prediction]:
        """:meth:`predict_item` for each item, in order; ``on_prediction`` sees each result.

        Runs of MNIST-style items (IDX images, and small picture files already in
        the dataset's 28x28 format) are predicted :data:`FORWARD_BATCH`
        at a time (:meth:`judge_prepared`), with the same results as one by one.
        """
        out: list[Prediction] = []
        run: list[InputItem] = []

        def emit(preds: Iterable[Prediction]) -> None:
            for pred in preds:
                if on_prediction is not None:
                    on_prediction(pred)
                out.append(pred)

        def flush() -> None:
            images = [it.prepared for it in run if it.prepared is not None]  # all of them
            emit(self.judge_prepared(images, [it.name for it in run]))
            run.clear()

        for item in items:
            if not keep_previews:
                item = self._small_file_in_format(item)
            if item.error is None and item.prepared is not None:
                run.append(item)
                if len(run) == FORWARD_BATCH:
                    flush()
                continue
            flush()
            emit([self.predict_item(item, keep_previews)])
        flush()
        return out

    def predict(self, inputs: Iterable[Input], keep_previews: bool = False) -> list[Prediction]:
        """Predict pictures given as Pillow images, arrays, encoded bytes or paths.

        Args:
            inputs: Pillow images; arrays (see
                :func:`~mnistcnn.prepare.pixels.array_to_image`); bytes of an
                image file; paths (``str``/``PathLike``) of image files,
                folders or IDX files. A folder path gives one prediction per
                image file in it, an IDX path one per image it holds; every
                other input gives exactly one (so results line up with inputs).
            keep_previews: keep a small copy of each picture (``preview``).

        Returns:
            One :class:`Prediction` per picture, in input order. Inputs that
            fail (unreadable, not an image, a bad array) have ``error`` set;
            they never stop the others.
        """
        out: list[Prediction] = []
        items: list[InputItem] = []  # consecutive items, predicted together (IDX batches)
        for name, x in python_inputs(inputs):
            if isinstance(x, np.ndarray):
                given = self.preparation.given(x)
                x = InputItem(name, prepared=given) if given is not None else x
            if isinstance(x, (Image.Image, np.ndarray)):
                out += self.predict_items(items, keep_previews)
                items = []
                out.append(self.predict_picture(x, name, keep_previews))
            else:
                items.append(x)
        return out + self.predict_items(items, keep_previews)
