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
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from mnistcnn.explain.conv_arithmetic import AxisArithmetic

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


def explain_failure(model: nn.Module, input_shape: tuple[int, ...]) -> str | None:
    """Why one zero sample of ``input_shape`` fails in ``model``, naming the layer; None if unknown.

    Runs the forward pass on the CPU with hooks on the leaf layers, so the layer
    that raised and the shape it got are known: a ``Linear`` whose
    ``in_features`` differ from what the layer before gives, a ``Conv2d`` given
    other channels, a kernel larger than its (padded) input. None when the
    pass succeeds or fails outside a leaf layer.
    """
    import torch

    names = {id(m): n for n, m in model.named_modules()}
    state: dict[str, Any] = {"current": None, "last": None}

    def before(module: nn.Module, args: tuple[Any, ...]) -> None:
        got = args[0] if args else None
        state["current"] = (module, tuple(got.shape) if isinstance(got, torch.Tensor) else None)

    def after(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        state["last"] = (module, tuple(out.shape) if isinstance(out, torch.Tensor) else None)
        state["current"] = None

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [h for m in leaves for h in (m.register_forward_pre_hook(before),
                                         m.register_forward_hook(after))]  # fmt: skip
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(1, *input_shape))
        return None
    except Exception as exc:  # the failure being explained: any error of the forward pass
        error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if state["current"] is None or state["current"][1] is None:
        return None
    module, shape = state["current"]
    name = f"{describe_layer(module)} (layer {names.get(id(module), '?')})"
    return _layer_mismatch(module, name, shape[1:], state["last"]) or (
        f"{name} fails on its input {_dims(shape[1:])}: {error}"
    )


def _dims(shape: tuple[int, ...]) -> str:
    return " x ".join(map(str, shape))


def _layer_mismatch(
    module: nn.Module, name: str, got: tuple[int, ...], last: tuple[nn.Module, Any] | None
) -> str | None:
    """The reason a layer cannot take an input of shape ``got`` (no batch dim), if a known one."""
    gives = "the input has"  # the first layer: the sample itself
    if last is not None and last[1] is not None:
        gives = f"{describe_layer(last[0])} gives"
    if isinstance(module, nn.Linear) and got and got[-1] != module.in_features:
        return f"{gives} {got[-1]} features but {name} expects {module.in_features}"
    if isinstance(module, nn.Conv2d) and len(got) == 3 and got[0] != module.in_channels:
        return f"{gives} {got[0]} channels but {name} expects {module.in_channels}"
    if isinstance(module, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d) and len(got) == 3:
        kh, kw = _pair(module.kernel_size)
        ph, pw = _pair(module.padding)
        dh, dw = _pair(getattr(module, "dilation", 1))
        span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
        h, w = got[1] + 2 * ph, got[2] + 2 * pw
        if h < span_h or w < span_w:
            return (
                f"{gives} {got[1]} x {got[2]} per channel ({h} x {w} with padding), "
                f"smaller than the {span_h} x {span_w} window of {name}"
            )
    return None


def _rows(infos: list[Any], names: dict[int, str]) -> list[LayerRow]:
    """One row per torchinfo ``LayerInfo``; a module called again gets 0 params."""
    rows: list[LayerRow] = []
    seen: set[int] = set()
    for index, info in enumerate(infos):
        module = info.module
        repeated = id(module) in seen
        seen.add(id(module))
        following = infos[index + 1].module if index + 1 < len(infos) else None
        explanation = _explain(module, info, following, rows)
        if repeated:
            explanation.append("the same module called again: its parameters are counted once")
        if not info.is_leaf_layer:
            explanation = [f"parameters held directly by this module: {_own_params(info):,}"]
        rows.append(
            LayerRow(
                name=names.get(id(module), info.var_name) or type(module).__name__,
                layer=describe_layer(module),
                output_shape=tuple(_flat_shape(info.output_size)[1:]),
                params=0 if repeated else _own_params(info),
                mult_adds=int(info.macs) if info.is_leaf_layer else 0,
                explanation=explanation,
            )
        )
    return rows


def describe_layer(module: nn.Module) -> str:
    """Compact layer text: ``Conv2d(1,10,5,p=2)``, ``AvgPool2d(2,2)``, ``Linear(500,250)``."""
    kind = type(module).__name__
    if isinstance(module, nn.Conv2d):
        extra = _extras(s=_one(module.stride), p=_one(module.padding), d=_one(module.dilation))
        if module.groups != 1:
            extra += f",groups={module.groups}"
        return (
            f"{kind}({module.in_channels},{module.out_channels},{_one(module.kernel_size)}{extra})"
        )
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
        extra = _extras(p=_one(module.padding))
        if isinstance(module, nn.MaxPool2d):
            extra += _extras(d=_one(module.dilation))
        return f"{kind}({_one(module.kernel_size)},{_one(module.stride)}{extra})"
    if isinstance(module, nn.Linear):
        return f"{kind}({module.in_features},{module.out_features})"
    if isinstance(module, nn.Flatten) and (module.start_dim, module.end_dim) == (1, -1):
        return kind
    extra_repr = module.extra_repr()
    return f"{kind}({extra_repr})" if extra_repr and len(extra_repr) <= 40 else kind


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
    model, ckpt = load_model(checkpoint, map_location="cpu")
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


def _flat_shape(size: Any) -> list[int]:
    """torchinfo sizes are ``[N, C, H, W]`` or nested lists for several tensors."""
    if isinstance(size, list | tuple) and all(isinstance(v, int) for v in size):
        return list(size)
    return []


def _one(value: Any) -> Any:
    """``(5, 5)`` -> ``5``; keeps non-square pairs."""
    if isinstance(value, tuple) and len(set(value)) == 1:
        return value[0]
    return value


def _extras(**values: Any) -> str:
    defaults = {"s": 1, "p": 0, "d": 1}
    return "".join(f",{k}={v}" for k, v in values.items() if v != defaults[k])


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _explain(
    module: nn.Module, info: Any, following: nn.Module | None, previous: list[LayerRow]
) -> list[str]:
    in_shape = _flat_shape(info.input_size)[1:]
    out_shape = _flat_shape(info.output_size)[1:]
    if isinstance(module, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d) and len(in_shape) == 3:
        lines = _spatial_lines(module, in_shape, out_shape)
        if isinstance(module, nn.Conv2d):
            lines.append(_conv_params(module))
        else:
            lines.append(f"channels unchanged: {in_shape[0]}")
        return lines
    if isinstance(module, nn.Flatten) and len(in_shape) > 1:
        line = f"{' x '.join(map(str, in_shape))} = {math.prod(in_shape)}"
        if isinstance(following, nn.Linear):
            line += (
                f": so the next layer, {describe_layer(following)}, takes "
                f"in_features = {following.in_features}"
            )
        return [line]
    if isinstance(module, nn.Linear):
        lines = [_linear_params(module)]
        before = previous[-1].output_shape if previous else ()
        if len(before) > 1 and math.prod(before) == module.in_features:
            dims = " x ".join(map(str, before))
            lines.insert(0, f"input {dims} flattened in forward() = {module.in_features}")
        return lines
    if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
        return [f"adaptive: output fixed at {module.output_size} whatever the input size"]
    return []


def _spatial_lines(module: nn.Module, in_shape: list[int], out_shape: list[int]) -> list[str]:
    label = describe_layer(module)
    if module.padding == "same":
        return [f"{label}: padding='same' keeps {in_shape[1]} x {in_shape[2]}"]
    padding = 0 if module.padding == "valid" else module.padding
    k, s, p = _pair(module.kernel_size), _pair(module.stride), _pair(padding)
    d = _pair(getattr(module, "dilation", 1))
    ceil_mode = bool(getattr(module, "ceil_mode", False))
    axes = [
        AxisArithmetic(n=in_shape[1 + i], k=k[i], p=p[i], s=s[i], d=d[i], ceil_mode=ceil_mode)
        for i in range(2)
    ]
    texts = []
    for i, axis in enumerate(axes):
        text = f"{axis.n} -> {axis.formula(show_zero_padding=False)}"
        if len(out_shape) == 3 and out_shape[1 + i] != axis.size:
            text += f" (actual {out_shape[1 + i]})"
        texts.append(text)
    if texts[0] == texts[1]:
        return [f"{label}: {texts[0]}"]
    return [f"{label}: H {texts[0]}", f"{label}: W {texts[1]}"]


def _conv_params(conv: nn.Conv2d) -> str:
    kh, kw = conv.kernel_size
    per_filter = f"{conv.in_channels // conv.groups} x {kh} x {kw}"
    text = f"params: {conv.out_channels} x ({per_filter})"
    if conv.bias is not None:
        text += f" + {conv.out_channels}"
    total = sum(p.numel() for p in conv.parameters())
    return f"{text} = {total:,}"


def _linear_params(linear: nn.Linear) -> str:
    text = f"params: {linear.in_features} x {linear.out_features}"
    if linear.bias is not None:
        text += f" + {linear.out_features}"
    total = sum(p.numel() for p in linear.parameters())
    return f"{text} = {total:,}"
