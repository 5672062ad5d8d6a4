"""``mnistcnn runs``: the training runs in a folder, one line each."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import click

from mnistcnn.cli.common import json_option, user_errors
from mnistcnn.errors import SettingError


@click.command("runs")
@click.argument("folder", default="runs", type=click.Path(file_okay=False))
@json_option("Print the runs as a JSON list instead.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    help="Save the runs' test accuracy and loss per epoch, overlaid, to this picture.",
)
@user_errors
def runs(folder: str, as_json: bool, plot: str | None) -> None:
    """List the training runs in FOLDER (default: runs): progress, accuracy, time, status.

    A run is a sub-folder with a config.json. Columns: epochs done/planned,
    the final test accuracy, the best accuracy and its epoch (the one best.pt
    holds; "val" when it is the validation accuracy), training plus evaluation
    time from metrics.csv, and the status: finished (every epoch and the
    report), stopped (a last.pt to --resume), failed (no checkpoint) or
    running (another process holds the run's lock).

    \b
    Example:
      mnistcnn runs
      mnistcnn runs runs/ --json
      mnistcnn runs --plot compare.png
    """
    from mnistcnn.engine.run_list import format_table, list_runs, plot_runs

    base = Path(folder)
    if not base.is_dir():
        raise SettingError(f"{folder}: no such folder of runs")
    if plot:
        _check_plot(plot)
    found = list_runs(base)
    if as_json:
        click.echo(json.dumps([run.to_json() for run in found], indent=2))
    elif found:
        click.echo(format_table(found))
    else:
        click.echo(f"no runs in {folder} (a run is a folder with a config.json)")
    if plot:
        _save_figure(plot_runs(found), plot)
        click.echo(f"plot written to {plot}", err=as_json)


def _plots_module() -> Any:
    """The plotting helpers' module, imported when needed (matplotlib is slow to import)."""
    return importlib.import_module("mnistcnn.evaluation.plots")


def _save_figure(fig: object, path: str) -> None:
    _plots_module().save_figure(fig, path)


def _check_plot(plot: str) -> None:
    """Refuse a --plot that cannot be written, before anything is read."""
    try:
        _plots_module().figure_format(plot)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--plot'") from None
    if not Path(plot).resolve().parent.is_dir():
        raise SettingError(f"--plot {plot}: the folder {Path(plot).parent} does not exist")
