"""torchvision's ImageNet networks where a checkpoint is expected: ``torchvision:NAME``
in ``mnistcnn predict``, ``explain activations`` and ``explain model``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TypeGuard

import click

from mnistcnn.cli import exit_codes

PREFIX = "torchvision:"  # mnistcnn.predict.imagenet.PREFIX (not imported: keeps --help fast)


class CheckpointOrTorchvision(click.ParamType):
    """A checkpoint that exists (a Path), or ``torchvision:NAME`` (kept as a string)."""

    name = "checkpoint"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.startswith(PREFIX):
            return value
        return click.Path(exists=True, path_type=Path).convert(value, param, ctx)


CHECKPOINT = CheckpointOrTorchvision()


def is_torchvision(spec: object) -> TypeGuard[str]:
    """True for ``torchvision:NAME``."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def predict_torchvision(
    spec: str, inputs: tuple[str, ...], top_k: int, as_json: bool, device: str
) -> None:
    """``mnistcnn predict torchvision:NAME INPUTS``: top-k ImageNet categories of each photo.

    ``top_k``: 5 unless --top-k was given (the digit models' default is 3).
    """
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.get_parameter_source("top_k") == click.core.ParameterSource.DEFAULT:
        top_k = 5
    from mnistcnn.predict.imagenet import load_imagenet_model, predict_photos

    model = load_imagenet_model(spec, device=device)
    preds = predict_photos(model, list(inputs), top_k=top_k, stdin=sys.stdin.buffer)
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in preds], indent=2))
    for p in preds if not as_json else []:
        if p.error is not None:
            click.echo(f"{p.path}: error: {p.error}")
            continue
        tops = "  ".join(f"{c} {100 * v:.1f}%" for c, v in p.topk)
        click.echo(f"{p.path}: {tops}")
    failed = sum(p.error is not None for p in preds)
    if not preds:
        click.echo("error: no pictures found in the inputs", err=True)
        sys.exit(exit_codes.ERROR)
    if failed:
        sys.exit(exit_codes.SOME_INPUTS)


def activations_torchvision(
    spec: str, image: str, out: Path | None, as_json: bool, device: str
) -> None:
    """``mnistcnn explain activations torchvision:NAME PHOTO``: feature maps at a few depths."""
    from mnistcnn.evaluation.plots import save_figure
    from mnistcnn.explain.imagenet import imagenet_activations, imagenet_figures
    from mnistcnn.predict.imagenet import load_imagenet_model, prepare_photo, read_photo
    from mnistcnn.predict.inputs import expand_inputs

    items = expand_inputs([image], sys.stdin.buffer)
    if len(items) != 1 or items[0].error is not None:
        why = items[0].error if items else "no picture"
        raise click.BadParameter(f"{image}: {why}", param_hint="'IMAGE'")
    model = load_imagenet_model(spec, device=device)
    try:
        pixels = prepare_photo(read_photo(items[0]), model.preparation)
    except ValueError as exc:
        raise click.BadParameter(f"{image}: {exc}", param_hint="'IMAGE'") from None
    act = imagenet_activations(model, pixels, source=items[0].name)
    name = Path(items[0].name).stem or "stdin"
    folder = out or Path("activations") / f"{spec.split(':', 1)[1]}-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    figures = imagenet_figures(act)
    for file, (fig, _) in figures.items():
        save_figure(fig, folder / file)
    if as_json:
        files = {str(folder / f): about for f, (_, about) in figures.items()}
        click.echo(json.dumps({**act.to_dict(), "files": files}))
        return
    click.echo(f"{act.source}: " + "  ".join(f"{c} {100 * p:.1f}%" for c, p in act.topk))
    click.echo(f"wrote {len(figures)} pictures to {folder}:")
    width = max(map(len, figures))
    for file, (_, about) in figures.items():
        click.echo(f"  {file:<{width}}  {about}")


def summary_model_torchvision(spec: str) -> tuple[Any, str, tuple[int, ...]]:
    """(torchvision's network, label, (3, 224, 224)) for ``explain model``.

    The architecture only (random weights; no weights file needed): the table
    counts shapes, parameters and multiply-adds.
    """
    from torchvision.models import get_model

    from mnistcnn.predict.imagenet import torchvision_model_name

    name = torchvision_model_name(spec)
    kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    net = get_model(name, weights=None, **kwargs)
    return net.eval(), spec, (3, 224, 224)
