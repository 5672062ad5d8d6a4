"""Inference speed of a model (the tutorial's by default): eager vs TorchScript, compile, ONNX
Runtime, bf16.

For each variant: images/s at batch ``--batch`` (1000) and single-image
latency (median and 99th percentile over ``--latency-iters`` calls, in
microseconds), plus the largest logit difference from eager fp32 and whether
the predicted classes agree (on ``--batch`` random 0..1 images). ``--model NAME``
times another registered network (``s2dcnn``, the ``fast`` recipe's; ``bncnn``, the
``best`` and ``robust`` recipes'), untrained, in eval mode. The baseline,
``eager (layers)``, runs the model layer by layer (its default forward,
fast path off), as the seed's code does; ``eager (mnistcnn)`` has the fast path
on (``set_fast_path``, as training uses it). Every variant is measured in this
one process, so the speed-ups hold on a noisy machine.

Variants that cannot run here (ONNX Runtime not installed: ``pip install
mnistcnn[bench]``; torch.compile without a C++ compiler) are reported as
skipped with the reason.

Example::

    python benchmarks/bench_inference.py --json out.json
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import write_json
from torch import nn

from mnistcnn.engine.utils import versions
from mnistcnn.models import create_model, set_fast_path

Predict = Callable[[torch.Tensor], torch.Tensor]


def throughput(fn: Predict, x: torch.Tensor, seconds: float) -> float:
    """Images per second of ``fn`` on batch ``x``, run for about ``seconds`` after a warm-up."""
    fn(x)
    n, t0 = 0, time.perf_counter()
    while True:
        fn(x)
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and n >= 3:
            return n * len(x) / elapsed


def latency(fn: Predict, x1: torch.Tensor, iters: int) -> tuple[float, float]:
    """(median, p99) microseconds per call of ``fn`` on one image ``x1`` (1, 1, 28, 28)."""
    for _ in range(20):
        fn(x1)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter_ns()
        fn(x1)
        times.append((time.perf_counter_ns() - t0) / 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def variants(model: nn.Module, example: torch.Tensor, tmp: Path) -> dict[str, Predict | str]:
    """Name -> predict function (float32 (N, 1, 28, 28) -> logits (N, 10)), or why skipped."""
    out: dict[str, Predict | str] = {}
    plain = model  # the default forward: layer by layer
    fast = set_fast_path(copy.deepcopy(model), True)

    def eager(m: nn.Module) -> Predict:
        def fn(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return m(x)

        return fn

    out["eager (layers)"] = eager(plain)
    out["eager (mnistcnn)"] = eager(fast)
    with torch.no_grad():
        traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, example)))
    out["torchscript frozen"] = eager(traced)
    out["torch.compile"] = _compiled(model, example)
    out["bf16 weights, channels_last"] = _bf16(model)
    out["torch.compile bf16"] = _compiled(model, example, bf16=True)
    out["onnxruntime"] = _onnxruntime(plain, example, tmp, torch.get_num_threads())
    out["onnxruntime, 1 thread"] = _onnxruntime(plain, example, tmp, 1)
    out["onnxruntime, 1 thread, bound"] = _onnxruntime(plain, example, tmp, 1, bound=True)
    return out


def _compiled(model: nn.Module, example: torch.Tensor, bf16: bool = False) -> Predict | str:
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    dtype = torch.bfloat16 if bf16 else torch.float32
    m = copy.deepcopy(model).to(dtype=dtype, memory_format=fmt) if bf16 else model
    try:
        compiled = torch.compile(m, dynamic=False)
        with torch.inference_mode():
            compiled(example.to(dtype).contiguous(memory_format=fmt))
            compiled(example[:1].to(dtype).contiguous(memory_format=fmt))
    except Exception as exc:  # noqa: BLE001  (a benchmark reports, never fails)
        return f"skipped: torch.compile failed ({type(exc).__name__}: {exc})"[:200]

    def fn(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return compiled(x.to(dtype).contiguous(memory_format=fmt)).float()

    return fn


def _bf16(model: nn.Module) -> Predict:
    m = copy.deepcopy(model).to(dtype=torch.bfloat16, memory_format=torch.channels_last)

    def fn(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            xb = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
            return m(xb).float()

    return fn


def _onnxruntime(
    plain: nn.Module, example: torch.Tensor, tmp: Path, threads: int, bound: bool = False
) -> Predict | str:
    """An ONNX Runtime session on the exported model; ``bound``: single images go through
    preallocated input/output buffers with I/O binding (what a server would do)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "skipped: onnxruntime is not installed (pip install 'mnistcnn[bench]')"
    path = tmp / "model.onnx"
    try:
        torch.onnx.export(
            plain,
            (example,),
            str(path),
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
            dynamo=False,
        )
    except Exception as exc:  # noqa: BLE001
        return f"skipped: ONNX export failed ({type(exc).__name__}: {exc})"[:200]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"x": x.numpy()})[0])

    if not bound:
        return fn
    import numpy as np

    x1, y1 = np.zeros((1, 1, 28, 28), np.float32), np.zeros((1, 10), np.float32)
    binding = session.io_binding()
    binding.bind_cpu_input("x", x1)
    binding.bind_output("logits", "cpu", 0, np.float32, [1, 10], y1.ctypes.data)

    def fn_bound(x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != 1:
            return fn(x)
        np.copyto(x1, x.numpy())
        session.run_with_iobinding(binding)
        return torch.from_numpy(y1.copy())

    return fn_bound


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Time every variant (or row) in this process; returns the rows with ratios."""
    torch.manual_seed(0)
    model = create_model(args.model).eval()  # fast path off: layer by layer
    x = torch.rand(args.batch, 1, 28, 28)
    with torch.inference_mode():
        reference = model(x)
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in variants(model, x, Path(tmp)).items():
            if isinstance(fn, str):
                rows[name] = {"skipped": fn}
                continue
            logits = fn(x).float()
            med, p99 = latency(fn, x[:1], args.latency_iters)
            rows[name] = {
                "images_per_s": throughput(fn, x, args.seconds),
                "latency_median_us": med,
                "latency_p99_us": p99,
                "max_abs_logit_diff": float((logits - reference).abs().max()),
                "same_predictions": float((logits.argmax(1) == reference.argmax(1)).float().mean()),
            }
    base = rows["eager (layers)"]
    for r in rows.values():
        if "images_per_s" in r:
            r["throughput_x"] = r["images_per_s"] / base["images_per_s"]
            r["latency_x"] = base["latency_median_us"] / r["latency_median_us"]
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options (see ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tutorial", help="registered network (tutorial)")
    p.add_argument("--batch", type=int, default=1000, help="batch size for images/s (1000)")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds per throughput run (2)")
    p.add_argument("--latency-iters", type=int, default=2000, help="single-image calls (2000)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (torch's)")
    p.add_argument("--json", type=Path, help="also write the results here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write ``--json``; returns the results."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    rows = measure(args)
    result = {
        "rows": rows,
        "model": args.model,
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "loadavg_1min": [load0, os.getloadavg()[0]],
        "versions": versions(),
    }
    _print(result)
    write_json(args.json, result)
    return result


def _print(result: dict[str, Any]) -> None:
    load = result["loadavg_1min"]
    print(
        f"{result['model']} model inference ({result['threads']} threads; batch {result['batch']}; "
        f"load {load[0]:.1f} -> {load[1]:.1f})"
    )
    print(
        f"{'variant':<28} {'img/s':>9} {'x':>5} {'med us':>8} {'p99 us':>8} {'x':>5} "
        f"{'max diff':>9} {'agree':>6}"
    )
    best_tp, best_lat = 0.0, float("inf")
    for name, r in result["rows"].items():
        if "skipped" in r:
            print(f"{name:<28} {r['skipped']}")
            continue
        best_tp, best_lat = max(best_tp, r["images_per_s"]), min(best_lat, r["latency_median_us"])
        print(
            f"{name:<28} {r['images_per_s']:>9.0f} {r['throughput_x']:>5.1f} "
            f"{r['latency_median_us']:>8.1f} {r['latency_p99_us']:>8.1f} {r['latency_x']:>5.1f} "
            f"{r['max_abs_logit_diff']:>9.2e} {r['same_predictions']:>6.1%}"
        )
    print(f"best: {best_tp:,.0f} images/s at batch {result['batch']}; {best_lat:.1f} us median "
          "for one image")  # fmt: skip


if __name__ == "__main__":
    main()
