"""``mnistcnn evaluate`` and ``mnistcnn models``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mnistcnn._text import plural
from mnistcnn.cli.common import (
    check_out,
    data_options,
    device_option,
    json_option,
    pct,
    user_errors,
)
from mnistcnn.config import PRECISIONS

if TYPE_CHECKING:
    from mnistcnn.evaluation import Evaluation
    from mnistcnn.evaluation.robustness import RobustnessResult
    from mnistcnn.evaluation.styles import StylesReport
    from mnistcnn.predict.ood import OodReport


def _evaluation_dir(checkpoints: tuple[str, ...], dataset: str | None) -> Path:
    """Default output folder of ``evaluate``: beside the run's files, never over them."""
    first = Path(checkpoints[0])
    # absolute either way (a run folder or a file in it), and through runs/latest to the run
    folder = (first if first.is_dir() else first.parent).resolve()
    if len(checkpoints) == 1:
        name = "evaluation"
    else:  # one folder per set of members: another ensemble never replaces this one's files
        members = "\n".join(str(Path(c).resolve()) for c in checkpoints)
        digest = hashlib.sha256(members.encode()).hexdigest()[:8]
        name = f"evaluation-ensemble-{len(checkpoints)}-{digest}"
    return folder / (f"{name}-{dataset}" if dataset else name)


def _check_evaluation_out(out: str | None) -> None:
    """Refuse an ``evaluate --out`` that is a training run's folder (its report would be replaced).

    Raises:
        click.BadParameter: ``out`` holds a run's ``config.json`` or ``metrics.csv``.
    """
    if out is None:
        return
    folder = Path(out)
    if (folder / "config.json").is_file() or (folder / "metrics.csv").is_file():
        raise click.BadParameter(
            f"{out} is a training run's folder: its report.html would be replaced; "
            "leave --out out (the default is RUN/evaluation) or name another folder",
            param_hint="'--out'",
        )


@click.command()
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--dataset", help="Dataset to test on. [default: the checkpoint's]")
@device_option("auto")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder for the confusion matrix, the pictures and report.html. [default: "
    "<checkpoint's folder>/evaluation[-<dataset>] (one checkpoint), "
    "<first checkpoint's folder>/evaluation-ensemble-<N>-<hash of the members> (several), "
    "<checkpoint's folder>/evaluation-images-<DIR's name> (--images): the training "
    "run's own report is never overwritten]",
)
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False),
    help="Evaluate on your own labelled pictures instead of a test split: DIR/<class>/* "
    "(torchvision's ImageFolder layout; a folder is named by a class's label, e.g. 7, or its "
    "full name), each picture prepared as predict prepares it.",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    help="Arithmetic of the forward passes: fp32, or bf16 autocast. [default: the one each "
    "checkpoint was trained with, so a bf16 run gives the accuracy its training recorded]",
)
@click.option(
    "--ood",
    metavar="NAME[,NAME]",
    help="Also measure how well the model tells its classes from things that are not: AUROC "
    "(max softmax probability and energy scores) and the share predict calls unsure, against "
    "fashion-mnist, mnist, kmnist, drawings, letters, noise or symbols (generated, seeded). "
    "One checkpoint.",
)
@click.option(
    "--corruptions",
    is_flag=False,
    flag_value="all",
    metavar="[NAME[,NAME]|all]",
    help="Also measure accuracy under MNIST-C's corruptions (Mu & Gilmer 2019): all 15 when "
    "given bare (put it after the checkpoints), or some of shot_noise, impulse_noise, glass_blur, "
    "motion_blur, shear, scale, rotate, brightness, translate, stripe, fog, spatter, dotted_line, "
    "zigzag, canny_edges. Corrupted copies are cached in <data root>/<dataset>-c/.",
)
@click.option(
    "--corruption-limit",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --corruptions: only the first N test images (quicker). [default: all]",
)
@click.option(
    "--corruption-seed", default=0, show_default=True, type=click.IntRange(min=0), metavar="S",
    help="With --corruptions: the seed of the corruptions' randomness.",
)  # fmt: skip
@click.option(
    "--styles",
    "styles",
    is_flag=True,
    help="Also measure accuracy on digits written in other styles (flagged 1, crossed 7, open "
    "4, 9 with a straight or curled tail, looped 2, slashed 0; thin and thick pens): 200 "
    "generated pictures per style from template variants and seeds training never draws "
    "(docs/robustness.md). One checkpoint.",
)
@json_option()
@data_options
@user_errors
def evaluate(
    checkpoints: tuple[str, ...],
    dataset: str | None,
    device: str,
    batch_size: int,
    out: str | None,
    precision: str | None,
    images: str | None,
    ood: str | None,
    corruptions: str | None,
    corruption_limit: int | None,
    corruption_seed: int,
    styles: bool,
    as_json: bool,
    data_root: str | None,
    mirror: str | None,
) -> None:
    """Test loss, accuracy and per-class precision/recall/F1 of CHECKPOINTS.

    Several checkpoints are evaluated as an ensemble (averaged probabilities);
    they must have the same classes, and so must --dataset.

    \b
    Example:
      mnistcnn evaluate runs/20261129-120000-tutorial-mnist/best.pt
      mnistcnn evaluate runs/latest/best.pt --images my-digits/   # my-digits/7/*.jpg ...
      mnistcnn evaluate runs/latest/best.pt --corruptions          # MNIST-C, all 15
      mnistcnn evaluate runs/latest/best.pt --styles               # other writers' styles
    """
    from mnistcnn.artifact.onnx_graph import is_onnx_file
    from mnistcnn.evaluation import evaluate as evaluate_models

    onnx = [c for c in checkpoints if is_onnx_file(c)]
    if onnx and precision == "bf16":
        raise click.UsageError(
            f"{onnx[0]}: an exported ONNX graph computes in float32 whatever the training "
            "precision; --precision bf16 needs the .pt checkpoint it was exported from"
        )
    check_out(out)
    _check_evaluation_out(out)
    if corruptions is None and (corruption_limit is not None or corruption_seed != 0):
        flag = "--corruption-limit" if corruption_limit is not None else "--corruption-seed"
        raise click.UsageError(f"{flag} goes with --corruptions; add --corruptions")
    if images is not None:
        if ood or corruptions or styles:
            flag = "--ood" if ood else "--corruptions" if corruptions else "--styles"
            raise click.UsageError(f"{flag} measures a test split, not --images; give one of them")
        _evaluate_images(checkpoints, images, out, device, as_json)
        return
    out_dir = Path(out) if out is not None else _evaluation_dir(checkpoints, dataset)
    result = evaluate_models(
        list(checkpoints),
        dataset=dataset,
        data_root=data_root,
        mirror=mirror,
        device=device,
        batch_size=batch_size,
        out=out_dir,
        precision=precision,
        corruptions=corruptions,
        corruption_limit=corruption_limit,
        corruption_seed=corruption_seed,
    )
    ood_report = _ood(checkpoints, ood, out_dir, device, data_root, mirror) if ood else None
    styles_report = _styles(checkpoints, out_dir, device) if styles else None
    if as_json:
        record = result.to_dict()
        if ood_report is not None:
            record["ood"] = ood_report.to_dict()
        if styles_report is not None:
            record["styles"] = styles_report.to_dict()
        click.echo(json.dumps(record, indent=2))
        return
    click.echo(f"dataset {result.dataset} test split: {plural(result.num_samples, 'image')}")
    how = "--precision" if precision else "ONNX Runtime" if onnx else "as trained"
    click.echo(
        f"loss {result.loss:.4f}  accuracy {pct(result.accuracy)}  "
        f"(precision {result.precision}, {how})"
    )
    _per_class_table(result)
    click.echo(f"confusion matrix written to {out_dir / 'confusion_matrix.png'} (and .csv)")
    click.echo(f"report written to {result.report}")
    if ood_report is not None:
        _print_ood(ood_report, out_dir)
    if result.corruptions is not None:
        _print_corruptions(result.corruptions, out_dir)
    if styles_report is not None:
        _print_styles(styles_report, out_dir)


def _styles(checkpoints: tuple[str, ...], out_dir: Path, device: str) -> StylesReport:
    """``evaluate --styles``: one checkpoint on the held-out styles set, also in ``styles.json``."""
    from mnistcnn._io import atomic_write
    from mnistcnn.artifact import load
    from mnistcnn.engine.utils import select_device
    from mnistcnn.evaluation.styles import styles_accuracy
    from mnistcnn.predict import DEFAULT_THRESHOLD
    from mnistcnn.predict.unsure import unsure_threshold

    if len(checkpoints) != 1:
        raise click.UsageError("--styles measures one checkpoint; give exactly one")
    model = load(checkpoints[0], map_location=select_device(device))
    report = styles_accuracy(model, threshold=unsure_threshold(model.checkpoint, DEFAULT_THRESHOLD))
    atomic_write(out_dir / "styles.json", json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _print_styles(report: StylesReport, out_dir: Path) -> None:
    click.echo(
        f"other writers' styles ({report.per_style} generated pictures each, seed "
        f"{report.seed}; unsure below p = {report.threshold:g}):"
    )
    click.echo(f"{'style':>12} {'accuracy':>9} {'unsure':>8}  most frequent mistakes")
    for s in report.scores:
        top = ", ".join(f"{k} x{v}" for k, v in list(s.mistakes.items())[:3])
        click.echo(f"{s.name:>12} {pct(s.accuracy):>9} {pct(s.unsure):>8}  {top}")
    click.echo(f"{'mean':>12} {pct(report.mean):>9}")
    click.echo(f"written to {out_dir / 'styles.json'}")


def _print_corruptions(result: RobustnessResult, out_dir: Path) -> None:
    """``evaluate --corruptions``: accuracy per corruption, the mean and the worst."""
    from mnistcnn.evaluation.robustness import EXAMPLES_NAME

    click.echo(
        f"corruptions (MNIST-C; the first {result.num_samples:,} test images, "
        f"seed {result.seed}; copies cached in {result.cache}):"
    )
    click.echo(f"{'corruption':>24} {'accuracy':>9} {'error':>8}")
    click.echo(f"{'clean':>24} {pct(result.clean_accuracy):>9} {pct(1 - result.clean_accuracy):>8}")
    for s in result.scores:
        click.echo(f"{s.name:>24} {pct(s.accuracy):>9} {pct(s.error):>8}")
    mean = result.mean_accuracy
    click.echo(f"{'mean of the corruptions':>24} {pct(mean):>9} {pct(1 - mean):>8}")
    worst = result.worst
    click.echo(f"{'worst: ' + worst.name:>24} {pct(worst.accuracy):>9} {pct(worst.error):>8}")
    click.echo(f"examples written to {out_dir / EXAMPLES_NAME}")


def _ood(
    checkpoints: tuple[str, ...],
    names: str,
    out_dir: Path,
    device: str,
    data_root: str | None,
    mirror: str | None,
) -> OodReport:
    """``evaluate --ood``: the OOD report of one checkpoint, also written to ``ood.json``."""
    from mnistcnn._io import atomic_write_json
    from mnistcnn.artifact import load
    from mnistcnn.engine.utils import select_device
    from mnistcnn.predict import DEFAULT_THRESHOLD
    from mnistcnn.predict.ood import ood_scores, parse_ood_sets
    from mnistcnn.predict.unsure import unsure_threshold

    if len(checkpoints) != 1:
        raise click.UsageError("--ood measures one checkpoint; give exactly one")
    dev = select_device(device)
    model = load(checkpoints[0], map_location=dev)
    sets = parse_ood_sets(names, model.dataset or "mnist")
    report = ood_scores(
        model,
        sets,
        threshold=unsure_threshold(model.checkpoint, DEFAULT_THRESHOLD),  # predict's rule
        data_root=data_root,
        mirror=mirror,
        device=str(dev),
    )
    atomic_write_json(out_dir / "ood.json", report.to_dict())
    return report


def _print_ood(report: OodReport, out_dir: Path) -> None:
    click.echo(
        f"out of distribution (unsure below p = {report.threshold:g}; of the first "
        f"{report.in_count} {report.dataset} test images, {pct(report.in_unsure)} called unsure):"
    )
    click.echo(f"{'set':>14} {'images':>7} {'AUROC msp':>10} {'AUROC energy':>13} {'unsure':>8}")
    for r in report.results:
        click.echo(
            f"{r.name:>14} {r.count:>7} {r.auroc_msp:>10.4f} {r.auroc_energy:>13.4f} "
            f"{pct(r.unsure):>8}"
        )
    for name, reason in report.skipped.items():
        click.echo(f"{name:>14} skipped: {reason}")
    click.echo(f"written to {out_dir / 'ood.json'}")


def _evaluate_images(
    checkpoints: tuple[str, ...], images: str, out: str | None, device: str, as_json: bool
) -> None:
    """``evaluate --images DIR``: one checkpoint on the pictures in DIR/<class>/*."""
    from mnistcnn.artifact import load
    from mnistcnn.engine.utils import select_device
    from mnistcnn.predict.labelled import evaluate_pictures, write_pictures_report

    if len(checkpoints) != 1:
        raise click.UsageError("--images evaluates one checkpoint; give exactly one")
    dev = select_device(device)
    model = load(checkpoints[0], map_location=dev)
    first = Path(checkpoints[0])
    folder = (first if first.is_dir() else first.parent).resolve()
    source = Path(images).resolve()  # one folder per picture folder: others never replace it
    digest = hashlib.sha256(str(source).encode()).hexdigest()[:8]
    out_dir = Path(out) if out else folder / f"evaluation-images-{source.name}-{digest}"
    result = evaluate_pictures(model, images, device=str(dev))
    report = write_pictures_report(result, model, out_dir)
    ev = result.evaluation
    if as_json:
        record = {**ev.to_dict(), "skipped": [{"path": p, "reason": r} for p, r in result.skipped]}
        click.echo(json.dumps({**record, "blank": result.blank, "report": str(report)}, indent=2))
        return
    for path, reason in result.skipped:
        click.echo(f"skipped {path}: {reason}", err=True)
    click.echo(f"{plural(ev.num_samples, 'picture')} in {images} ({result.blank} without ink)")
    click.echo(f"loss {ev.loss:.4f}  accuracy {pct(ev.accuracy)}")
    _per_class_table(ev)
    click.echo(f"report written to {report}")


def _per_class_table(ev: Evaluation) -> None:
    click.echo(f"{'class':>12} {'precision':>10} {'recall':>10} {'f1':>10} {'support':>8}")
    for row in ev.per_class:
        click.echo(
            f"{row['class']:>12} {pct(row['precision']):>10} {pct(row['recall']):>10} "
            f"{pct(row['f1']):>10} {row['support']:>8}"
        )


@click.command()
@json_option()
def models(as_json: bool) -> None:
    """List the registered models with their parameter counts."""
    from mnistcnn.models import create_model, describe_model, list_models

    rows = []
    for name in list_models():
        params = sum(p.numel() for p in create_model(name).parameters())
        rows.append({"name": name, "parameters": params, "description": describe_model(name)})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['name']:<16} {r['parameters']:>10,}  {r['description']}")
