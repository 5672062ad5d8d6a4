"""``mnistcnn weights list|import``: torchvision's ImageNet weight files in torch's hub cache."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mnistcnn.cli.common import json_option, user_errors


@click.group()
def weights() -> None:
    """ImageNet weight files of the pretrained models (vgg19, resnet50, googlenet).

    They live in torch's hub cache, $TORCH_HOME/hub/checkpoints (default
    ~/.cache/torch/hub/checkpoints), under torchvision's file names, where
    torchvision looks too. `train --pretrained` finds them there (or takes
    --weights FILE, or downloads when online).
    """


@weights.command("list")
@json_option()
@user_errors
def list_cmd(as_json: bool) -> None:
    """Each weight file: model, file name, status (ok, wrong hash, missing) and size.

    A present file is hashed (SHA-256, as torch.hub checks it: the digest must
    start with the hex digits in the file name).
    """
    from mnistcnn.models.weights import checkpoints_dir
    from mnistcnn.models.weights_cache import list_weights

    rows = list_weights()
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    click.echo(f"torch hub cache: {checkpoints_dir()}")
    click.echo(f"{'model':<10} {'file':<24} {'status':<11} {'size':>10}  url")
    for r in rows:
        size = (
            f"{r.size_bytes / 1e6:.1f} MB"
            if r.size_bytes is not None
            else f"({r.info.size_mb:.0f} MB)"
        )
        click.echo(
            f"{r.info.model:<10} {r.info.file_name:<24} {r.status:<11} {size:>10}  {r.info.url}"
        )


@weights.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", type=click.Choice(["vgg19", "resnet50", "googlenet"]),
              help="Whose file it is. [default: told by its name or its hash]")  # fmt: skip
@user_errors
def import_cmd(file: Path, model: str | None) -> None:
    """Verify FILE (hash and tensors) and copy it into the hub cache under torchvision's name.

    For a file downloaded on another machine, e.g.
    https://download.pytorch.org/models/resnet50-11ad3fa6.pth.

    \b
    Example:
      mnistcnn weights import ~/Downloads/resnet50-11ad3fa6.pth
    """
    from mnistcnn.models.weights_cache import import_weights

    status = import_weights(file, model)
    click.echo(
        f"{status.info.model}: {file} verified (SHA-256 {status.sha256 or ''}); now {status.path}"
    )
