"""``mnistcnn predict`` (digits on your own pictures) and ``mnistcnn calibrate``."""

from __future__ import annotations

import json
import math
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from mnistcnn._text import display_width, pad_display, plural, printable, tail_display
from mnistcnn.cli import exit_codes
from mnistcnn.cli.common import (
    data_options,
    device_option,
    invert_option,
    json_option,
    pct,
    threshold_option,
    user_errors,
)
from mnistcnn.cli.csv_rows import ENCODING_HELP, CsvRows
from mnistcnn.cli.torchvision_nets import CHECKPOINT, is_torchvision, predict_torchvision

if TYPE_CHECKING:
    from collections.abc import Callable

    from mnistcnn.predict import Prediction, Predictor
    from mnistcnn.prepare import InvertMode

#: Exit status when some inputs could not be predicted (the others were).
EXIT_SOME_FAILED = exit_codes.SOME_INPUTS


def _status(p: Prediction) -> str:
    if p.error is not None:
        return "error"
    if p.blank:
        return "unsure (no ink)"
    if p.digits_found:
        return f"unsure ({p.digits_found} digits: read them with `mnistcnn read`)"
    return "unsure" if p.unsure else "confident"


def _table(preds: list[Prediction], top_k: int, notes: dict[int, str] | None = None) -> str:
    """One row per picture; columns sized by terminal width (wide characters count 2).

    ``notes`` maps ``id(prediction)`` to a problem that did not stop the
    prediction (a --show-input picture that could not be written); it is
    added to that row's status.
    """
    notes = notes or {}
    width = min(max([display_width(printable(p.path)) for p in preds] + [4]), 60)
    tops = ["  ".join(f"{lab} {100 * prob:5.1f}%" for lab, prob in p.topk) or "-" for p in preds]
    header = f"top-{top_k}"
    top_w = max([display_width(t) for t, p in zip(tops, preds) if p.error is None] + [len(header)])
    lines = [f"{pad_display('file', width)}  {'label':<5}  {pad_display(header, top_w)}  status"]
    for p, top in zip(preds, tops):
        name = pad_display(tail_display(printable(p.path), width), width)
        if p.error is not None:
            lines.append(f"{name}  {'-':<5}  error: {p.error}")
            continue
        label = pad_display(p.label or "-", 5)
        status = _status(p) + (f" ({notes[id(p)]})" if id(p) in notes else "")
        lines.append(f"{name}  {label}  {pad_display(top, top_w)}  {status}")
    return "\n".join(lines)


def _csv_header(top_k: int) -> list[str]:
    top = [f"top{i}_{f}" for i in range(1, top_k + 1) for f in ("label", "prob")]
    return ["path", "label", "probability", "unsure", "error", *top]


def _csv_row(p: Prediction, top_k: int) -> list[str]:
    """One picture's ``--csv`` row (columns of :func:`_csv_header`)."""
    top = [x for lab, prob in p.topk for x in (lab, f"{prob:.6f}")]
    prob = "" if p.probability is None else f"{p.probability:.6f}"
    row = [p.path, p.label or "", prob, str(p.unsure).lower(), p.error or ""]
    return row + top + [""] * (2 * top_k - len(top))


def _safe_stem(name: str) -> str:
    """A file-name-safe stem: accents dropped (NFKD), letters of any script kept.

    ``ünïcödé 七.png`` -> ``unicode_七``; runs of anything but word characters,
    ``.`` and ``-`` become ``_``.
    """
    stem = Path(name.replace("#", "-")).stem if name != "-" else "stdin"
    stem = "".join(c for c in unicodedata.normalize("NFKD", stem) if not unicodedata.combining(c))
    return re.sub(r"[^\w.-]+", "_", stem).strip("_")[:60] or "input"


def _show_input(folder: Path, index: int, p: Prediction, predictor: Predictor) -> None:
    """Write ``NNNN-name.input.png`` (the 28x28 the model saw) and ``NNNN-name.png`` (compare)."""
    from PIL import Image

    from mnistcnn._io import atomic_write
    from mnistcnn.evaluation.plots import plot_predict_input, save_figure

    if p.input is None:
        return
    base = folder / f"{index:04d}-{_safe_stem(p.path)}"
    small = Image.fromarray(p.input, "L")
    atomic_write(base.with_name(base.name + ".input.png"), lambda fh: small.save(fh, "PNG"))
    if p.error is None:
        verdict = f"{_status(p)}: {p.label}" if p.label else _status(p)
        title = f"{p.path}  ->  {verdict}"
        fig = plot_predict_input(
            p.preview,
            p.input,
            p.probabilities,
            predictor.classes,
            title,
            calibrated=predictor.calibrated,
            original_size=p.size,
        )
        save_figure(fig, base.with_name(base.name + ".png"))
    p.preview = None  # the picture is written; free the memory


def _show_input_safely(folder: Path, index: int, p: Prediction, predictor: Predictor) -> str | None:
    """:func:`_show_input`, with a failure returned as a few words instead of raised.

    Writing the pictures of one input must never lose the other rows: an
    unwritable folder, a full disk or a picture the plot cannot draw is
    reported on that row (and on stderr), and the batch carries on.
    """
    try:
        _show_input(folder, index, p, predictor)
    except KeyboardInterrupt:
        raise
    except OSError as exc:
        from mnistcnn.cli.common import os_error_message

        p.preview = None
        return f"--show-input pictures not written: {os_error_message(exc)}"
    except Exception as exc:  # a plotting bug on an odd picture: report it on the row
        p.preview = None
        return f"--show-input pictures not written: {type(exc).__name__}: {exc}"
    return None


@click.command()
@click.argument("checkpoint", type=CHECKPOINT)
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--top-k",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Classes listed; more than the model has lists them all (with a note).",
)
@json_option("A JSON list, one object per picture.")
@click.option("--csv", "as_csv", is_flag=True, help=f"CSV with a header row; {ENCODING_HELP}")
@invert_option
@threshold_option
@click.option(
    "--show-input",
    type=click.Path(file_okay=False),
    help="Folder to save, per picture, the 28x28 the model saw and a side-by-side PNG.",
)
@device_option("cpu")
@click.option(
    "--ensemble",
    "ensemble",
    multiple=True,
    type=click.Path(exists=True),
    metavar="CKPT",
    help="Another checkpoint to average with CHECKPOINT (repeatable): the mean of the "
    "models' calibrated probabilities. They must have the same classes.",
)
@click.option(
    "--tta",
    is_flag=True,
    help="Test-time augmentation: average the probabilities of 5 views of each prepared "
    "28x28 (itself, and moved 1 px right, left, down, up); 5x the model work.",
)
@click.option(
    "--adapt",
    type=click.Choice(["adabn", "tent"]),
    is_flag=False,
    flag_value="adabn",
    help="First adapt a copy of the model to all the pictures given, without labels (one "
    "writer, scanner or form): adabn re-estimates its BatchNorm statistics on them (Li et "
    "al. 2016), tent also tunes the BatchNorm weights by entropy minimisation (Wang et al. "
    "2021). Says how many answers changed; the checkpoint file is not touched; one picture "
    "changes nothing. Needs a BatchNorm model (robust). [--adapt alone: adabn]",
)
@user_errors
def predict(
    checkpoint: str | Path,
    inputs: tuple[str, ...],
    top_k: int,
    as_json: bool,
    as_csv: bool,
    invert: str,
    threshold: float | None,
    show_input: str | None,
    device: str,
    ensemble: tuple[str, ...],
    tta: bool,
    adapt: str | None,
) -> None:
    """Predict the digit in each picture of INPUTS with CHECKPOINT.

    INPUTS are image files (PNG, JPEG, BMP, GIF, TIFF, WebP, ...), folders
    (their image files), glob patterns, - (standard input) or IDX files (one
    prediction per image, named file#index). Each picture is prepared the way
    MNIST was: ink found and made white on black, cropped, fitted into 20x20,
    centred by its centre of mass in 28x28.

    A picture without ink, or whose calibrated top probability is below
    --threshold, is reported as unsure (label '-', JSON null).

    --ensemble CKPT (repeatable) averages CHECKPOINT's calibrated probabilities
    with other models'; --tta averages over one-pixel shifts of each
    prepared picture. The JSON then says which ("members", "tta").

    Exit status: 0 when every input was predicted, 3 when some could not be
    read (each says why; the others are still predicted), 1 on other errors,
    2 on a wrong command line.

    \b
    Example:
      mnistcnn predict runs/latest/best.pt photo.jpg drawings/ "scans/*.png"
      cat digit.png | mnistcnn predict runs/latest/best.pt - --json
      mnistcnn predict a/best.pt --ensemble b/best.pt --tta photo.jpg
      mnistcnn predict runs/latest/last.pt form-scans/ --adapt     # one source's pictures

    CHECKPOINT may also be torchvision:vgg19|resnet50|googlenet: torchvision's
    ImageNet network itself, its top-k of the 1,000 ImageNet categories for
    photos (ImageNet preprocessing: resize, centre crop 224); weights from
    torch's hub cache (see `mnistcnn weights list`).
    """
    from mnistcnn.predict import Predictor, expand_inputs
    from mnistcnn.predict.inputs import no_pictures_message, skipped_note

    if as_json and as_csv:
        raise click.UsageError("--json and --csv cannot be combined")
    if adapt and (ensemble or tta or is_torchvision(checkpoint)):
        flag = "--ensemble" if ensemble else "--tta" if tta else "torchvision:"
        raise click.UsageError(f"--adapt adapts one checkpoint of this project; not with {flag}")
    if is_torchvision(checkpoint):
        return predict_torchvision(checkpoint, inputs, top_k, as_json, device)
    mode = cast("InvertMode", invert)
    extra: dict[str, object] = {}  # what --json adds to each object
    predictor: Predictor
    if ensemble or tta:
        from mnistcnn.predict.ensemble import EnsemblePredictor

        predictor = EnsemblePredictor.from_checkpoints(
            [checkpoint, *ensemble],
            device=device,
            invert=mode,
            threshold=threshold,
            top_k=top_k,
            tta=tta,
        )
        extra = predictor.describe()
        if not (as_json or as_csv):
            click.echo(f"note: {predictor.summary()}", err=True)
    else:
        predictor = Predictor.from_checkpoint(
            checkpoint, device=device, invert=mode, threshold=threshold, top_k=top_k
        )
    if top_k > len(predictor.classes):
        click.echo(
            f"note: --top-k {top_k} is more than the model's {len(predictor.classes)} "
            f"classes; listing all {len(predictor.classes)}",
            err=True,
        )
        top_k = len(predictor.classes)
    if not predictor.calibrated and not (as_json or as_csv):
        members = getattr(predictor, "members", [predictor])
        uncalibrated = sum(not m.calibrated for m in members)
        what = (
            f"{uncalibrated} of the {len(members)} checkpoints are"
            if len(members) > 1
            else "this checkpoint is"
        )
        click.echo(
            f"note: {what} not calibrated; probabilities are raw softmax "
            "(see `mnistcnn calibrate`)",
            err=True,
        )
    skipped: Counter[str] = Counter()
    items = expand_inputs(list(inputs), sys.stdin.buffer, skipped)
    if items and skipped:
        click.echo(f"note: {skipped_note(skipped)}", err=True)
    if not items:  # only folders (or patterns matching folders) without pictures
        click.echo(f"error: {no_pictures_message(list(inputs))}", err=True)
        sys.exit(exit_codes.ERROR)
    folder = Path(show_input) if show_input else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    counter = iter(range(len(items)))
    show_failed: dict[int, str] = {}  # id(prediction) -> why its --show-input pictures failed

    rows = CsvRows(_csv_header(top_k)) if as_csv else None

    def shown(p: Prediction) -> None:
        if rows is not None:  # each row as its picture is done (--adapt: once adapted)
            rows.row(_csv_row(p, top_k))
        if folder is not None:
            why = _show_input_safely(folder, next(counter), p, predictor)
            if why is not None:
                show_failed[id(p)] = why
                click.echo(f"warning: {printable(p.path)}: {why}", err=True)

    preds = predictor.predict_items(
        items, keep_previews=folder is not None, on_prediction=None if adapt else shown
    )
    if adapt:
        preds = _adapted(predictor, preds, adapt, shown, quiet=as_json or as_csv)
        extra = {"adapt": adapt}
    if as_json:
        click.echo(json.dumps([{**p.to_dict(), **extra} for p in preds], indent=2))
    elif not as_csv and preds:
        click.echo(_table(preds, top_k, show_failed))
    failed = sum(p.error is not None for p in preds)
    if not (as_json or as_csv):
        unsure = sum(p.unsure for p in preds)
        click.echo(
            f"{plural(len(preds), 'picture')}: {len(preds) - unsure - failed} confident, "
            f"{unsure} unsure, {failed} failed",
            err=True,
        )
    if not preds:
        click.echo("error: no pictures found in the inputs", err=True)
        sys.exit(exit_codes.ERROR)
    if failed:
        sys.exit(EXIT_SOME_FAILED)


def _adapted(
    predictor: Predictor,
    preds: list[Prediction],
    method: str,
    shown: Callable[[Prediction], None],
    quiet: bool,
) -> list[Prediction]:
    """``predict --adapt``: the predictions of a copy of the model adapted to their pictures."""
    from mnistcnn.predict.adapt import adapt_predictions

    after, outcome = adapt_predictions(predictor, preds, method)
    for p in after:
        shown(p)
    if not quiet:
        click.echo(outcome.summary(), err=True)
    return after


def _fmt(x: float) -> str:
    return "-" if math.isnan(x) else pct(x)


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option(
    "--split",
    type=click.Choice(["val", "test"]),
    default="val",
    show_default=True,
    help="Held-out data to fit on: val (the images training held out; needs a run "
    "trained with --val-fraction) or test (then test figures are not independent).",
)
@device_option("cpu")
@data_options
@user_errors
def calibrate(
    checkpoint: str, split: str, device: str, data_root: str | None, mirror: str | None
) -> None:
    """Fit the temperature that calibrates CHECKPOINT's probabilities, and store it in the file.

    Temperature scaling (Guo et al. 2017): one number T, fitted on held-out
    images by minimising the negative log-likelihood; predictions then use
    softmax(logits / T). The predicted digits do not change, only how sure the
    model says it is. Prints what each --threshold of `mnistcnn predict` means
    on the test split: how many images it answers and how many of those are wrong.
    Refused while `mnistcnn train` is still training into the checkpoint's run
    (it would overwrite best.pt and lose the calibration).

    \b
    Example:
      mnistcnn train --val-fraction 0.1 --out runs/cal
      mnistcnn calibrate runs/cal/best.pt
    """
    from mnistcnn.evaluation.calibration import calibrate_from_split

    if split == "val":
        _check_validation_split(checkpoint)
    r = calibrate_from_split(checkpoint, split, data_root=data_root, mirror=mirror, device=device)
    f = r.fit
    click.echo(f"temperature {f.temperature:.4f}, fitted on {f.fitted_on}")
    click.echo(
        f"NLL {f.nll_before:.4f} -> {f.nll_after:.4f} nats, "
        f"ECE {pct(f.ece_before)} -> {pct(f.ece_after)}"
    )
    click.echo(f"written to {r.path}")
    if split == "test":
        click.echo("warning: fitted on the test split; the figures below are not independent")
    click.echo(f"\non {r.test_described}, accuracy {pct(r.test_accuracy)}, calibrated:")
    click.echo("threshold  answered  wrong among answered  wrong among unsure  errors flagged")
    for row in r.test_rows:
        click.echo(
            f"{row.threshold:<9g}  {_fmt(row.answered):>8}  {_fmt(row.error_answered):>20}  "
            f"{_fmt(row.error_unsure):>18}  {_fmt(row.errors_caught):>14}"
        )


def _check_validation_split(checkpoint: str) -> None:
    """Refuse ``--split val`` for a model trained without a validation split.

    Raises:
        CheckpointError: ``checkpoint`` is not a readable checkpoint.
        SettingError: the model was trained on the whole training split.
    """
    from mnistcnn.artifact import load_checkpoint
    from mnistcnn.errors import SettingError

    ckpt = load_checkpoint(checkpoint)
    if float(ckpt.config.get("val_fraction", 0.0)) <= 0:
        raise SettingError(
            f"{ckpt.path}: the model was trained on the whole training split, so no "
            "held-out validation images exist; train with --val-fraction 0.1, or "
            "calibrate with --split test (then test-set figures are no longer independent)",
            path=ckpt.path,
        )
