"""What a trained CNN computes for one image: feature maps, first-layer kernels, saliency.

:func:`explain_activations` runs one image through a model with a forward hook
on every ``nn.Conv2d`` and returns an :class:`Activations` record; the
``*_figure`` functions draw it (the caller saves the figures).

The image is either a picture file or a dataset sample written
``DATASET:SPLIT:INDEX`` (e.g. ``mnist:test:123``, ``fashion-mnist:train:0``;
index 0-based), which carries its true label.

Saliency methods:

* ``gradient``: vanilla gradient saliency, ``|d logit_k / d x|`` for the
  predicted class k, taken w.r.t. the input pixels on the 0..1 scale
  (Simonyan, Vedaldi & Zisserman 2014, "Deep Inside Convolutional Networks").
* ``occlusion``: the drop in the predicted class's logit when a
  ``patch x patch`` square centred on each pixel is set to black (the
  background); Zeiler & Fergus 2014, "Visualizing and Understanding
  Convolutional Networks".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from matplotlib.figure import Figure
from torch import nn
from torch.nn import functional as F

from mnistcnn._text import short_label
from mnistcnn.artifact import TrainedModel
from mnistcnn.artifact.onnx_model import require_layers
from mnistcnn.errors import SettingError
from mnistcnn.explain.samples import (
    InputImage,
    check_classes,
    describe_preprocessing,
    load_image_file,
    load_input,
    parse_sample_ref,
)

if TYPE_CHECKING:
    from mnistcnn.predict import Prediction, Predictor

log = logging.getLogger(__name__)

SALIENCY_METHODS: tuple[str, ...] = ("gradient", "occlusion")
__all__ = [
    "SALIENCY_METHODS",
    "Activations",
    "InputImage",
    "activation_figures",
    "capture_feature_maps",
    "check_classes",
    "describe_conv",
    "explain_activations",
    "explain_for_predictor",
    "gradient_saliency",
    "load_image_file",
    "load_input",
    "as_batch",
    "occlusion_saliency",
    "parse_sample_ref",
]


def explain_for_predictor(
    predictor: Predictor,
    image: str,
    *,
    saliency: str = "gradient",
    data_root: str | Path | None = None,
    mirror: str | Path | None = None,
) -> Activations:
    """:func:`explain_activations` of IMAGE, judged by a :class:`~mnistcnn.predict.Predictor`.

    The image is read and judged exactly as ``mnistcnn predict`` does it: a
    picture file through :meth:`Predictor.predict_item` (same decoding,
    preprocessing, errors), a ``DATASET:SPLIT:INDEX`` sample as an MNIST-style
    image; the probabilities are the Predictor's (calibrated when the
    checkpoint is) and the result's ``verdict`` says whether it is unsure
    (no ink, or the top probability under the threshold).

    Raises:
        ValueError: a picture predict cannot use (the message is predict's),
            a bad reference, or a dataset whose classes are not the model's
            (see :func:`load_input`, :func:`check_classes`).
        mnistcnn.data.DataError: the dataset cannot be obtained.
    """
    import numpy as np

    from mnistcnn.predict import InputItem

    path = Path(image)
    if path.is_file():
        verdict = predictor.predict_item(InputItem(str(path), path=path))
        if verdict.error is not None or verdict.input is None:
            raise SettingError(f"{path}: {verdict.error}", path=path)
        pixels = torch.from_numpy(np.array(verdict.input, np.float32)) / 255.0  # (28, 28)
        how = describe_preprocessing(not verdict.blank, verdict.inverted)
        picture = InputImage(pixels, str(path), path.stem, preprocessing=how)
    else:
        ckpt = predictor.checkpoint
        picture = load_input(
            image,
            data_root=data_root,
            mirror=mirror,
            classes=predictor.classes,
            model_dataset=ckpt.dataset if ckpt is not None else "",
        )
        prepared = np.round(picture.pixels.numpy() * 255).astype(np.uint8)  # exact: k / 255
        verdict = predictor.predict_item(InputItem(picture.source, prepared=prepared))
    return explain_activations(predictor.model, picture, saliency=saliency, verdict=verdict)


@dataclass
class Activations:
    """One image's trip through a model.

    probabilities: float32 (C,), summing to 1. feature_maps: conv layer name
    (as in ``model.named_modules()``) -> float32 (C_out, H_out, W_out), the
    layer's output for this image (before any activation function), in model
    order. layers: the same names -> the layer's repr. kernels: float32
    (C_out, C_in, kh, kw), the first conv layer's weights. saliency: float32
    (H, W) >= 0 over the input (see the module docstring for the units).
    verdict: the Predictor's :class:`~mnistcnn.predict.Prediction` for the
    image (unsure rule, calibrated probabilities), or None when explained
    without a Predictor.
    """

    image: InputImage
    classes: list[str]
    probabilities: torch.Tensor
    feature_maps: dict[str, torch.Tensor]
    layers: dict[str, str]
    kernels: torch.Tensor
    saliency: torch.Tensor
    saliency_method: str
    verdict: Prediction | None = None

    @property
    def predicted(self) -> int:
        """Index of the most probable class (the best guess, even when unsure)."""
        return int(self.probabilities.argmax())

    @property
    def unsure(self) -> bool:
        """The Predictor names no class: no ink, or the top probability is under its threshold."""
        return self.verdict is not None and self.verdict.unsure

    @property
    def blank(self) -> bool:
        """No ink was found in the picture (the model saw an all-black input)."""
        return self.verdict is not None and self.verdict.blank

    def summary(self, threshold: float | None = None, digits: int = 3) -> str:
        """``predicted 7 (p = 0.991)``, ``unsure: best guess 7 (p = 0.310)``, or no ink found.

        Args:
            threshold: the predictor's threshold, named in the unsure line when given.
            digits: decimals of the probability.
        """
        k = self.predicted
        guess = f"{short_label(self.classes[k])} (p = {float(self.probabilities[k]):.{digits}f})"
        if self.blank:
            return "unsure: no ink found, not a digit"
        if self.unsure:
            under = f", under the threshold {threshold:g}" if threshold is not None else ""
            return f"unsure: best guess {guess}{under}"
        return f"predicted {guess}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (shapes, prediction, probabilities, unsure)."""
        return {
            "image": self.image.source,
            "label": self.image.label,
            "predicted": self.predicted,
            "predicted_class": self.classes[self.predicted],
            "unsure": self.unsure,
            "blank": self.blank,
            "probabilities": [round(float(p), 6) for p in self.probabilities],
            "feature_maps": {k: list(v.shape) for k, v in self.feature_maps.items()},
            "kernels": list(self.kernels.shape),
            "saliency_method": self.saliency_method,
        }


def as_batch(pixels: torch.Tensor) -> torch.Tensor:
    """(H, W), (C, H, W) or (N, C, H, W) pixels -> (N, C, H, W), the same values."""
    x = pixels
    while x.ndim < 4:
        x = x.unsqueeze(0)
    return x


def capture_feature_maps(
    model: nn.Module, x: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run ``model`` on ``x`` (N, C, H, W) with a forward hook on every ``nn.Conv2d``.

    Returns (logits (N, classes), {layer name: output (N, C_out, H_out, W_out)}),
    outputs detached, in call order. The hooks are removed afterwards.

    Raises:
        ValueError: the model has no ``nn.Conv2d`` layer.
    """
    maps: dict[str, torch.Tensor] = {}
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise SettingError(f"{type(model).__name__} has no nn.Conv2d layer to show")

    def hook(name: str) -> Any:
        def record(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            maps[name] = output.detach()

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in convs]
    try:
        logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return logits.detach(), maps


def gradient_saliency(model: nn.Module, pixels: torch.Tensor, target: int) -> torch.Tensor:
    """``|d logit_target / d pixels|``, max over channels: float32 (H, W) >= 0.

    ``pixels``: (H, W) or (C, H, W) in [0, 1]; ``model`` takes pixels in [0, 1]
    (a :class:`~mnistcnn.artifact.TrainedModel`: the normalization is part of
    the differentiated graph), so the units are logit per unit of pixel intensity.
    """
    x = pixels.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logit = model(as_batch(x))[0, target]
        (grad,) = torch.autograd.grad(logit, x)
    grad = grad.abs()
    return grad.amax(0) if grad.ndim == 3 else grad


@torch.inference_mode()
def occlusion_saliency(
    model: nn.Module,
    pixels: torch.Tensor,
    target: int,
    patch: int = 5,
    batch_size: int = 256,
) -> torch.Tensor:
    """Drop of the ``target`` logit when a ``patch x patch`` square is blacked out.

    Returns float32 (H, W): at (i, j), ``logit_target(image) - logit_target(image
    with the square centred on (i, j) set to 0)``; negative where hiding helps.
    Logits, not probabilities: a confident prediction's probability saturates
    near 1 and hardly moves. ``pixels``: (H, W) or (C, H, W) in [0, 1].
    """
    x = pixels if pixels.ndim == 3 else pixels.unsqueeze(0)  # (C, H, W)
    _, h, w = x.shape
    base = model(as_batch(x))[0, target].float()
    lo, hi = patch // 2, patch - patch // 2  # the square spans [i - lo, i + hi)
    drops = []
    centres = [(i, j) for i in range(h) for j in range(w)]
    for start in range(0, len(centres), batch_size):
        chunk = centres[start : start + batch_size]
        batch = x.unsqueeze(0).repeat(len(chunk), 1, 1, 1)  # (B, C, H, W)
        for b, (i, j) in enumerate(chunk):
            batch[b, :, max(0, i - lo) : i + hi, max(0, j - lo) : j + hi] = 0.0
        drops.append(base - model(batch)[:, target].float())
    return torch.cat(drops).view(h, w)


def explain_activations(
    model: TrainedModel,
    image: InputImage,
    *,
    saliency: str = "gradient",
    verdict: Prediction | None = None,
) -> Activations:
    """Feature maps of every conv layer, first-layer kernels and a saliency map for ``image``.

    ``model`` (pixels in [0, 1] in, it normalizes itself) is put in eval mode;
    the feature maps are named as in ``model.net.named_modules()``; ``saliency`` is
    ``"gradient"`` or ``"occlusion"`` (see the module docstring), for the
    predicted class. ``verdict`` is the Predictor's judgement of the same
    image (see :func:`explain_for_predictor`): its probabilities (calibrated)
    replace the plain softmax when it has them. Everything returned is on the CPU.

    Raises:
        ValueError: no conv layer, or an unknown saliency method.
    """
    if saliency not in SALIENCY_METHODS:
        raise ValueError(
            f"unknown saliency method {saliency!r}; use {' or '.join(SALIENCY_METHODS)}"
        )
    require_layers(model, "explain activations").eval()
    device = next(model.parameters()).device
    pixels = image.pixels.to(device)
    with torch.inference_mode():
        logits, maps = capture_feature_maps(model.net, model.normalize(as_batch(pixels)))
    probs = F.softmax(logits.float(), 1)[0]
    if verdict is not None and verdict.probabilities is not None:
        probs = torch.as_tensor(verdict.probabilities, dtype=torch.float32, device=probs.device)
    target = int(probs.argmax())
    if saliency == "gradient":
        sal = gradient_saliency(model, pixels, target)
    else:
        sal = occlusion_saliency(model, pixels, target)
    layers = dict(model.net.named_modules())
    classes = model.classes
    first = layers[next(iter(maps))]  # the first conv layer called
    assert isinstance(first, nn.Conv2d)
    log.info("explained %s: predicted %s (p=%.3f)", image.source, classes[target], probs[target])
    return Activations(
        image=image,
        classes=list(classes),
        probabilities=probs.cpu(),
        feature_maps={k: v[0].float().cpu() for k, v in maps.items()},
        layers={k: describe_conv(layers[k]) for k in maps},
        kernels=first.weight.detach().float().cpu(),
        saliency=sal.detach().cpu(),
        saliency_method=saliency,
        verdict=verdict,
    )


def describe_conv(conv: nn.Module) -> str:
    """``Conv2d(1, 10, k=5x5, s=1, p=2)``: channels, kernel, stride and padding of a conv layer."""
    if not isinstance(conv, nn.Conv2d):
        return repr(conv)
    (kh, kw), (sh, sw), pad = conv.kernel_size, conv.stride, conv.padding
    stride = str(sh) if sh == sw else f"{sh}x{sw}"
    padding = (
        pad if isinstance(pad, str) else (str(pad[0]) if pad[0] == pad[1] else f"{pad[0]}x{pad[1]}")
    )
    return f"Conv2d({conv.in_channels}, {conv.out_channels}, k={kh}x{kw}, s={stride}, p={padding})"


def _title_of(act: Activations) -> str:
    text = act.summary()
    if act.image.label is not None:
        text += f", true {short_label(act.classes[act.image.label])}"
    return text


def activation_figures(act: Activations, max_maps: int = 64) -> dict[str, tuple[Figure, str]]:
    """Every figure of ``act``: file name -> (figure, one line saying what it shows).

    ``input.png`` (the input as the model sees it, before normalization, and
    the class probabilities), ``feature_maps_1.png`` ... (one per conv layer,
    at most ``max_maps`` channels each), ``kernels.png`` (the first conv
    layer's kernels, averaged over input channels when there are several) and
    ``saliency.png``.
    """
    from mnistcnn.explain.activation_plots import plot_map_grid, plot_prediction, plot_saliency

    h, w = act.image.pixels.shape[-2:]
    title = f"{act.image.source}: {_title_of(act)}"
    figures = {
        "input.png": (
            plot_prediction(act.image.pixels, act.probabilities, act.classes, title),
            f"the input ({h}x{w}, pixels 0..1) and the class probabilities",
        )
    }
    for i, (layer, maps) in enumerate(act.feature_maps.items(), 1):
        c, mh, mw = maps.shape
        more = f"; first {max_maps} of {c} shown" if c > max_maps else ""
        head = f"conv layer {i} ({layer}: {act.layers[layer]})"
        fig = plot_map_grid(
            maps[:max_maps],
            f"{head}\n{c} feature maps, {mh}x{mw} each, before the activation function{more}",
            prefix="ch",
            label="conv output",
        )
        figures[f"feature_maps_{i}.png"] = (fig, f"{head}: feature maps {c} x {mh} x {mw}")
    c_out, c_in, kh, kw = act.kernels.shape
    note = f", mean over {c_in} input channels" if c_in > 1 else ""
    kernels = act.kernels[:max_maps].mean(1)  # (C_out, kh, kw)
    head = f"first conv layer: {c_out} learned {kh}x{kw} kernels{note}"
    figures["kernels.png"] = (plot_map_grid(kernels, head, prefix="kernel", label="weight"), head)
    gradient = act.saliency_method == "gradient"
    what = "|d logit / d pixel|" if gradient else "logit drop when a 5x5 square is hidden"
    k = short_label(act.classes[act.predicted])
    fig = plot_saliency(
        act.image.pixels,
        act.saliency,
        what,
        signed=not gradient,
        title=f"{act.saliency_method} saliency for class {k}: {_title_of(act)}",
    )
    figures["saliency.png"] = (fig, f"{act.saliency_method} saliency ({what}), {h}x{w}")
    return figures
