"""``mnistcnn serve CHECKPOINT``: the HTTP API and drawing page (see docs/serve.md)."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import click

from mnistcnn.cli import exit_codes
from mnistcnn.cli.common import device_option, invert_option, threshold_option, user_errors

if TYPE_CHECKING:
    from mnistcnn.prepare import InvertMode


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind; 0.0.0.0 to accept other machines.",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port; 0 picks a free one (the real port is printed).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes, each with its own copy of the model.",
)
@click.option(
    "--max-body-mb",
    default=8.0,
    show_default=True,
    type=click.FloatRange(0.001, 1024),
    help="Largest request body, MiB.",
)
@click.option(
    "--max-image-side",
    default=8192,
    show_default=True,
    type=click.IntRange(8),
    help="Largest width or height of an uploaded image, pixels (and a request's "
    "images may have 40,000,000 pixels in all).",
)
@click.option(
    "--max-images",
    default=64,
    show_default=True,
    type=click.IntRange(1),
    help="Most images in one batch request.",
)
@click.option(
    "--timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.01),
    help="Seconds one request may take before it is answered 503.",
)
@click.option(
    "--torch-threads",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Torch threads per worker. Each image is one small forward pass, so one "
    "thread is fastest; use --workers to use more cores.",
)
@device_option("cpu")
@invert_option
@threshold_option
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Let pages from ORIGIN (e.g. https://example.org, or * for any) call the API "
    "from a browser (CORS). Repeatable. [default: none: same origin only]",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="One line per request on stderr: method, path, status, milliseconds.",
)
@click.option(
    "--ensemble",
    "ensemble",
    multiple=True,
    type=click.Path(exists=True),
    metavar="CKPT",
    help="Another checkpoint to average with CHECKPOINT (repeatable); /v1/model lists the members.",
)
@click.option(
    "--tta",
    is_flag=True,
    help="Test-time augmentation: average 5 views of each prepared picture (itself, "
    "moved 1 px right, left, down, up); 5x the model work.",
)
@user_errors
def serve(
    checkpoint: str,
    host: str,
    port: int,
    workers: int,
    max_body_mb: float,
    max_image_side: int,
    max_images: int,
    timeout: float,
    torch_threads: int,
    device: str,
    invert: InvertMode,
    threshold: float | None,
    cors_origins: tuple[str, ...],
    access_log: bool,
    ensemble: tuple[str, ...],
    tta: bool,
) -> None:
    """Serve CHECKPOINT (a .pt, a run folder or an .onnx): draw a digit at http://HOST:PORT/.

    API: POST /v1/predict, POST /v1/read, GET /v1/model, GET /healthz; OpenAPI docs at /docs.
    A port that is taken is one error line (try another --port, or --port 0).
    """
    try:
        from mnistcnn.serve import ModelSource, ServeSettings, run_server
    except ImportError as exc:
        raise click.ClickException(
            f"serving needs the 'serve' extra ({exc.name} is missing): "
            "pip install 'mnistcnn[serve]'"
        ) from None
    if access_log:
        logging.getLogger("mnistcnn.serve.access").setLevel(logging.INFO)
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)
    settings = ServeSettings(
        max_body_bytes=int(max_body_mb * 2**20),
        max_image_side=max_image_side,
        max_images=max_images,
        timeout_s=timeout,
        cors_origins=tuple(cors_origins),
    )
    source = ModelSource(
        checkpoint,
        device=device,
        invert=invert,
        threshold=threshold,
        torch_threads=torch_threads,
        ensemble=ensemble,
        tta=tta,
    )
    click.echo(f"mnistcnn: loading {', '.join([checkpoint, *ensemble])}", err=True)

    def listening(url: str) -> None:
        click.echo(
            f"mnistcnn: serving the drawing page at {url} and the API docs at {url}docs "
            "(Ctrl-C stops)",
            err=True,
        )

    from mnistcnn.serve.server import AddressError

    try:
        run_server(source, settings, host=host, port=port, workers=workers, on_listening=listening)
    except AddressError as exc:  # one line with the flags to try, not uvicorn's Errno
        click.echo(f"error: {exc.cli_message()}", err=True)
        sys.exit(exit_codes.ERROR)
