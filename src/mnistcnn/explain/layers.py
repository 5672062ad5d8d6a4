"""One layer in words: :func:`describe_layer` (``Conv2d(1,10,5,p=2)``), the arithmetic
of its output shape and parameters (:func:`layer_lines`), and why a layer fails on an
input (:func:`explain_failure`). The shape arithmetic uses the PyTorch documentation's
formula ``floor((n + 2p - d*(k-1) - 1) / s) + 1``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from torch import nn

from mnistcnn.explain.conv_arithmetic import AxisArithmetic

if TYPE_CHECKING:
    from mnistcnn.explain.model_summary import LayerRow


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


def flat_shape(size: Any) -> list[int]:
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


def layer_lines(
    module: nn.Module, info: Any, following: nn.Module | None, previous: list[LayerRow]
) -> list[str]:
    in_shape = flat_shape(info.input_size)[1:]
    out_shape = flat_shape(info.output_size)[1:]
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
