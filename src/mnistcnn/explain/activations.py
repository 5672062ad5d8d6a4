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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn
from torch.nn import functional as F

from mnistcnn.plots import short_class

log = logging.getLogger(__name__)

SALIENCY_METHODS: tuple[str, ...] = ("gradient", "occlusion")
_SAMPLE_REF = re.compile(r"^(?P<dataset>[a-z][a-z0-9_-]*):(?P<split>train|test):(?P<index>\d+)$")


@dataclass
class InputImage:
    """One image ready for a 28x28 model.

    pixels: float32 (H, W) in [0, 1], light ink on a black background (as MNIST
    is stored), before the model's normalization. label: the true class index
    for dataset samples, else None. name: a short, file-name-safe name
    (``mnist-test-123`` or the file's stem). preprocessing: how a file was
    turned into ``pixels`` (empty for dataset samples).
    """

    pixels: torch.Tensor
    source: str
    name: str
    label: int | None = None
    preprocessing: str = ""


def parse_sample_ref(text: str) -> tuple[str, bool, int] | None:
    """``"mnist:test:123"`` -> ``("mnist", False, 123)`` (name, is-train, index); else None."""
    match = _SAMPLE_REF.match(text.strip().lower())
    if match is None:
        return None
    return match["dataset"], match["split"] == "train", int(match["index"])


def load_input(
    image: str, *, data_root: str | Path | None = None, mirror: str | Path | None = None
) -> InputImage:
    """Load IMAGE: an existing picture file, else a ``DATASET:SPLIT:INDEX`` reference.

    Files go through :func:`load_image_file`; references are read with
    :func:`mnistcnn.data.load_arrays` (``data_root``/``mirror`` as there).

    Raises:
        ValueError: neither a readable file nor a valid reference, or the index
            is past the end of the split.
        mnistcnn.data.DataError: the dataset cannot be obtained.
    """
    path = Path(image)
    if path.is_file():
        pixels, how = load_image_file(path)
        return InputImage(pixels, str(path), path.stem, preprocessing=how)
    ref = parse_sample_ref(image)
    if ref is None:
        raise ValueError(
            f"{image!r} is neither an image file nor a dataset sample such as mnist:test:123"
        )
    from mnistcnn.data import load_arrays

    name, train, index = ref
    images, labels = load_arrays(name, train=train, root=data_root, mirror=mirror)
    split = "train" if train else "test"
    if index >= len(labels):
        raise ValueError(
            f"{image}: index {index} is past the end of the {split} split ({len(labels)} images)"
        )
    pixels = images[index].float() / 255.0  # (28, 28) in [0, 1]
    return InputImage(pixels, image, f"{name}-{split}-{index}", int(labels[index]))


def load_image_file(path: str | Path) -> tuple[torch.Tensor, str]:
    """A picture as float32 (28, 28) in [0, 1], light ink on black like MNIST.

    Uses :func:`mnistcnn.predict.preprocess_image` (MNIST's own recipe: ink
    found, fitted into 20x20, centred by mass; dark ink on paper inverted).

    Returns:
        (pixels, a few words on how it was preprocessed).

    Raises:
        ValueError: the file cannot be read as an image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            picture = img.copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None
    from mnistcnn.predict import preprocess_image

    result = preprocess_image(picture)
    pixels, inverted = torch.from_numpy(result.image).float() / 255.0, result.inverted
    how = "MNIST-style: ink fitted into 20x20, centred by mass in 28x28"
    return pixels, how + (", inverted (dark ink on light)" if inverted else "")


@dataclass
class Activations:
    """One image's trip through a model.

    probabilities: float32 (C,), summing to 1. feature_maps: conv layer name
    (as in ``model.named_modules()``) -> float32 (C_out, H_out, W_out), the
    layer's output for this image (before any activation function), in model
    order. layers: the same names -> the layer's repr. kernels: float32
    (C_out, C_in, kh, kw), the first conv layer's weights. saliency: float32
    (H, W) >= 0 over the input (see the module docstring for the units).
    """

    image: InputImage
    classes: list[str]
    probabilities: torch.Tensor
    feature_maps: dict[str, torch.Tensor]
    layers: dict[str, str]
    kernels: torch.Tensor
    saliency: torch.Tensor
    saliency_method: str

    @property
    def predicted(self) -> int:
        """Index of the most probable class."""
        return int(self.probabilities.argmax())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (shapes, prediction, probabilities)."""
        return {
            "image": self.image.source,
            "label": self.image.label,
            "predicted": self.predicted,
            "predicted_class": self.classes[self.predicted],
            "probabilities": [round(float(p), 6) for p in self.probabilities],
            "feature_maps": {k: list(v.shape) for k, v in self.feature_maps.items()},
            "kernels": list(self.kernels.shape),
            "saliency_method": self.saliency_method,
        }


def normalize(pixels: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """(H, W) or (C, H, W) or (N, C, H, W) pixels in [0, 1] -> (N, C, H, W) ``(x - mean) / std``."""
    x = pixels
    while x.ndim < 4:
        x = x.unsqueeze(0)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


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
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer to show")

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


def gradient_saliency(
    model: nn.Module, pixels: torch.Tensor, mean: list[float], std: list[float], target: int
) -> torch.Tensor:
    """``|d logit_target / d pixels|``, max over channels: float32 (H, W) >= 0.

    ``pixels``: (H, W) or (C, H, W) in [0, 1]; the normalization is part of the
    differentiated graph, so the units are logit per unit of pixel intensity.
    """
    x = pixels.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logit = model(normalize(x, mean, std))[0, target]
        (grad,) = torch.autograd.grad(logit, x)
    grad = grad.abs()
    return grad.amax(0) if grad.ndim == 3 else grad


@torch.inference_mode()
def occlusion_saliency(
    model: nn.Module,
    pixels: torch.Tensor,
    mean: list[float],
    std: list[float],
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
    base = model(normalize(x, mean, std))[0, target].float()
    lo, hi = patch // 2, patch - patch // 2  # the square spans [i - lo, i + hi)
    drops = []
    centres = [(i, j) for i in range(h) for j in range(w)]
    for start in range(0, len(centres), batch_size):
        chunk = centres[start : start + batch_size]
        batch = x.unsqueeze(0).repeat(len(chunk), 1, 1, 1)  # (B, C, H, W)
        for b, (i, j) in enumerate(chunk):
            batch[b, :, max(0, i - lo) : i + hi, max(0, j - lo) : j + hi] = 0.0
        drops.append(base - model(normalize(batch, mean, std))[:, target].float())
    return torch.cat(drops).view(h, w)


def explain_activations(
    model: nn.Module,
    image: InputImage,
    *,
    mean: list[float],
    std: list[float],
    classes: list[str],
    saliency: str = "gradient",
) -> Activations:
    """Feature maps of every conv layer, first-layer kernels and a saliency map for ``image``.

    ``model`` is put in eval mode; ``mean``/``std`` are its input normalization
    (0..1 scale, see :class:`mnistcnn.engine.Checkpoint`); ``saliency`` is
    ``"gradient"`` or ``"occlusion"`` (see the module docstring), for the
    predicted class. Everything returned is on the CPU.

    Raises:
        ValueError: no conv layer, or an unknown saliency method.
    """
    if saliency not in SALIENCY_METHODS:
        raise ValueError(
            f"unknown saliency method {saliency!r}; use {' or '.join(SALIENCY_METHODS)}"
        )
    model.eval()
    device = next(model.parameters()).device
    pixels = image.pixels.to(device)
    with torch.inference_mode():
        logits, maps = capture_feature_maps(model, normalize(pixels, mean, std))
    probs = F.softmax(logits.float(), 1)[0]
    target = int(probs.argmax())
    if saliency == "gradient":
        sal = gradient_saliency(model, pixels, mean, std, target)
    else:
        sal = occlusion_saliency(model, pixels, mean, std, target)
    layers = dict(model.named_modules())
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
    k = act.predicted
    text = f"predicted {short_class(act.classes[k])} (p = {act.probabilities[k]:.3f})"
    if act.image.label is not None:
        text += f", true {short_class(act.classes[act.image.label])}"
    return text


def activation_figures(act: Activations, max_maps: int = 64) -> dict[str, tuple[Figure, str]]:
    """Every figure of ``act``: file name -> (figure, one line saying what it shows).

    ``input.png`` (the input as the model sees it, before normalization, and
    the class probabilities), ``feature_maps_1.png`` ... (one per conv layer,
    at most ``max_maps`` channels each), ``kernels.png`` (the first conv
    layer's kernels, averaged over input channels when there are several) and
    ``saliency.png``.
    """
    from mnistcnn.plots import plot_map_grid, plot_prediction, plot_saliency

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
    k = short_class(act.classes[act.predicted])
    fig = plot_saliency(
        act.image.pixels,
        act.saliency,
        what,
        signed=not gradient,
        title=f"{act.saliency_method} saliency for class {k}: {_title_of(act)}",
    )
    figures["saliency.png"] = (fig, f"{act.saliency_method} saliency ({what}), {h}x{w}")
    return figures
