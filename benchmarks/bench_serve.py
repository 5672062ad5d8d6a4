"""Load test of ``mnistcnn serve``: N concurrent clients on loopback for a bounded time.

Starts ``python -m mnistcnn serve`` on 127.0.0.1 (a free port) in a subprocess,
then runs ``--clients`` clients, each on its own keep-alive connection, sending
single 28x28 images to ``POST /v1/predict`` one after another (after
``--think-ms`` of pause, 0 = back to back) for ``--duration`` seconds after a
``--warmup``. Reports requests/s, latency percentiles, errors (connection
failures, timeouts, non-2xx), 5xx count and the server's peak RSS (VmHWM of the
server process and its workers, summed), prints a summary and writes JSON.

Targets (issue 4): zero errors, zero 5xx, p99 < 100 ms for single 28x28 requests.
With back-to-back clients the server is saturated and, by Little's law,
latency = clients / throughput; ``--think-ms`` models people who pause.

Without ``--checkpoint`` a randomly initialised tutorial model is served: the
cost of a request (preprocessing + one forward pass) does not depend on the
weights. Only loopback is used; every loop is bounded by the duration.

    python benchmarks/bench_serve.py --clients 50 --duration 20 --out bench_serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HOST = "127.0.0.1"


def untrained_checkpoint(folder: Path) -> Path:
    """A tutorial model with random weights, saved as a checkpoint in ``folder``."""
    import torch

    from mnistcnn.artifact import save_checkpoint
    from mnistcnn.models import create_model

    torch.manual_seed(0)
    model = create_model("tutorial")
    return save_checkpoint(
        folder / "untrained.pt",
        {
            "model": {"name": "tutorial", "kwargs": {"num_classes": 10, "in_chans": 1}},
            "state_dict": model.state_dict(),
            "classes": [str(i) for i in range(10)],
            "dataset": "mnist",
            "input_size": [1, 28, 28],
            "normalization": {"mean": [0.0], "std": [1.0]},
        },
    )


def synthetic_digits(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` uint8 (28, 28) images of random 2-4 point strokes, light on black (MNIST-like)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = Image.new("L", (28, 28), 0)
        pts = [tuple(int(v) for v in rng.integers(6, 22, 2)) for _ in range(rng.integers(2, 5))]
        ImageDraw.Draw(img).line(pts, fill=255, width=2)
        out.append(np.asarray(img))
    return out


def build_requests(form: str, images: list[np.ndarray]) -> list[bytes]:
    """Complete HTTP/1.1 keep-alive requests, one per image."""
    reqs = []
    for img in images:
        if form == "pixels":
            body, ctype = json.dumps({"pixels": img.tolist()}).encode(), "application/json"
        else:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, "PNG")
            body, ctype = buf.getvalue(), "image/png"
        head = (
            f"POST /v1/predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
        )
        reqs.append(head.encode() + body)
    return reqs


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP response; return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    await reader.readexactly(length)
    return status


async def client(
    i: int, reqs: list[bytes], t_start: float, t_end: float, think: float, stats: dict
) -> None:
    """One client: a keep-alive connection, requests until ``t_end``.

    Back to back when ``think`` is 0; otherwise each pause is drawn from an
    exponential distribution with mean ``think`` seconds (seeded per client), so
    the clients do not stay in lock-step waves after their common start.
    """
    k = i
    rng = random.Random(i)
    reader = writer = None
    while time.perf_counter() < t_end:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(HOST, stats["port"])
            t0 = time.perf_counter()
            writer.write(reqs[k % len(reqs)])
            k += 1
            status = await asyncio.wait_for(read_response(reader), timeout=30)
            t1 = time.perf_counter()
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
            if time.perf_counter() >= t_start:
                stats["errors"] += 1
                stats["error_kinds"][type(exc).__name__] = (
                    stats["error_kinds"].get(type(exc).__name__, 0) + 1
                )
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.05)
            continue
        if t0 >= t_start and t1 <= t_end:
            stats["latencies"].append(t1 - t0)
            if status >= 500:
                stats["status_5xx"] += 1
            if not 200 <= status < 300:
                stats["errors"] += 1
                stats["error_kinds"][f"HTTP {status}"] = (
                    stats["error_kinds"].get(f"HTTP {status}", 0) + 1
                )
        if think:
            await asyncio.sleep(rng.expovariate(1 / think))
    if writer is not None:
        writer.close()


async def load(port: int, reqs: list[bytes], args: argparse.Namespace) -> dict:
    stats: dict = {"port": port, "latencies": [], "errors": 0, "status_5xx": 0, "error_kinds": {}}
    t_start = time.perf_counter() + args.warmup
    t_end = t_start + args.duration
    think = args.think_ms / 1000
    await asyncio.gather(
        *(client(i, reqs, t_start, t_end, think, stats) for i in range(args.clients))
    )
    return stats


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with status {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server not ready after {timeout:.0f} s")


def peak_rss_mb(pid: int) -> float:
    """Sum of VmHWM (peak resident memory) of ``pid`` and its child processes, MiB."""
    pids = [pid]
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                pids.append(int(d.name))
    total_kb = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
    return total_kb / 1024


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="checkpoint to serve (default: an untrained tutorial)")
    ap.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    ap.add_argument("--duration", type=float, default=20, help="measured seconds (default 20)")
    ap.add_argument("--warmup", type=float, default=2, help="unmeasured seconds first (default 2)")
    ap.add_argument(
        "--think-ms",
        type=float,
        default=0,
        help="mean pause of each client between requests, ms, exponentially distributed "
        "(default 0: back to back)",
    )
    ap.add_argument(
        "--form",
        choices=["pixels", "png"],
        default="pixels",
        help="JSON pixels or a raw PNG body (default pixels)",
    )
    ap.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    ap.add_argument("--out", default="bench_serve.json", help="JSON results file")
    args = ap.parse_args()
    if args.clients < 1 or args.duration <= 0 or args.duration > 600:
        ap.error("need --clients >= 1 and 0 < --duration <= 600")

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint or str(untrained_checkpoint(Path(tmp)))
        port = free_port()
        log_path = Path(tmp) / "server.log"
        cmd = [
            sys.executable,
            "-m",
            "mnistcnn",
            "serve",
            ckpt,
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_ready(port, proc)
                reqs = build_requests(args.form, synthetic_digits(64))
                stats = asyncio.run(load(port, reqs, args))
                rss = peak_rss_mb(proc.pid)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        log_lines = log_path.read_text(errors="replace").count(" /v1/predict ")

    lat_ms = [1000 * v for v in stats["latencies"]]
    n = len(lat_ms)
    results = {
        "requests": n,
        "requests_per_s": n / args.duration,
        "p50_ms": percentile(lat_ms, 50),
        "p90_ms": percentile(lat_ms, 90),
        "p99_ms": percentile(lat_ms, 99),
        "max_ms": max(lat_ms, default=float("nan")),
        "mean_ms": statistics.fmean(lat_ms) if lat_ms else float("nan"),
        "errors": stats["errors"],
        "error_kinds": stats["error_kinds"],
        "status_5xx": stats["status_5xx"],
        "server_peak_rss_mb": rss,
        "access_log_lines": log_lines,
    }
    report = {
        "benchmark": "serve",
        "config": {**vars(args), "checkpoint": args.checkpoint or "untrained tutorial"},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # other jobs on the machine skew every figure: see how busy it was
            "loadavg_1m_before": load_before,
            "loadavg_1m_after": os.getloadavg()[0],
        },
        "results": results,
        "targets": {
            "zero_errors": stats["errors"] == 0,
            "zero_5xx": stats["status_5xx"] == 0,
            "p99_under_100ms": results["p99_ms"] < 100,
        },
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{args.clients} clients x {args.duration:g} s ({args.form}, think {args.think_ms:g} ms, "
        f"{args.workers} worker(s)) on {os.cpu_count()} CPUs, load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(f"  {n} requests, {results['requests_per_s']:.1f} req/s")
    print(
        f"  latency p50 {results['p50_ms']:.1f} ms, p90 {results['p90_ms']:.1f} ms, "
        f"p99 {results['p99_ms']:.1f} ms, max {results['max_ms']:.1f} ms"
    )
    kinds = results["error_kinds"] or ""
    print(f"  errors {results['errors']} {kinds}, 5xx {results['status_5xx']}")
    print(f"  server peak RSS {rss:.0f} MiB")
    print(f"  targets: {report['targets']}  -> {args.out}")


if __name__ == "__main__":
    main()
