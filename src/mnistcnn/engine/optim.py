"""The optimizer and learning-rate schedule a :class:`TrainConfig` names.

The optimizers are torch's (:class:`torch.optim.Adam`, :class:`torch.optim.SGD`),
subclassed only so that a training process does not import ``torch._dynamo``: torch
wraps ``step``, ``zero_grad``, ``add_param_group``, ``state_dict``,
``load_state_dict`` and the functional ``adam``/``sgd`` in helpers that import
``torch._dynamo`` on their first call (to mark them as not compiled, or to break
a compiled graph there). That import costs about 1.4 s of CPU here (``python -c
"import torch, torch._dynamo"`` against ``python -c "import torch"``), a quarter
of a 5-second ``mnistcnn train --recipe fast``, and a run that compiles nothing
does not need it. The subclasses call the same undecorated torch functions (the
same math, the same state and state-dict format) while ``torch._dynamo`` is not
loaded; once anything has loaded it, they defer to torch's decorated methods.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.optim.adam import adam as adam_functional
from torch.optim.sgd import sgd as sgd_functional

from mnistcnn.config import TrainConfig

__all__ = ["build_optimizer", "build_scheduler"]


def _dynamo_loaded() -> bool:
    return "torch._dynamo" in sys.modules


@contextlib.contextmanager
def _functional_undecorated(functional: Callable[..., Any]) -> Iterator[None]:
    """Inside: torch's dynamo-disabled ``functional`` (``torch.optim.adam.adam``) calls
    itself directly instead of importing ``torch._dynamo`` to wrap itself.

    torch's ``_disable_dynamo`` caches the wrapped function as ``fn.__dynamo_disable``
    and uses it if present; setting it to ``fn`` itself (only while torch._dynamo is
    not loaded, when nothing can be compiling) skips the import. Removed on exit.
    """
    raw = inspect.unwrap(functional)
    if raw is functional or hasattr(raw, "__dynamo_disable"):
        yield
        return
    raw.__dynamo_disable = raw
    try:
        yield
    finally:
        with contextlib.suppress(AttributeError):
            del raw.__dynamo_disable


class _WithoutDynamo(torch.optim.Optimizer):
    """Mixin: torch's optimizer methods without the ``torch._dynamo`` import (module doc)."""

    _functional: Callable[..., Any]

    def step(self, closure: Any = None) -> Any:
        base: Any = type(self).__mro__[2]  # the torch optimizer class after this mixin
        if _dynamo_loaded():
            return base.step(self, closure)
        with _functional_undecorated(self._functional), torch.no_grad():
            return inspect.unwrap(base.step)(self, closure)  # torch's step: no_grad around it

    def zero_grad(self, set_to_none: bool = True) -> None:
        fn = torch.optim.Optimizer.zero_grad
        (fn if _dynamo_loaded() else inspect.unwrap(fn))(self, set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        fn = torch.optim.Optimizer.add_param_group
        (fn if _dynamo_loaded() else inspect.unwrap(fn))(self, param_group)

    def state_dict(self) -> dict[str, Any]:
        fn = torch.optim.Optimizer.state_dict
        out: dict[str, Any] = (fn if _dynamo_loaded() else inspect.unwrap(fn))(self)
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        fn = torch.optim.Optimizer.load_state_dict
        (fn if _dynamo_loaded() else inspect.unwrap(fn))(self, state_dict)


class Adam(_WithoutDynamo, torch.optim.Adam):
    """:class:`torch.optim.Adam`, without importing ``torch._dynamo`` (module doc)."""

    _functional = staticmethod(adam_functional)


class SGD(_WithoutDynamo, torch.optim.SGD):
    """:class:`torch.optim.SGD`, without importing ``torch._dynamo`` (module doc)."""

    _functional = staticmethod(sgd_functional)


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam, SGD (with ``momentum``, Nesterov off) or Adadelta at ``config.lr``.

    Adam and SGD use the fused (single-kernel) implementation when every
    parameter is a float tensor on the CPU or CUDA: the same update rule, up to
    float rounding, and about 2x faster per step on small models.
    """
    params = list(model.parameters())
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    if config.optimizer == "adam":
        return Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)
    if config.optimizer == "sgd":
        return SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            fused=fused or None,
        )
    if config.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.lr_scheduler.LRScheduler | None, bool]:
    """The learning-rate schedule and whether it steps per batch (else per epoch)."""
    total = config.epochs * steps_per_epoch
    if config.scheduler == "none":
        return None, False
    if config.scheduler == "step":
        step = torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, gamma=config.gamma)
        return step, False
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total), True
    if config.scheduler == "onecycle":
        warmup = config.warmup_fraction
        if warmup * total == 1:  # OneCycleLR's warm-up phase would end at step 0 and divide
            warmup = 0.5 / total  # by zero (e.g. 4 steps at 0.25): no warm-up for such a run
        cycle = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total, pct_start=warmup
        )
        return cycle, True
    raise ValueError(f"unknown scheduler {config.scheduler!r}")
