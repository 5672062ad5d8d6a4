"""Export: time and file size per format, and ONNX Runtime vs PyTorch single-image latency.

For ``--checkpoint`` (a trained ``.pt``):

1. each format (``onnx``, ``exported-program``, ``torchscript``) is exported
   with :func:`mnistcnn.artifact.export.export_model` twice into a temporary
   folder; the second (warm: the exporters imported) is reported: graph
   capture + serialization seconds, the parity check's seconds and the file size;
2. single-image latency through the Predictor (what ``mnistcnn predict`` and
   ``serve`` run), ``.pt`` (PyTorch) against ``.onnx`` (ONNX Runtime), on the
   same picture, calls interleaved so a busy neighbour slows both alike:
   a 28x28 MNIST test image (no preparation: the dataset's format, one forward
   pass of 64 rows, the Predictor's fixed IDX batch), a photo-like PNG
   (the MNIST preparation, then a forward pass of 1), the model alone on
   one image (batch 1), and a whole ``POST /v1/predict`` of the MNIST image as
   JSON pixels through the serve app (FastAPI's in-process TestClient: no
   sockets). Median and 90th percentile, milliseconds.
3. ``python -m mnistcnn predict FILE picture.png --json``, the whole command
   (process start, imports, loading, one picture), median of ``--cli-runs``.

Threads: ``torch.set_num_threads(--threads)``, and ONNX Runtime's session uses
the same number (as ``mnistcnn serve --torch-threads``).

With ``--all-models``, first every registered model (seeded random weights:
the size and time do not depend on them) is exported in each format (warm,
parity on 72 random pictures in batches of 1, 7 and 64): seconds and file size.

    python benchmarks/bench_export.py --checkpoint runs/latest/best.pt --json export.json
    python benchmarks/bench_export.py --all-models
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import add_data_args, write_json
from PIL import Image, ImageDraw

from mnistcnn.artifact.export import FORMATS, export_model
from mnistcnn.data import load_arrays
from mnistcnn.models.fast_path import fast_path_enabled
from mnistcnn.predict import Predictor


def exports(ckpt: Path, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Per format: warm export seconds, parity seconds, file size in bytes."""
    out: dict[str, Any] = {}
    for fmt in FORMATS:
        for attempt in range(2):
            report = export_model(
                ckpt,
                fmt,
                folder / f"model{attempt}.{fmt}",
                parity_images=args.parity_images,
                data_root=args.data_root,
                mirror=args.mirror,
            )
        out[fmt] = {
            "export_seconds": round(report.export_seconds, 3),
            "parity_seconds": round(report.parity_seconds, 3),
            "size_bytes": report.size_bytes,
            "max_abs_logit_difference": report.parity.max_abs_logit_difference,
            "top1_agreement": report.parity.top1_agreement,
            "parity_images": report.parity.source,
        }
        print(
            f"{fmt:17s} export {report.export_seconds:6.2f} s  "
            f"parity {report.parity_seconds:6.2f} s  {report.size_bytes / 1e6:6.2f} MB  "
            f"max|dlogit| {report.parity.max_abs_logit_difference:.1e}"
        )
    return out


def registry_exports(folder: Path) -> dict[str, Any]:
    """Every registered model (seeded random weights: size and time do not depend on them):
    warm export seconds and file size per format, parity on 72 random pictures (1, 7, 64)."""
    from mnistcnn.artifact import TrainedModel, save
    from mnistcnn.models import create_model, list_models

    def checkpoint(name: str) -> Path:
        torch.manual_seed(0)
        model = TrainedModel(create_model(name), model_name=name, model_kwargs={})
        save(model, folder / f"{name}.pt")
        return folder / f"{name}.pt"

    warm = checkpoint("tutorial")
    for fmt in FORMATS:  # the exporters' first-use imports, not counted below
        export_model(warm, fmt, folder / f"warm.{fmt}", parity_images=1)
    out: dict[str, Any] = {}
    for name in list_models():
        ckpt = checkpoint(name)
        for fmt in FORMATS:
            r = export_model(ckpt, fmt, folder / f"{name}.{fmt}", parity_images=72)
            out[f"{name} {fmt}"] = {
                "export_seconds": round(r.export_seconds, 2),
                "size_bytes": r.size_bytes,
                "max_abs_logit_difference": r.parity.max_abs_logit_difference,
            }
            print(
                f"{name:12s} {fmt:17s} export {r.export_seconds:6.2f} s  "
                f"{r.size_bytes / 1e6:7.2f} MB  max|dlogit| "
                f"{r.parity.max_abs_logit_difference:.1e}",
                flush=True,
            )
    return out


def photo_png() -> bytes:
    """A dark 7 written on light, slightly uneven paper, 200x240 PNG (goes through preparation)."""
    rng = np.random.default_rng(0)
    paper = (225 + rng.normal(0, 6, (240, 200))).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(paper)
    draw = ImageDraw.Draw(img)
    draw.line([(50, 50), (150, 50), (90, 200)], fill=30, width=14)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def interleaved(fns: dict[str, Callable[[], object]], iters: int) -> dict[str, dict[str, float]]:
    """Median and p90 milliseconds per call of each function, called in turn ``iters`` times."""
    for fn in fns.values():
        for _ in range(10):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(iters):
        order = list(fns) if i % 2 == 0 else list(reversed(fns))
        for name in order:
            t0 = time.perf_counter_ns()
            fns[name]()
            times[name].append((time.perf_counter_ns() - t0) / 1e6)
    return {
        name: {
            "median_ms": round(statistics.median(ts), 4),
            "p90_ms": round(sorted(ts)[int(0.9 * len(ts))], 4),
        }
        for name, ts in times.items()
    }


def latencies(pt: Path, onnx: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Single-image latency, PyTorch (.pt) vs ONNX Runtime (.onnx), three ways."""
    predictors = {
        "pytorch": Predictor.from_checkpoint(pt),
        "onnxruntime": Predictor.from_checkpoint(onnx),
    }
    images, _ = load_arrays("mnist", train=False, root=args.data_root, mirror=args.mirror)
    digit = images[0].numpy()  # uint8 (28, 28): the dataset's format
    png = photo_png()
    x1 = torch.from_numpy(digit).float().div(255.0)[None, None]  # (1, 1, 28, 28)

    def forward(p: Predictor) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode(), fast_path_enabled(p.model):
                return p.model(x1)

        return run

    from fastapi.testclient import TestClient

    from mnistcnn.serve import ServeSettings, create_app

    stack = contextlib.ExitStack()  # the apps' lifespans (their micro-batchers) run inside
    clients = {
        k: stack.enter_context(TestClient(create_app(p, ServeSettings())))
        for k, p in predictors.items()
    }
    body = {"pixels": digit.tolist()}

    def request(client: TestClient) -> Callable[[], object]:
        return lambda: client.post("/v1/predict", json=body).raise_for_status()

    result = {}
    for what, fns in (
        ("mnist_28x28", {k: (lambda p=p: p.predict([digit])) for k, p in predictors.items()}),
        ("photo_png", {k: (lambda p=p: p.predict([png])) for k, p in predictors.items()}),
        ("model_batch1", {k: forward(p) for k, p in predictors.items()}),
        ("serve_request", {k: request(c) for k, c in clients.items()}),
    ):
        with stack if what == "serve_request" else contextlib.nullcontext():
            result[what] = interleaved(fns, args.iters)
        a, b = result[what]["pytorch"]["median_ms"], result[what]["onnxruntime"]["median_ms"]
        print(
            f"{what:13s} pytorch {a:7.3f} ms  onnxruntime {b:7.3f} ms  (median; ratio {a / b:.2f})"
        )
    return result


def cli_seconds(path: Path, picture: Path, runs: int) -> float:
    """Median wall seconds of ``python -m mnistcnn predict path picture --json``."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mnistcnn", "predict", str(path), str(picture), "--json"],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, help="a trained .pt (exports and latencies)")
    ap.add_argument(
        "--all-models",
        action="store_true",
        help="also export every registered model (random weights): time and size per format",
    )
    ap.add_argument("--parity-images", type=int, default=1000, help="default 1000")
    ap.add_argument("--iters", type=int, default=300, help="latency calls per variant")
    ap.add_argument("--cli-runs", type=int, default=5, help="runs of the predict command")
    ap.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")
    add_data_args(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"benchmark": "export", "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.all_models:
            (folder / "registry").mkdir()
            result["registry"] = registry_exports(folder / "registry")
        if args.checkpoint is None:
            write_json(args.json, result)
            return
        result["exports"] = exports(args.checkpoint, folder, args)
        onnx = folder / "model1.onnx"
        result["latency"] = latencies(args.checkpoint, onnx, args)
        picture = folder / "seven.png"
        picture.write_bytes(photo_png())
        result["predict_command_seconds"] = {
            "pytorch": cli_seconds(args.checkpoint, picture, args.cli_runs),
            "onnxruntime": cli_seconds(onnx, picture, args.cli_runs),
        }
        print(f"predict command (median wall s): {result['predict_command_seconds']}")
    write_json(args.json, result)


if __name__ == "__main__":
    main()
