"""``mnistcnn export``: a checkpoint as ONNX, TorchScript or an ExportedProgram, parity-checked."""

from __future__ import annotations

import json

import click

from mnistcnn.cli.common import data_options, json_option, user_errors

FORMATS = ("onnx", "torchscript", "exported-program")  # mnistcnn.artifact.export.FORMATS


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s >= 1 else f"{s:.2f} s"


@click.command("export")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="onnx",
    show_default=True,
    help="onnx (ONNX Runtime; needs `pip install 'mnistcnn[onnx]'`), exported-program "
    "(torch.export, .pt2) or torchscript (torch.jit.trace; deprecated by PyTorch).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="File to write. [default: beside CHECKPOINT: best.onnx, best.pt2 or best.torchscript]",
)
@click.option(
    "--parity-images",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Test images the exported graph is checked on against PyTorch "
    "(random pictures, with a note, when the dataset is not available).",
)
@click.option(
    "--opset",
    type=click.IntRange(7, 23),
    default=None,
    help="ONNX only: the graph's opset, for an older ONNX Runtime (18: ONNX Runtime 1.14 "
    "or newer; 20, the default: 1.17 or newer); the parity check runs the file at it, "
    "and the metadata records it. [default: 20]",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing file at --out.")
@json_option("Print the report as JSON.")
@data_options
@user_errors
def export(
    checkpoint: str,
    fmt: str,
    out: str | None,
    parity_images: int,
    opset: int | None,
    overwrite: bool,
    as_json: bool,
    data_root: str | None,
    mirror: str | None,
) -> None:
    """Export CHECKPOINT as one file: pixels in [0, 1] in, logits out, any batch size.

    The normalization is inside the graph; the classes, normalization, input
    size, picture preparation, calibration temperature, model name and versions
    are embedded as metadata (ONNX metadata_props; TorchScript and .pt2: the
    extra file mnistcnn.json). Before the file is written, it is loaded back
    and run against the PyTorch model on --parity-images test images of the
    checkpoint's dataset in batches of 1, 7 and 64: the export is refused (and
    nothing written) above 1e-4 largest |logit difference| or below 100 %
    top-1 agreement.

    `mnistcnn predict` and `mnistcnn serve` take the .onnx in place of the
    checkpoint (with ONNX Runtime) and answer the same.

    \b
    Example:
      mnistcnn export runs/latest/best.pt                    # runs/latest/best.onnx
      mnistcnn export runs/latest/best.pt --format exported-program --out model.pt2
      mnistcnn predict runs/latest/best.onnx digit.png --json
    """
    from mnistcnn.artifact.export import export_model

    report = export_model(
        checkpoint,
        fmt,
        out,
        parity_images=parity_images,
        data_root=data_root,
        mirror=mirror,
        overwrite=overwrite,
        opset=opset,
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    p = report.parity
    agree = round(p.top1_agreement * p.images)
    sizes = ", ".join(str(s) for s in dict.fromkeys(p.batch_sizes))
    onnx = report.metadata.get("onnx")
    versions = f"opset {onnx['opset']}, IR version {onnx['ir_version']}, " if onnx else ""
    click.echo(
        f"wrote {report.path} ({report.format}, {versions}{_size(report.size_bytes)}; "
        f"exported in {_seconds(report.export_seconds)})"
    )
    click.echo(
        f"parity with PyTorch on {p.source}, batches of {sizes}: largest |logit difference| "
        f"{p.max_abs_logit_difference:.2g}, top-1 agreement {100 * p.top1_agreement:.2f}% "
        f"({agree}/{p.images})"
    )
