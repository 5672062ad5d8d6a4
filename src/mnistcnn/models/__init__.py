"""Networks for 28x28 inputs, built by name: ``create_model("tutorial")``."""

from mnistcnn.models import bncnn as _bncnn  # noqa: F401  (registers "bncnn")
from mnistcnn.models import fastcnn as _fastcnn  # noqa: F401  (registers "fastcnn")
from mnistcnn.models import googlenet as _googlenet  # noqa: F401  (registers "googlenet")
from mnistcnn.models import resnet as _resnet  # noqa: F401  (registers "resnet18", "resnet34", "resnet50")
from mnistcnn.models import s2dcnn as _s2dcnn  # noqa: F401  (registers "s2dcnn")
from mnistcnn.models import tinycnn as _tinycnn  # noqa: F401  (registers "tinycnn")
from mnistcnn.models import tutorial as _tutorial  # noqa: F401  (registers "tutorial")
from mnistcnn.models import vgg as _vgg  # noqa: F401  (registers "vgg19")
from mnistcnn.models.fast_path import fast_path_enabled, set_fast_path, supports_fast_path
from mnistcnn.models.registry import (
    check_model_name,
    classifier_name,
    create_model,
    describe_model,
    list_models,
    register_model,
)

__all__ = [
    "check_model_name",
    "classifier_name",
    "create_model",
    "describe_model",
    "fast_path_enabled",
    "list_models",
    "register_model",
    "set_fast_path",
    "supports_fast_path",
]
