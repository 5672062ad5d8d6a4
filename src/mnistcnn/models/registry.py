"""Model registry: build any registered network by name (timm-style)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from mnistcnn.errors import SettingError

ModelFactory = Callable[..., nn.Module]

_REGISTRY: dict[str, ModelFactory] = {}
_DESCRIPTIONS: dict[str, str] = {}
_CLASSIFIERS: dict[str, str] = {}


def register_model(
    name: str, description: str = "", classifier: str = ""
) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator adding a factory ``fn(num_classes=10, in_chans=1, **kwargs) -> nn.Module``.

    ``classifier``: the name (in ``named_modules()``) of the final layer that
    produces the logits, as timm's ``pretrained_cfg["classifier"]``: the layer
    fine-tuning replaces when the classes change (:func:`classifier_name`).
    """

    def decorator(fn: ModelFactory) -> ModelFactory:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = fn
        _DESCRIPTIONS[name] = description or (fn.__doc__ or "").strip().splitlines()[0]
        if classifier:
            _CLASSIFIERS[name] = classifier
        return fn

    return decorator


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def describe_model(name: str) -> str:
    """One-line description of a registered model."""
    check_model_name(name)
    return _DESCRIPTIONS[name]


def create_model(name: str, num_classes: int = 10, in_chans: int = 1, **kwargs: Any) -> nn.Module:
    """Build registered model ``name``.

    Every model takes float32 input of shape (N, in_chans, 28, 28) and returns
    raw logits of shape (N, num_classes) (no softmax).

    Raises:
        ValueError: unknown name; the message lists the valid names.
    """
    check_model_name(name)
    return _REGISTRY[name](num_classes=num_classes, in_chans=in_chans, **kwargs)


def check_model_name(name: str) -> None:
    """Raise ``SettingError`` (``model``, a ``ValueError``) listing the valid names if
    ``name`` is not registered."""
    if name not in _REGISTRY:
        raise SettingError(
            f"unknown model {name!r}; valid models: {', '.join(list_models())}", setting="model"
        )


def classifier_name(name: str) -> str | None:
    """The final (logits) layer of model ``name`` (``"fc3"``, ``"fc"``); None if undeclared.

    Raises:
        ValueError: unknown model name.
    """
    check_model_name(name)
    return _CLASSIFIERS.get(name)
