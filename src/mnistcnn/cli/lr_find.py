"""``mnistcnn lr-find``: the learning-rate range test (Smith 2017; fastai's ``lr_find``)."""

from __future__ import annotations

import functools
import json
from typing import Any

import click

from mnistcnn.cli.common import check_figure_path, data_options, user_errors
from mnistcnn.cli.config_options import config_options


@click.command("lr-find")
@functools.partial(config_options, without=("tensorboard", "keep_top"))  # no run is written
@click.option(
    "--start-lr",
    type=click.FloatRange(min=0, min_open=True),
    default=1e-7,
    show_default=True,
    help="First learning rate of the sweep.",
)
@click.option(
    "--end-lr",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Last learning rate of the sweep.",
)
@click.option(
    "--steps",
    type=click.IntRange(min=2),
    default=100,
    show_default=True,
    help="Training steps (one batch each), unless the loss diverges first.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default="lr_find.png",
    show_default=True,
    help="Where to save the loss-vs-lr picture (format from the extension).",
)
@click.option("--no-plot", is_flag=True, help="Do not save a picture.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write the curve and the suggestion as JSON to this file ('-': standard output).",
)
@data_options
@user_errors
def lr_find(
    recipe: str | None,
    start_lr: float,
    end_lr: float,
    steps: int,
    plot: str,
    no_plot: bool,
    json_path: str | None,
    data_root: str | None,
    mirror: str | None,
    **flags: Any,
) -> None:
    """Sweep the learning rate exponentially on a copy of the recipe's model; suggest one.

    Trains a fresh model of the recipe (model, optimizer, data, batch size; flags
    as for train override it) for --steps batches while the learning rate grows
    from --start-lr to --end-lr, stopping once the smoothed loss passes 4x its
    minimum. The suggestion is the learning rate of the steepest descent of the
    smoothed loss (fastai's "steep"). Nothing is trained for real; no run is written.

    \b
    Example:
      mnistcnn lr-find --recipe tutorial --train-subset 10000
      mnistcnn lr-find --recipe best --plot lr.png --json lr.json
    """
    from mnistcnn.config import recipe_config
    from mnistcnn.engine.lr_find import lr_find_for_config, plot_lr_find

    if start_lr >= end_lr:
        raise click.BadParameter(
            f"--start-lr {start_lr:g} must be below --end-lr {end_lr:g}", param_hint="'--start-lr'"
        )
    if not no_plot:
        check_figure_path(plot, "--plot")
    config = recipe_config(recipe or "tutorial", **flags)
    if config.dataset.startswith("folder:"):  # your own pictures: prepared first, as train does
        from mnistcnn.cli.folder import prepare_and_say
        from mnistcnn.data.folder import folder_path

        prepare_and_say(folder_path(config.dataset), data_root)
    result = lr_find_for_config(
        config, data_root=data_root, mirror=mirror, start_lr=start_lr, end_lr=end_lr, steps=steps
    )
    if not no_plot:
        from mnistcnn.evaluation.plots import save_figure

        save_figure(plot_lr_find(result), plot)
    if json_path == "-":
        click.echo(json.dumps(result.to_json(), indent=2))
    elif json_path:
        from mnistcnn._io import atomic_write_json

        atomic_write_json(json_path, result.to_json())
    stop = f", stopped early at step {len(result.lrs)}" if result.stopped_early else ""
    saved = f"; plot {plot}" if not no_plot else ""
    click.echo(
        f"suggested lr {result.suggestion:.3g} (steepest descent of the smoothed loss, "
        f"{len(result.lrs)} steps{stop}; recipe {config.recipe} uses {config.lr:g}){saved}",
        err=json_path == "-",
    )
    if result.warning:
        text = result.warning.replace("start_lr", "--start-lr").replace("end_lr", "--end-lr")
        more = " (--steps, --train-subset)" if text.endswith("more images") else ""
        click.echo(f"warning: {text}{more}", err=True)
