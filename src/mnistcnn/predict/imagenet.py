"""torchvision's ImageNet networks as they are, on photos: ``mnistcnn predict torchvision:NAME``.

:func:`load_imagenet_model` gives a :class:`~mnistcnn.artifact.TrainedModel`
over torchvision's network (1,000 classes named by its weights' ``meta["categories"]``,
ImageNet normalization as its buffers), so the explain tools take it as they take a
trained digit model. :func:`prepare_photo` is torchvision's ImageNet preprocessing
(``weights.transforms()``: resize the short side to 256 (232 for ResNet-50's V2
weights), centre crop 224, bilinear) without the normalization, which the model does.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms._presets import ImageClassification

from mnistcnn._io import images as _images
from mnistcnn.artifact import TrainedModel
from mnistcnn.errors import SettingError
from mnistcnn.models.imagenet import IMAGENET_MEAN, IMAGENET_STD, torchvision_net
from mnistcnn.models.weights import (
    IMAGENET_MODELS,
    load_imagenet_state_dict,
    torchvision_weights,
    weights_file,
)
from mnistcnn.predict.inputs import InputItem, expand_inputs

log = logging.getLogger(__name__)

#: How a torchvision ImageNet network is named where a checkpoint is expected.
PREFIX = "torchvision:"


def is_torchvision_name(spec: object) -> bool:
    """True for ``"torchvision:NAME"`` (a string starting with :data:`PREFIX`)."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def torchvision_model_name(spec: str) -> str:
    """``"torchvision:resnet50"`` -> ``"resnet50"``.

    Raises:
        SettingError: (setting ``model``) not one of ``torchvision:vgg19|resnet50|googlenet``.
    """
    name = spec[len(PREFIX) :] if is_torchvision_name(spec) else spec
    if name not in IMAGENET_MODELS:
        valid = ", ".join(PREFIX + m for m in IMAGENET_MODELS)
        raise SettingError(f"unknown ImageNet model {spec!r}; valid: {valid}", setting="model")
    return name


def load_imagenet_model(
    spec: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    download: bool = True,
    device: str | torch.device = "cpu",
) -> TrainedModel:
    """torchvision's ImageNet network ``spec`` (``torchvision:resnet50``) as a TrainedModel.

    Weights: :func:`~mnistcnn.models.weights.locate_weights` (``weights``
    file, hub cache, download). The model takes float (N, 3, 224, 224) RGB
    pixels in [0, 1] and returns logits (N, 1000); ``classes`` are the
    ImageNet category names; ``preparation`` records the resize and crop.

    Raises:
        SettingError: unknown name. WeightsError: no usable weights file.
    """
    name = torchvision_model_name(spec)
    net = torchvision_net(name, load_imagenet_state_dict(name, weights, download=download))
    preset = torchvision_weights(name).transforms()
    preparation = {
        "method": "imagenet",
        "resize": int(preset.resize_size[0]),
        "crop": int(preset.crop_size[0]),
        "interpolation": preset.interpolation.value,
        "weights": weights_file(name).weights,
    }
    model = TrainedModel(
        net,
        IMAGENET_MEAN,
        IMAGENET_STD,
        classes=weights_file(name).categories,
        model_name=PREFIX + name,
        dataset="imagenet",
        input_size=[3, preparation["crop"], preparation["crop"]],
        preparation=preparation,
    )
    return model.to(device).eval()


def prepare_photo(img: Image.Image, preparation: dict[str, Any]) -> torch.Tensor:
    """A picture -> float32 (3, crop, crop) RGB in [0, 1], as torchvision prepares ImageNet input.

    ``ImageClassification(crop_size, resize_size, interpolation)`` of
    torchvision's weights with mean 0 and std 1 (the model normalizes);
    EXIF orientation applied, any mode converted to RGB.
    """
    preset = ImageClassification(
        crop_size=preparation["crop"],
        resize_size=preparation["resize"],
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        interpolation=InterpolationMode(preparation["interpolation"]),
    )
    return preset(_images.upright(img).convert("RGB"))


def read_photo(item: InputItem) -> Image.Image:
    """The picture of an input item (a file, bytes, or a 28x28 IDX image).

    Raises:
        ImageDecodeError (a ValueError), OSError: the file cannot be read as a picture.
    """
    if item.prepared is not None:
        return Image.fromarray(item.prepared, "L")
    source = item.path if item.path is not None else item.data or b""
    return _images.decode_image(source)


@dataclass
class ImageNetPrediction:
    """A picture's top categories ``topk`` [(category, probability)], best first; or ``error``."""

    path: str
    topk: list[tuple[str, float]] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: path, top-k as [{"category", "index", "probability"}], error."""
        top = [
            {"category": c, "index": i, "probability": p}
            for (c, p), i in zip(self.topk, self.indices)
        ]
        return {"path": self.path, "topk": top, "error": self.error}


@torch.inference_mode()
def predict_photos(
    model: TrainedModel, inputs: list[str], *, top_k: int = 5, stdin: Any = None
) -> list[ImageNetPrediction]:
    """The ``top_k`` ImageNet categories of each picture of ``inputs`` (files, folders, globs, -).

    Probabilities are the softmax of the 1,000 logits (float, each in [0, 1]).
    A picture that cannot be read gets ``error`` and the others go on.
    """
    results = []
    for item in expand_inputs(inputs, stdin):
        if item.error is not None:
            results.append(ImageNetPrediction(item.name, error=item.error))
            continue
        try:
            x = prepare_photo(read_photo(item), model.preparation)  # (3, 224, 224)
        except (ValueError, OSError) as exc:
            results.append(ImageNetPrediction(item.name, error=str(exc)))
            continue
        probs = model.probabilities(x[None])[0]  # (1000,)
        values, indices = probs.topk(min(top_k, probs.numel()))
        top = [(model.classes[int(i)], float(v)) for v, i in zip(values, indices)]
        results.append(ImageNetPrediction(item.name, top, [int(i) for i in indices]))
    return results
