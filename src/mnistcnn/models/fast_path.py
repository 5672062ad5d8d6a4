"""Opt-in fast CPU forwards: :func:`set_fast_path` turns them on for a whole model."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def supports_fast_path(module: nn.Module) -> bool:
    """True when ``module`` has a public boolean ``fast_path`` flag (e.g. ``TutorialCNN``)."""
    return isinstance(getattr(module, "fast_path", None), bool)


def set_fast_path(model: M, enabled: bool) -> M:
    """Set ``fast_path = enabled`` on every submodule of ``model`` that has the flag.

    A fast path computes the same function with faster kernels (for the
    tutorial CNN: fused ReLU + average pooling on the CPU,
    :meth:`~mnistcnn.models.tutorial.TutorialCNN.fast_forward`) but skips
    layers, so forward hooks on them do not run. It is off by default; the
    training engine turns it on, the explain tools and exporters leave it off.
    Works through wrappers (``DistributedDataParallel``, ``AveragedModel``, a
    module holding the network as ``.net``); modules without the flag,
    and TorchScript modules, are left alone.

    Args:
        model: any module.
        enabled: the new value of the flags.

    Returns:
        ``model`` itself (changed in place), so calls can be chained.

    Raises:
        TypeError: ``enabled`` is not a bool.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {type(enabled).__name__}")
    for module in model.modules():
        if supports_fast_path(module) and not isinstance(module, torch.jit.ScriptModule):
            module.fast_path = enabled  # type: ignore[assignment]
    return model


@contextlib.contextmanager
def fast_path_enabled(model: nn.Module) -> Iterator[nn.Module]:
    """Inside: ``model``'s fast paths on (same function, faster CPU kernels); after: as before.

    For inference passes that run no hooks (evaluation, batched prediction).
    Each flag is restored to its own earlier value, also on an exception.
    """
    flagged = [
        m
        for m in model.modules()
        if supports_fast_path(m) and not isinstance(m, torch.jit.ScriptModule)
    ]
    before = [bool(m.fast_path) for m in flagged]
    try:
        for m in flagged:
            m.fast_path = True  # type: ignore[assignment]
        yield model
    finally:
        for m, value in zip(flagged, before):
            m.fast_path = value  # type: ignore[assignment]
