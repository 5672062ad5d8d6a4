"""A model, layer by layer: output shapes, parameters, multiply-adds, and why.

Parameter and multiply-add counts come from torchinfo (one forward pass of a
single zero-filled sample on the CPU). torchinfo counts, per layer, one
multiply-add per weight use and one per bias addition: ``Conv2d`` =
``(C_out x H_out x W_out) x (C_in/groups x kh x kw) + bias uses``, ``Linear`` =
``in x out + out``. The shape arithmetic uses the PyTorch documentation's
formula ``floor((n + 2p - d*(k-1) - 1) / s) + 1`` (``Conv2d``, ``MaxPool2d``,
``AvgPool2d`` "Shape" sections).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from mnistcnn.explain.layers import describe_layer, explain_failure, flat_shape, layer_lines

logger = logging.getLogger(__name__)

DEFAULT_INPUT_SHAPE = (1, 28, 28)
MAX_INPUT_CHANNELS = 64  # --input-shape limits: one sample stays under 256 MiB of float32
MAX_INPUT_SIDE = 1024


@dataclass(frozen=True)
class LayerRow:
    """One executed layer.

    Attributes:
        name: dotted module path inside the model (``"0"``, ``"features.conv1"``).
        layer: compact description, e.g. ``"Conv2d(1,10,5,p=2)"``.
        output_shape: output shape without the batch dimension, e.g. ``(10, 28, 28)``.
        params: parameters held by the layer (0 on a repeated call of the same module;
            for a container, only the parameters it holds directly).
        mult_adds: multiply-adds for one sample (torchinfo's count; 0 for a container).
        explanation: the shape and parameter arithmetic, one line each (may be empty).
    """

    name: str
    layer: str
    output_shape: tuple[int, ...]
    params: int
    mult_adds: int
    explanation: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelSummary:
    """A model's table and totals.

    Attributes:
        model: label of the model (registry name, or name and checkpoint path).
        input_shape: one sample's shape, e.g. ``(1, 28, 28)``.
        layers: the leaf layers in execution order.
        total_params: all parameters (156,640 for ``tutorial``).
        trainable_params: those with ``requires_grad``.
        total_mult_adds: multiply-adds for one sample, summed over the leaf layers.
    """

    model: str
    input_shape: tuple[int, ...]
    layers: list[LayerRow]
    total_params: int
    trainable_params: int
    total_mult_adds: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists)."""
        return dataclasses.asdict(self)


def check_input_shape(input_shape: tuple[int, ...]) -> None:
    """Refuse a sample shape that is not ``(C, H, W)`` within the limits.

    Raises:
        ValueError: not 3 dimensions, or C outside 1..:data:`MAX_INPUT_CHANNELS`,
            H or W outside 1..:data:`MAX_INPUT_SIDE` (a 1x100000x100000 sample
            would need 40 GB).
    """
    if len(input_shape) != 3:
        raise ValueError(f"an input shape is C x H x W, got {list(input_shape)}")
    c, h, w = input_shape
    if not (1 <= c <= MAX_INPUT_CHANNELS and 1 <= h <= MAX_INPUT_SIDE and 1 <= w <= MAX_INPUT_SIDE):
        raise ValueError(
            f"input shape {c}x{h}x{w} is out of range: channels 1..{MAX_INPUT_CHANNELS}, "
            f"height and width 1..{MAX_INPUT_SIDE}"
        )


def summarize_model(
    model: nn.Module,
    input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE,
    label: str = "",
    expected_shape: tuple[int, ...] | None = None,
) -> ModelSummary:
    """Trace ``model`` on one zero sample of ``input_shape`` and explain each layer.

    The model is moved to the CPU (it stays there) and run in eval mode; its weights
    and its train/eval mode are left as they were.

    Args:
        model: any ``nn.Module`` taking float32 ``(N, *input_shape)``.
        input_shape: one sample's shape without the batch dimension, e.g. ``(1, 28, 28)``.
        label: name shown for the model (defaults to its class name).
        expected_shape: the shape the model is made for (a checkpoint's input
            size), named in the error when ``input_shape`` does not fit.

    Raises:
        ImportError: torchinfo is not installed.
        ValueError: ``input_shape`` out of range (:func:`check_input_shape`).
        RuntimeError: the forward pass fails for this input shape; the message
            names the layer that fails and why (e.g. ``Flatten gives 720
            features but Linear(500,250) expects 500``).
    """
    import torchinfo

    check_input_shape(tuple(input_shape))
    try:
        stats = torchinfo.summary(
            model, input_size=(1, *input_shape), verbose=0, device="cpu", mode="eval"
        )
    except RuntimeError as exc:
        cause = exc.__cause__ or exc
        shape = " x ".join(map(str, input_shape))
        why = explain_failure(model, tuple(input_shape)) or str(cause)
        if expected_shape is not None and tuple(expected_shape) != tuple(input_shape):
            needs = " x ".join(map(str, expected_shape))
            why += f"; {label or type(model).__name__} takes {needs} inputs"
        raise RuntimeError(f"the model cannot run on input {shape}: {why}") from exc
    infos = [i for i in stats.summary_list if i.is_leaf_layer or i.leftover_params() > 0]
    rows = _rows(infos, {id(module): name for name, module in model.named_modules()})
    return ModelSummary(
        model=label or type(model).__name__,
        input_shape=tuple(input_shape),
        layers=rows,
        total_params=int(stats.total_params),
        trainable_params=int(stats.trainable_params),
        total_mult_adds=int(stats.total_mult_adds),
    )


def _rows(infos: list[Any], names: dict[int, str]) -> list[LayerRow]:
    """One row per torchinfo ``LayerInfo``; a module called again gets 0 params."""
    rows: list[LayerRow] = []
    seen: set[int] = set()
    for index, info in enumerate(infos):
        module = info.module
        repeated = id(module) in seen
        seen.add(id(module))
        following = infos[index + 1].module if index + 1 < len(infos) else None
        explanation = layer_lines(module, info, following, rows)
        if repeated:
            explanation.append("the same module called again: its parameters are counted once")
        if not info.is_leaf_layer:
            explanation = [f"parameters held directly by this module: {_own_params(info):,}"]
        rows.append(
            LayerRow(
                name=names.get(id(module), info.var_name) or type(module).__name__,
                layer=describe_layer(module),
                output_shape=tuple(flat_shape(info.output_size)[1:]),
                params=0 if repeated else _own_params(info),
                mult_adds=int(info.macs) if info.is_leaf_layer else 0,
                explanation=explanation,
            )
        )
    return rows


def load_model_for_summary(
    checkpoint: str | Path | None = None, model_name: str | None = None
) -> tuple[nn.Module, str, tuple[int, ...]]:
    """The model to summarize, from a checkpoint file or a registry name.

    Returns:
        ``(model in eval mode on the CPU, label, input_shape)``; ``input_shape`` is
        the checkpoint's input size where it records one, else ``(in_chans, 28, 28)``.

    Raises:
        ValueError: neither or both given, or an unknown model name.
        RuntimeError: checkpoint loading (``mnistcnn.artifact``) unavailable.
        FileNotFoundError / other loader errors: passed through from the checkpoint loader.
    """
    if (checkpoint is None) == (model_name is None):
        raise ValueError("give exactly one of a checkpoint path or a model name")
    if model_name is not None:
        from mnistcnn.models import create_model

        return create_model(model_name).eval(), model_name, DEFAULT_INPUT_SHAPE
    try:
        from mnistcnn.artifact import load_model
    except ImportError as exc:
        raise RuntimeError(f"checkpoint loading is not available: {exc}") from exc
    assert checkpoint is not None
    from mnistcnn.artifact.onnx_model import require_layers

    model, ckpt = load_model(checkpoint, map_location="cpu")
    require_layers(model, "explain model")
    kwargs = getattr(ckpt, "model_kwargs", None) or {}
    in_chans = int(kwargs.get("in_chans", 1))
    shape = _checkpoint_input_shape(getattr(ckpt, "input_size", None), in_chans)
    return model.net.eval(), f"{ckpt.model_name} ({checkpoint})", shape


def _checkpoint_input_shape(size: Any, in_chans: int) -> tuple[int, ...]:
    if isinstance(size, int):
        return (in_chans, size, size)
    if isinstance(size, list | tuple) and len(size) in (2, 3):
        dims = tuple(int(v) for v in size)
        return dims if len(dims) == 3 else (in_chans, *dims)
    return (in_chans, *DEFAULT_INPUT_SHAPE[1:])


def _own_params(info: Any) -> int:
    return int(info.num_params if info.is_leaf_layer else info.leftover_params())
