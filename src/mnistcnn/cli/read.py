"""``mnistcnn read``: the numbers written in pictures, digit by digit."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from mnistcnn._text import pad_display, plural, printable, tail_display
from mnistcnn.cli.common import user_errors
from mnistcnn.cli.csv_rows import ENCODING_HELP, CsvRows
from mnistcnn.cli.predict import EXIT_SOME_FAILED, _safe_stem

if TYPE_CHECKING:
    from mnistcnn.predict.reading import Reading
    from mnistcnn.prepare.ink import InvertMode

CSV_HEADER = [
    "path",
    "text",
    "digit",
    "line",
    "label",
    "probability",
    "unsure",
    "left",
    "top",
    "right",
    "bottom",
    "error",
]


def _table(readings: list[Reading], notes: dict[int, str]) -> str:
    """One row per picture (more for a picture of several lines); then its digits' probabilities."""
    width = min(max([len(printable(r.path)) for r in readings] + [4]), 50)
    lines = [f"{pad_display('file', width)}  text"]
    for r in readings:
        name = pad_display(tail_display(printable(r.path), width), width)
        if r.error is not None:
            lines.append(f"{name}  error: {r.error}")
            continue
        rows = r.text.split("\n") if r.text else ["-"]
        unsure = sum(d.unsure for d in r.digits)
        status = f"{plural(len(r.digits), 'digit')}" + (f", {unsure} unsure" if unsure else "")
        if id(r) in notes:
            status += f" ({notes[id(r)]})"
        lines.append(f"{name}  {rows[0]:<12}  {status}")
        lines += [f"{'':{width}}  {row}" for row in rows[1:]]
        probs = "  ".join(f"{d.label or '?'} {100 * d.probability:.1f}%" for d in r.digits)
        if probs:
            lines.append(f"{'':{width}}    {probs}")
    return "\n".join(lines)


def _csv_rows(r: Reading) -> list[list[object]]:
    """A picture's ``--csv`` rows (:data:`CSV_HEADER`): one per digit; one when it has none."""
    if not r.digits:
        return [[r.path, r.text, "", "", "", "", "", "", "", "", "", r.error or ""]]
    return [
        [
            r.path,
            r.text,
            i,
            d.line,
            d.label or "",
            f"{d.probability:.6f}",
            str(d.unsure).lower(),
            *d.box,
            "",
        ]
        for i, d in enumerate(r.digits)
    ]


def _show(folder: Path, index: int, r: Reading) -> str | None:
    """Write ``NNNN-name.boxes.png`` and ``NNNN-name.digits.png``; a failure as a few words."""
    from mnistcnn._io import atomic_write
    from mnistcnn.predict.reading import boxes_picture, inputs_strip

    base = folder / f"{index:04d}-{_safe_stem(r.path)}"
    try:
        if r.preview is not None:
            boxed = boxes_picture(r.preview, r)
            atomic_write(base.with_name(base.name + ".boxes.png"), lambda fh: boxed.save(fh, "PNG"))
        strip = inputs_strip(r)
        if strip is not None:
            atomic_write(
                base.with_name(base.name + ".digits.png"), lambda fh: strip.save(fh, "PNG")
            )
    except OSError as exc:
        from mnistcnn.cli.common import os_error_message

        return f"--show-input pictures not written: {os_error_message(exc)}"
    finally:
        r.preview = None
    return None


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True))
@click.argument("pictures", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="A JSON list, one object per picture.")
@click.option(
    "--csv",
    "as_csv",
    is_flag=True,
    help=f"CSV with a header row, one row per digit; {ENCODING_HELP}",
)
@click.option(
    "--invert",
    type=click.Choice(["auto", "yes", "no"]),
    default="auto",
    show_default=True,
    help="Dark ink on light paper? auto detects it from the picture; yes/no force it.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    help="A digit below this calibrated top probability is unsure and shows as ? "
    "(0.4 for a model trained with outlier exposure, as recipe robust is). [default: 0.5]",
)
@click.option(
    "--show-input",
    type=click.Path(file_okay=False),
    help="Folder to save, per picture, the picture with each digit's box and reading "
    "(.boxes.png) and the 28x28 inputs the model saw (.digits.png).",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, mps or auto.")
@click.option(
    "--adapt",
    type=click.Choice(["adabn", "tent"]),
    is_flag=False,
    flag_value="adabn",
    help="Read all PICTURES once, adapt a copy of the model to every digit found, without "
    "labels (adabn: BatchNorm statistics, Li et al. 2016; tent: also entropy minimisation, "
    "Wang et al. 2021), then read them again with it; says how many readings changed. "
    "The checkpoint file is not touched; one digit changes nothing. [--adapt alone: adabn]",
)
@user_errors
def read(
    checkpoint: str,
    pictures: tuple[str, ...],
    as_json: bool,
    as_csv: bool,
    invert: str,
    threshold: float | None,
    show_input: str | None,
    device: str,
    adapt: str | None,
) -> None:
    """Read the numbers written in PICTURES with CHECKPOINT: every digit, left to right.

    PICTURES are what `mnistcnn predict` takes: image files, folders, glob
    patterns, - (standard input) or IDX files. In each picture the digits are
    found (touching digits cut apart, a digit's separate strokes joined,
    specks, frames, ruled lines and page edges left out), read left to right and
    line by line, and each is prepared the way the model's dataset was (for
    MNIST: fitted into 20x20, centred by its centre of mass in 28x28). Spaces,
    dashes, dots and slashes between digits are kept; lines are separated by a
    newline (JSON) or printed one under the other.

    A digit whose calibrated top probability is below --threshold is unsure
    and shows as ? in the text.

    Exit status: 0 when every picture was read, 3 when some could not be
    (each says why; the others are still read), 1 on other errors, 2 on a
    wrong command line.

    \b
    Example:
      mnistcnn read runs/latest/best.pt meter.jpg
      mnistcnn read runs/latest/best.pt forms/ --json
      mnistcnn read runs/latest/best.pt date.png --show-input shown/
      cat number.png | mnistcnn read runs/latest/best.pt - --csv
      mnistcnn read runs/latest/best.pt one-writers-forms/ --adapt
    """
    from mnistcnn.predict import expand_inputs
    from mnistcnn.predict.reader import Reader

    if as_json and as_csv:
        raise click.UsageError("--json and --csv cannot be combined")
    reader = Reader.from_checkpoint(
        checkpoint, device=device, invert=cast("InvertMode", invert), threshold=threshold
    )
    items = expand_inputs(list(pictures), sys.stdin.buffer)
    folder = Path(show_input) if show_input else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    before = [reader.read_item(item) for item in items] if adapt else []
    if adapt:
        from mnistcnn.predict.adapt import adapted_reader

        reader = adapted_reader(reader, before, adapt)
    readings, notes = [], {}
    rows = CsvRows(CSV_HEADER) if as_csv else None
    for i, item in enumerate(items):
        r = reader.read_item(item, keep_preview=folder is not None)
        if rows is not None:  # as each picture is read: a Ctrl-C keeps the rows so far
            for row in _csv_rows(r):
                rows.row(row)
        if folder is not None and r.error is None:
            why = _show(folder, i, r)
            if why is not None:
                notes[id(r)] = why
                click.echo(f"warning: {printable(r.path)}: {why}", err=True)
        readings.append(r)
    if adapt and not (as_json or as_csv):
        from mnistcnn.predict.adapt import AdaptOutcome

        changed = sum(a.text != b.text for a, b in zip(readings, before, strict=True))
        digits = sum(len(r.digits) for r in before)
        outcome = AdaptOutcome(adapt, len(readings), digits, changed)
        click.echo(outcome.summary("digits", "reading"), err=True)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in readings], indent=2))
    elif not as_csv and readings:
        click.echo(_table(readings, notes))
    failed = sum(r.error is not None for r in readings)
    if not readings:
        click.echo("error: no pictures found in the inputs", err=True)
        sys.exit(1)
    if failed:
        sys.exit(EXIT_SOME_FAILED)
