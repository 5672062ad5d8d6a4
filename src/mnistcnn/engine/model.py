"""The model a run trains: the architecture (registered, ImageNet-pretrained or your own
``net``) inside a :class:`~mnistcnn.artifact.TrainedModel` that carries the data's
normalization, classes and picture preparation."""

from __future__ import annotations

from typing import Any

from torch import nn

from mnistcnn import data as mdata
from mnistcnn.artifact import TrainedModel
from mnistcnn.config import TrainConfig
from mnistcnn.data.folder import is_folder_dataset
from mnistcnn.engine.sources import DataSources
from mnistcnn.models import create_model
from mnistcnn.prepare import preparation_record


def _preparation(dataset: str) -> dict[str, Any]:
    """The dataset's picture preparation record; a picture folder's pictures are digits
    prepared as ``predict`` prepares them (MNIST's method)."""
    method = "mnist" if is_folder_dataset(dataset) else mdata.get_spec(dataset).preparation
    return preparation_record(method)


def trained_model(
    config: TrainConfig, sources: DataSources, net: nn.Module | None = None
) -> TrainedModel:
    """The model to train: ``net`` (or ``config.model`` built from the registry) in a
    :class:`TrainedModel` with the dataset's normalization, classes and preparation.

    With ``config.pretrained``: the ImageNet-pretrained network
    (:func:`~mnistcnn.models.imagenet.pretrained_net`) with the ImageNet
    normalization instead of the dataset's.

    Raises:
        ValueError: ``config.model`` is not a registered model (and no ``net``).
        WeightsError: ``config.pretrained`` and no usable ImageNet weights file.
    """
    kwargs: dict[str, Any] = {"num_classes": len(sources.classes), "in_chans": 1}
    name = "custom" if net is not None else config.model
    mean, std = list(sources.mean), list(sources.std)
    if net is None and config.pretrained:  # ImageNet weights, ImageNet normalization
        from mnistcnn.models.imagenet import imagenet_normalization, pretrained_net

        net, kwargs = pretrained_net(
            config.model, len(sources.classes), weights=config.weights, freeze=config.freeze
        )
        mean, std = map(list, imagenet_normalization(config.model))
    if net is None:
        net = create_model(config.model, **kwargs)
    return TrainedModel(
        net,
        mean,
        std,
        classes=sources.classes,
        model_name=name,
        model_kwargs=kwargs if name != "custom" else {},
        dataset=config.dataset,
        input_size=[1, 28, 28],
        preparation=_preparation(config.dataset),
        precision=config.precision,
    )
