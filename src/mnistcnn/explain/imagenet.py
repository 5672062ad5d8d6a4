"""Inside torchvision's ImageNet networks on one photo: feature maps at a few depths and, for
GoogLeNet, the four branches of an inception block (``mnistcnn explain activations
torchvision:NAME PHOTO``).

The depths are the ends of the networks' stages, named as in ``net.named_modules()``
(:data:`DEPTHS`): the map shrinks and the channels grow from the first convolution
to the last stage. An inception block (Szegedy et al. 2015, figure 2b) runs four
branches side by side on the same input (1x1; 1x1 then 3x3; 1x1 then 3x3
(torchvision's port, 5x5 in the paper); 3x3 max-pool then 1x1) and concatenates
their channels: :data:`INCEPTION_BRANCHES` shows each branch's maps of one block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from mnistcnn.artifact import TrainedModel

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Modules whose outputs are shown, per network: the stem, then the end of every stage.
DEPTHS: dict[str, tuple[str, ...]] = {
    "resnet50": ("relu", "layer1", "layer2", "layer3", "layer4"),
    "vgg19": ("features.4", "features.9", "features.18", "features.27", "features.36"),
    "googlenet": ("conv1", "conv3", "inception3b", "inception4e", "inception5b"),
}
#: The inception block whose branches are shown, and its branches.
INCEPTION_BLOCK = "inception4a"
INCEPTION_BRANCHES = ("branch1", "branch2", "branch3", "branch4")


@dataclass
class ImageNetActivations:
    """Outputs of named modules for one photo, and its top-5.

    ``pixels``: float (3, 224, 224) in [0, 1], the prepared input;
    ``maps``: {module name: float (C, H, W)}, in call order, on the CPU;
    ``topk``: [(category, probability)] best first.
    """

    model: str
    source: str
    pixels: torch.Tensor
    maps: dict[str, torch.Tensor]
    topk: list[tuple[str, float]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: model, source, top-k and each map's shape."""
        return {
            "model": self.model,
            "source": self.source,
            "topk": [{"category": c, "probability": p} for c, p in self.topk],
            "maps": {k: list(v.shape) for k, v in self.maps.items()},
        }


def watched_modules(model_name: str) -> list[str]:
    """The module names :func:`imagenet_activations` records for torchvision's ``model_name``."""
    names = list(DEPTHS[model_name])
    if model_name == "googlenet":
        names += [f"{INCEPTION_BLOCK}.{b}" for b in INCEPTION_BRANCHES]
    return names


@torch.inference_mode()
def imagenet_activations(
    model: TrainedModel, pixels: torch.Tensor, source: str = "", top_k: int = 5
) -> ImageNetActivations:
    """Run ``model`` (from :func:`mnistcnn.predict.imagenet.load_imagenet_model`) on one photo.

    Args:
        pixels: float (3, H, W) RGB in [0, 1], prepared by
            :func:`~mnistcnn.predict.imagenet.prepare_photo`.
        source: how the photo is named.

    Returns:
        The outputs of :func:`watched_modules` (forward hooks; removed afterwards)
        and the ``top_k`` categories (softmax probabilities).
    """
    name = model.model_name.split(":", 1)[-1]
    modules = dict(model.net.named_modules())
    maps: dict[str, torch.Tensor] = {}

    def record(key: str) -> Any:
        def hook(_m: nn.Module, _i: Any, out: torch.Tensor) -> None:
            maps[key] = out[0].detach().float().cpu()  # (C, H, W)

        return hook

    handles = [modules[k].register_forward_hook(record(k)) for k in watched_modules(name)]
    model.eval()
    try:
        logits = model(pixels[None].to(model.normalize.mean.device))
    finally:
        for h in handles:
            h.remove()
    probs = F.softmax(logits.float(), 1)[0]
    values, indices = probs.topk(top_k)
    top = [(model.classes[int(i)], float(v)) for v, i in zip(values, indices)]
    order = [k for k in watched_modules(name) if k in maps]
    return ImageNetActivations(
        model.model_name, source, pixels.cpu(), {k: maps[k] for k in order}, top
    )


def imagenet_figures(act: ImageNetActivations, max_maps: int = 16) -> dict[str, tuple[Figure, str]]:
    """File name -> (figure, one line): ``input.png``, ``depth_<i>.png`` and ``branch_<i>.png``.

    Each figure shows the first ``max_maps`` channels of a module's output.
    """
    from matplotlib.figure import Figure

    from mnistcnn.explain.activation_plots import plot_map_grid

    fig = Figure(figsize=(7, 3.4), layout="constrained")
    ax_img, ax_bar = fig.subplots(1, 2, width_ratios=[1, 1.3])
    ax_img.imshow(act.pixels.permute(1, 2, 0).numpy())
    ax_img.axis("off")
    labels = [c for c, _ in act.topk][::-1]
    probs = [p for _, p in act.topk][::-1]
    ax_bar.barh(labels, probs, color="tab:blue")
    for y, p in enumerate(probs):  # the value beside each bar: small ones stay readable
        ax_bar.text(p + 0.01, y, f"{100 * p:.1f}%", va="center", fontsize=8)
    ax_bar.set(xlim=(0, 1.15), xlabel="probability (softmax over 1,000)", title="top-5 ImageNet")
    fig.suptitle(f"{act.source}: {act.model}", fontsize=10)
    h, w = act.pixels.shape[-2:]
    figures = {"input.png": (fig, f"the prepared input ({h}x{w} RGB) and the top-5 categories")}
    depth = branch = 0
    depths = sum(not k.startswith(INCEPTION_BLOCK + ".") for k in act.maps)
    for key, maps in act.maps.items():
        c, mh, mw = maps.shape
        is_branch = key.startswith(INCEPTION_BLOCK + ".")
        if is_branch:
            branch += 1
            file, head = f"branch_{branch}.png", f"{key}: inception branch {branch} of 4"
        else:
            depth += 1
            file, head = f"depth_{depth}.png", f"{key}: depth {depth} of {depths}"
        about = f"{head}, {c} maps of {mh}x{mw}"
        more = f" (first {max_maps} shown)" if c > max_maps else ""
        grid = plot_map_grid(maps[:max_maps], about + more, prefix="ch", label="output")
        figures[file] = (grid, about)
    return figures
