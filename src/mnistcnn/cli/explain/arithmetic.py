"""``mnistcnn explain conv`` and ``explain model``: a convolution worked out term by term,
and a model's layer shapes with their arithmetic (no trained model needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mnistcnn.cli.common import json_option, user_errors
from mnistcnn.explain.conv_inputs import FILTERS, MAX_INPUT_SIDE, MAX_PADDING

_OPTION_OF = {
    "input": "--input",
    "kernel": "--kernel",
    "stride": "--stride",
    "padding": "--padding",
    "image": "--image",
    "size": "--size",
    "filter": "--filter",
}
_MATRIX_PRINT_MAX = 16  # larger matrices are summarized, not printed


@click.command("conv")
@click.option(
    "--input",
    "input_text",
    metavar="MATRIX",
    help='Input rows separated by ";", values by spaces or commas, e.g. '
    '"1 2 3; 4 5 6; 7 8 9". [default: the tutorial\'s 5x5 input, 1..25]',
)
@click.option(
    "--image",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Use a picture as the input, read as `mnistcnn predict` reads it: the 28x28 "
    "image the model sees (transparency, polarity: light ink on black, pixels 0..255).",
)
@click.option(
    "--preprocess/--no-preprocess",
    default=True,
    show_default=True,
    help="--no-preprocess: the --image's own pixels, only made grayscale "
    f"(at most {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE}, or give --size).",
)
@click.option(
    "--size",
    type=click.IntRange(1, MAX_INPUT_SIDE),
    help="Resize --image to SIZE x SIZE. [default: keep]",
)
@click.option(
    "--unit-range", is_flag=True, help="Divide --image pixels by 255 (0..1, as ToTensor does)."
)
@click.option(
    "--kernel",
    "kernel_text",
    metavar="MATRIX",
    help='Kernel, same syntax as --input. [default: the tutorial\'s "1 2; 3 4"]',
)
@click.option(
    "--filter",
    "filter_name",
    type=click.Choice(list(FILTERS)),
    help="A named 3x3 kernel instead of --kernel.",
)
@click.option(
    "--stride",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Step between kernel positions.",
)
@click.option(
    "--padding",
    type=click.IntRange(0, MAX_PADDING),
    default=0,
    show_default=True,
    help="Zeros added on every side.",
)
@click.option(
    "--max-terms",
    type=click.IntRange(min=0),
    help="Print at most this many term-by-term sums (--json has all). "
    "[default: 16; 3 when the output is too large to print]",
)
@click.option(
    "--save",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save input, kernel and feature map side by side (.png, .pdf, .svg).",
)
@json_option()
@user_errors
def conv(
    input_text: str | None,
    image: Path | None,
    preprocess: bool,
    size: int | None,
    unit_range: bool,
    kernel_text: str | None,
    filter_name: str | None,
    stride: int,
    padding: int,
    max_terms: int | None,
    save: Path | None,
    as_json: bool,
) -> None:
    """Work out a convolution (cross-correlation) term by term.

    Without options: the tutorial's example, the 5x5 input 1..25 with the 2x2
    filter [[1, 2], [3, 4]], giving a11 = (1*1) + (2*2) + (6*3) + (7*4) = 51.

    Limits: input at most 64x64, kernel at most 15x15, padding 0..7.

    \b
    Examples:
      mnistcnn explain conv
      mnistcnn explain conv --input "1 2 3; 4 5 6; 7 8 9" --kernel "1 0; 0 -1" --padding 1
      mnistcnn explain conv --image digit.png --size 28 --filter edge --save edge.png
    """
    if input_text is not None and image is not None:
        raise click.UsageError("give either --input or --image, not both")
    if kernel_text is not None and filter_name is not None:
        raise click.UsageError("give either --kernel or --filter, not both")
    if size is not None and image is None:
        raise click.UsageError("--size only applies to --image")
    if not preprocess and image is None:
        raise click.UsageError("--no-preprocess only applies to --image")
    picture = (image, preprocess, size, unit_range)
    worked = _worked(input_text, picture, kernel_text, filter_name, stride, padding)
    if save is not None:
        from mnistcnn.explain.conv_pictures import convolution_figure

        _save_figure(convolution_figure(worked, kernel_name=filter_name), save)
    if as_json:
        click.echo(json.dumps(worked.to_dict()))
        return
    _print_conv(worked, max_terms, filter_name)
    if save is not None:
        click.echo(f"\nsaved the figure to {save}")


def _worked(
    input_text: str | None,
    picture: tuple[Path | None, bool, int | None, bool],
    kernel_text: str | None,
    filter_name: str | None,
    stride: int,
    padding: int,
) -> Any:
    """Build the inputs and run the worked convolution; bad values name their option."""
    from mnistcnn.explain import conv_inputs as ci
    from mnistcnn.explain.conv_arithmetic import worked_convolution

    image, preprocess, size, unit_range = picture
    try:
        if image is not None:
            from mnistcnn.explain.conv_pictures import load_image_matrix

            matrix = load_image_matrix(
                image, size=size, unit_range=unit_range, preprocess=preprocess
            )
        elif input_text is not None:
            matrix = ci.parse_matrix(input_text, "input")
        else:
            matrix = ci.TUTORIAL_INPUT
        if filter_name is not None:
            kernel = ci.named_filter(filter_name)
        elif kernel_text is not None:
            kernel = ci.parse_matrix(kernel_text, "kernel")
        else:
            kernel = ci.TUTORIAL_KERNEL
        return worked_convolution(matrix, kernel, stride=stride, padding=padding)
    except ci.ConvInputError as exc:
        raise click.BadParameter(str(exc), param_hint=f"'{_OPTION_OF[exc.argument]}'") from None


def _save_figure(fig: Any, path: Path) -> None:
    try:
        fig.savefig(path, dpi=120)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"cannot save to {path}: {exc}", param_hint="'--save'") from None


def _print_conv(worked: Any, max_terms: int | None, filter_name: str | None) -> None:
    from mnistcnn.explain.conv_arithmetic import CROSS_CORRELATION_NOTE

    click.echo(CROSS_CORRELATION_NOTE)
    h, w = len(worked.input), len(worked.input[0])
    _print_matrix(f"Input A ({h}x{w})", worked.input)
    kernel_title = f"Kernel F ({len(worked.kernel)}x{len(worked.kernel[0])})"
    if filter_name:
        kernel_title += f" = {filter_name}: {FILTERS[filter_name][1]}"
    _print_matrix(kernel_title, worked.kernel)
    if worked.padding:
        rows, cols = len(worked.padded), len(worked.padded[0])
        _print_matrix(f"Input zero-padded by {worked.padding} ({rows}x{cols})", worked.padded)
    click.echo(
        f"\nOutput size = floor((n - k + 2p) / s) + 1, stride s = {worked.stride}, "
        f"padding p = {worked.padding}:"
    )
    for unit, axis in (("rows", worked.rows), ("columns", worked.cols)):
        click.echo(f"  {unit + ':':<9}{axis.formula()}")
        note = axis.remainder_note(unit)
        if note:
            click.echo(f"           ({note})")
    oh, ow = worked.rows.size, worked.cols.size
    large = _print_matrix(f"Activation map ({oh}x{ow})", worked.output)
    total = oh * ow
    shown = min(total, max_terms if max_terms is not None else 3 if large else 16)
    click.echo(f"\nEach element, term by term (input value * kernel value), {shown} of {total}:")
    for index, element in enumerate(worked.elements()):
        if index >= shown:
            break
        click.echo(f"  {element.equation()}")
    if shown < total:
        click.echo(f"  ... {total - shown} more (--max-terms {total} or --json shows all)")
        flat = [(v, r, c) for r, row in enumerate(worked.output, 1) for c, v in enumerate(row, 1)]
        for label, (_, r, c) in (("largest", max(flat)), ("smallest", min(flat))):
            click.echo(f"  {label}: {worked.element(r, c).equation()}")


def _print_matrix(title: str, matrix: list[list[Any]]) -> bool:
    """Print ``matrix`` under ``title``, or a summary if it is large; True if summarized."""
    from mnistcnn.explain.conv_arithmetic import format_number

    rows, cols = len(matrix), len(matrix[0])
    values = [v for row in matrix for v in row]
    if rows > _MATRIX_PRINT_MAX or cols > _MATRIX_PRINT_MAX:
        low, high, mean = min(values), max(values), sum(values) / len(values)
        click.echo(
            f"\n{title}: too large to print; min {format_number(low)}, "
            f"max {format_number(high)}, mean {mean:.4g} (see --save or --json)"
        )
        return True
    cells = [[format_number(v) for v in row] for row in matrix]
    width = max(len(c) for row in cells for c in row)
    click.echo(f"\n{title}:")
    for row in cells:
        click.echo("  " + " ".join(c.rjust(width) for c in row))
    return False


@click.command("model")
@click.argument("checkpoint", required=False, type=click.Path(path_type=Path))
@click.option(
    "--model",
    "model_name",
    metavar="NAME",
    help="A registered model (see `mnistcnn models`) instead of a CHECKPOINT.",
)
@click.option(
    "--input-shape",
    metavar="CxHxW",
    help="One sample's shape: channels 1..64, height and width 1..1024. "
    "[default: the checkpoint's, else 1x28x28]",
)
@json_option()
@user_errors
def model(
    checkpoint: Path | None, model_name: str | None, input_shape: str | None, as_json: bool
) -> None:
    """Layer-by-layer table of a CHECKPOINT's model or of --model NAME.

    Output shape, parameters and multiply-adds per layer (counted by torchinfo),
    with the shape arithmetic of every convolution and pooling layer written out,
    e.g. "Conv2d(1,10,5,p=2): 28 -> (28 - 5 + 2*2)/1 + 1 = 28".

    \b
    Examples:
      mnistcnn explain model --model tutorial
      mnistcnn explain model runs/latest/best.pt --json
      mnistcnn explain model --model torchvision:googlenet   (ImageNet, 3x224x224)
    """
    from mnistcnn.explain.model_summary import load_model_for_summary, summarize_model

    if (checkpoint is None) == (model_name is None):
        raise click.UsageError("give a CHECKPOINT or --model NAME (exactly one)")
    shape = _parse_shape(input_shape) if input_shape else None
    tv = next((str(s) for s in (checkpoint, model_name) if str(s).startswith("torchvision:")), None)
    try:
        if tv is not None:  # torchvision's ImageNet network (cli/torchvision_nets.py)
            from mnistcnn.cli.torchvision_nets import summary_model_torchvision

            net, label, default_shape = summary_model_torchvision(tv)
        else:
            net, label, default_shape = load_model_for_summary(checkpoint, model_name)
        summary = summarize_model(
            net, shape or default_shape, label=label, expected_shape=default_shape
        )
    except ImportError as exc:
        raise click.ClickException(f"{exc} (install torchinfo)") from None
    except (ValueError, RuntimeError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(summary.to_dict()))
        return
    _print_model(summary)


def _parse_shape(text: str) -> tuple[int, ...]:
    from mnistcnn.explain.model_summary import check_input_shape

    try:
        dims = tuple(int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise click.BadParameter(
            f"expected CxHxW such as 1x28x28, got {text!r}", param_hint="'--input-shape'"
        )
    try:
        check_input_shape(dims)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--input-shape'") from None
    return dims


def _print_model(summary: Any) -> None:
    shape = " x ".join(map(str, summary.input_shape))
    click.echo(f"Model: {summary.model}   input: {shape} (one sample)\n")
    name_w = max(len(r.name) for r in summary.layers)
    layer_w = max([len(r.layer) for r in summary.layers] + [len("Layer") - name_w - 2])
    header = (
        f"{'Layer':<{name_w + 2 + layer_w}}  {'Output shape':<14}  {'Params':>9}  {'Mult-adds':>11}"
    )
    click.echo(header)
    click.echo("-" * len(header))
    for row in summary.layers:
        out = " x ".join(map(str, row.output_shape))
        click.echo(
            f"{row.name:>{name_w}}  {row.layer:<{layer_w}}  {out:<14}  "
            f"{row.params:>9,}  {row.mult_adds:>11,}"
        )
        for line in row.explanation:
            click.echo(f"{'':>{name_w + 4}}{line}")
    click.echo("-" * len(header))
    click.echo(
        f"Total parameters: {summary.total_params:,} (trainable {summary.trainable_params:,})"
    )
    click.echo(f"Total mult-adds:  {summary.total_mult_adds:,} per sample")
