"""``mnistcnn explain activations`` and ``explain invariance``: what a trained CNN
computes for one image, and its accuracy as the digits are shifted, rotated and scaled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mnistcnn.cli.common import data_options, device_option, json_option, pct, user_errors
from mnistcnn.cli.torchvision_nets import CHECKPOINT, activations_torchvision, is_torchvision


@click.command("activations")
@click.argument("checkpoint", type=CHECKPOINT)
@click.argument("image")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the PNGs. [default: <checkpoint's folder>/activations/<image name>]",
)
@click.option(
    "--saliency",
    type=click.Choice(["gradient", "occlusion"]),
    default="gradient",
    show_default=True,
    help="gradient: |d logit / d pixel|; occlusion: logit drop when a 5x5 square is hidden.",
)
@device_option("cpu")
@json_option()
@data_options
@user_errors
def activations(
    checkpoint: Path | str,
    image: str,
    out: Path | None,
    saliency: str,
    device: str,
    as_json: bool,
    data_root: str | None,
    mirror: str | None,
) -> None:
    """What a CHECKPOINT's CNN computes for one IMAGE.

    Writes input.png (the preprocessed input and the class probabilities),
    feature_maps_<n>.png (every conv layer's outputs), kernels.png (the first
    layer's learned kernels) and saliency.png, and prints the prediction.

    IMAGE is a picture file, read and judged as `mnistcnn predict` does it
    (dark ink on paper is inverted; a blank picture or a low probability is
    "unsure"), or a dataset sample DATASET:SPLIT:INDEX, e.g. mnist:test:123
    (index from 0; the true label is shown; the dataset's classes must be the
    model's).

    CHECKPOINT may also be torchvision:vgg19|resnet50|googlenet (ImageNet
    weights from torch's hub cache) and IMAGE a photo: its top-5 ImageNet
    categories and feature maps at five depths (for GoogLeNet also the four
    branches of inception4a), into --out [default: activations/NAME-IMAGE].

    \b
    Examples:
      mnistcnn explain activations runs/latest/best.pt mnist:test:0
      mnistcnn explain activations runs/latest/best.pt digit.png --saliency occlusion
      mnistcnn explain activations torchvision:googlenet cat.jpg
    """
    if is_torchvision(checkpoint):
        return activations_torchvision(checkpoint, image, out, as_json, device)
    from mnistcnn.evaluation.plots import save_figure
    from mnistcnn.explain.activations import activation_figures, explain_for_predictor
    from mnistcnn.predict import Predictor

    predictor = Predictor.from_checkpoint(checkpoint, device=device)
    act = explain_for_predictor(
        predictor, image, saliency=saliency, data_root=data_root, mirror=mirror
    )
    picture = act.image
    assert predictor.checkpoint is not None
    folder = out or predictor.checkpoint.path.parent / "activations" / picture.name
    folder.mkdir(parents=True, exist_ok=True)
    figures = activation_figures(act)
    for name, (fig, _) in figures.items():
        save_figure(fig, folder / name)
    if as_json:
        files = {str(folder / name): about for name, (_, about) in figures.items()}
        click.echo(json.dumps({**act.to_dict(), "files": files}))
        return
    line = f"{picture.source}: {act.summary(predictor.threshold, digits=4)}"
    if picture.label is not None:
        line += f", true label {act.classes[picture.label]}"
    click.echo(line)
    if picture.preprocessing:
        click.echo(f"input preprocessed: {picture.preprocessing}")
    click.echo(f"wrote {len(figures)} pictures to {folder}:")
    width = max(map(len, figures))
    for name, (_, about) in figures.items():
        click.echo(f"  {name:<{width}}  {about}")


@click.command("invariance")
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for invariance.png/.csv/.json. [default: <checkpoint's folder>/invariance"
    "[-<dataset>], beside the run's own files, never over them]",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="Use only the first N test images (faster). [default: all]",
)
@click.option("--dataset", help="Test split to use. [default: the checkpoint's dataset]")
@device_option("auto")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1))
@json_option()
@data_options
@user_errors
def invariance(
    checkpoint: Path,
    out: Path | None,
    limit: int | None,
    dataset: str | None,
    device: str,
    batch_size: int,
    as_json: bool,
    data_root: str | None,
    mirror: str | None,
) -> None:
    """Test accuracy of CHECKPOINT as the digits are shifted, rotated and scaled.

    Shifts 0..6 px (mean of 4 directions), rotations 0..45 degrees (mean of
    both senses), scale factors 0.5..1.5; writes invariance.png (three panels),
    invariance.csv and invariance.json, and prints the table. Does a CNN
    recognise digits "irrespective of scale or orientation"? Not far beyond
    what it was trained on. 53 passes over the test set: about a minute on
    one CPU core for all 10,000 images.

    \b
    Examples:
      mnistcnn explain invariance runs/latest/best.pt --limit 2000
    """
    from mnistcnn._io import atomic_write_json
    from mnistcnn.evaluation.plots import save_figure
    from mnistcnn.explain.invariance import invariance_figure, invariance_for_checkpoint

    result = invariance_for_checkpoint(
        checkpoint,
        dataset=dataset,
        data_root=data_root,
        mirror=mirror,
        device=device,
        limit=limit,
        batch_size=batch_size,
    )
    run_dir = checkpoint if checkpoint.is_dir() else checkpoint.parent
    folder = out or run_dir / (f"invariance-{dataset}" if dataset else "invariance")
    replaced = (folder / "invariance.json").is_file()
    folder.mkdir(parents=True, exist_ok=True)
    save_figure(invariance_figure(result), folder / "invariance.png")
    _write_rows(folder / "invariance.csv", result.rows())
    atomic_write_json(folder / "invariance.json", result.to_dict())
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    _print_invariance(result)
    again = " (replacing the previous ones there)" if replaced else ""
    click.echo(f"\nwrote invariance.png, invariance.csv and invariance.json to {folder}{again}")


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """``rows`` as a CSV file with a header row, written atomically."""
    import csv
    import io

    from mnistcnn._io import atomic_write

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue())


def _print_invariance(result: Any) -> None:
    from mnistcnn.explain.invariance import TRANSFORMS

    click.echo(
        f"Test accuracy of {result.model} on {result.dataset} ({result.num_samples} test "
        f"images) under shifts, rotations and scaling; plain {pct(result.plain_accuracy)}"
    )
    label = {"shift": "shift (px)", "rotation": "rotation (deg)", "scale": "scale (factor)"}
    for transform in TRANSFORMS:
        values, accs = result.series(transform)
        click.echo(f"\n{label.get(transform, transform):<15}" + "".join(f"{v:>8g}" for v in values))
        click.echo(f"{'accuracy':<15}" + "".join(f"{pct(a):>8}" for a in accs))
    click.echo("")
    for drop in (0.01, 0.05):
        spans = []
        for transform, (unit, _) in TRANSFORMS.items():
            lo, hi = result.tolerated(transform, drop)
            if lo == hi:  # only the untransformed images: the smallest step already costs more
                spans.append(f"{transform} none")
                continue
            spans.append(
                f"{transform} {lo:g}..{hi:g}" + ("" if transform == "scale" else f" {unit}")
            )
        click.echo(
            f"accuracy within {100 * drop:g} point{'s' * (drop != 0.01)} of plain for: "
            + ", ".join(spans)
        )
