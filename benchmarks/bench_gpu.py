"""Time to 99.0% MNIST test accuracy on a GPU: data on the device, bf16, channels_last, CUDA graphs.

The ``fast`` recipe's network and schedule (flags may override them), trained
from a whole split held on the GPU as uint8 (batches by indexing a seeded
permutation, converted and normalized on the device), bf16 autocast,
channels_last, fused Adam, and ``torch.compile(mode="reduce-overhead")``
(CUDA graphs) for the forward and backward pass. The test split is evaluated
every 1/``--evals-per-epoch`` epoch, in batches of ``--eval-batch``, and that
time counts.

Protocol: one warm-up run (compilation, graph capture, cuDNN autotuning) of
``--warmup-steps`` steps, then the timed run from freshly initialised weights,
measured with CUDA events from the first step to the first evaluation at the
target. Uploading the data is timed separately. Target on an H200: <= 0.3 s.

With ``--device cpu`` the same loop runs without compilation or CUDA events
(a smoke check that the script works; ``--max-steps`` keeps it short).

Example::

    python benchmarks/bench_gpu.py --mirror /path/to/datasets --json gpu.json
    python benchmarks/bench_gpu.py --device cpu --max-steps 20   # smoke check
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from _common import add_data_args, write_json
from torch import nn

from mnistcnn import data as mdata
from mnistcnn.config import TrainConfig, recipe_config
from mnistcnn.data.loaders import epoch_permutation
from mnistcnn.engine.optim import build_optimizer, build_scheduler
from mnistcnn.engine.utils import seed_everything, versions
from mnistcnn.models import create_model


class Clock:
    """Elapsed seconds: CUDA events on a GPU (no host sync per step), else perf_counter."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.start = torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()

    def seconds(self) -> float:
        if not self.cuda:
            return time.perf_counter() - self.t0
        end = torch.cuda.Event(enable_timing=True)
        end.record()
        end.synchronize()
        return self.start.elapsed_time(end) / 1000.0


def _batches(x: torch.Tensor, y: torch.Tensor, bs: int, seed: int, epoch: int) -> Any:
    """Full batches of a seeded permutation (static shapes for CUDA graphs; the rest is dropped)."""
    order = epoch_permutation(len(y), seed, epoch).to(x.device)
    for start in range(0, len(y) - bs + 1, bs):
        idx = order[start : start + bs]
        yield x[idx], y[idx]


@dataclass
class Setup:
    """What both runs share, built once so the timed run reuses the compiled step.

    ``initial``: the freshly initialised weights and buffers, restored before each run.
    """

    model: nn.Module
    initial: dict[str, torch.Tensor]
    step_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    evaluate: Callable[[], float]


def build(config: TrainConfig, args: argparse.Namespace, data: dict[str, Any]) -> Setup:
    """The model (channels_last), the (compiled) loss step and the evaluation."""
    device = data["x_tr"].device
    seed_everything(config.seed)
    model = create_model(config.model, num_classes=10).to(device)
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    mean, std, bf16 = data["mean"], data["std"], config.precision == "bf16"

    def prep(xb: torch.Tensor) -> torch.Tensor:  # uint8 (B, 1, 28, 28) -> normalized float
        return ((xb.float() / 255.0 - mean) / std).contiguous(memory_format=torch.channels_last)

    def forward_loss(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return loss_fn(model(prep(xb)), yb)

    step_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = forward_loss
    if args.compile:
        mode = "reduce-overhead" if device.type == "cuda" else None  # CUDA graphs
        step_fn = torch.compile(forward_loss, mode=mode)

    def evaluate() -> float:
        model.eval()
        correct = torch.zeros((), dtype=torch.int64, device=device)
        x_te, y_te, eb = data["x_te"], data["y_te"], args.eval_batch
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            for s in range(0, len(y_te), eb):
                correct += (model(prep(x_te[s : s + eb])).argmax(1) == y_te[s : s + eb]).sum()
        model.train()
        return int(correct) / len(y_te)

    return Setup(model, initial, step_fn, evaluate)


def run(
    setup: Setup,
    config: TrainConfig,
    args: argparse.Namespace,
    data: dict[str, Any],
    steps_limit: int | None,
) -> dict[str, Any]:
    """Train from the initial weights until the target (or ``steps_limit``); the timeline."""
    setup.model.load_state_dict(setup.initial)  # in place: the same tensors, fresh values
    opt = build_optimizer(setup.model, config)
    steps_per_epoch = len(data["y_tr"]) // config.batch_size
    sched, _ = build_scheduler(opt, config, steps_per_epoch)
    marks = {
        round(k * steps_per_epoch / args.evals_per_epoch)
        for k in range(1, args.evals_per_epoch + 1)
    }
    clock, step, evals = Clock(data["x_tr"].device), 0, []
    setup.model.train()
    for epoch in range(1, config.epochs + 1):
        for xb, yb in _batches(data["x_tr"], data["y_tr"], config.batch_size, config.seed, epoch):
            loss = setup.step_fn(xb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
            if steps_limit is not None and step >= steps_limit:
                acc = setup.evaluate()
                return _timeline(step, clock.seconds(), evals, False, acc)
            if (step - (epoch - 1) * steps_per_epoch) in marks:
                acc = setup.evaluate()
                evals.append({"step": step, "acc": acc, "seconds": clock.seconds()})
                if acc >= args.target:
                    return _timeline(step, evals[-1]["seconds"], evals, True, acc)
    last = evals[-1] if evals else {"acc": math.nan, "seconds": clock.seconds()}
    return _timeline(step, last["seconds"], evals, False, last["acc"])


def _timeline(
    steps: int, seconds: float, evals: list[dict[str, Any]], reached: bool, accuracy: float
) -> dict[str, Any]:
    return {
        "steps": steps,
        "seconds": seconds,
        "evals": evals,
        "reached": reached,
        "accuracy": accuracy,
    }


def load(config: TrainConfig, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Both splits as device tensors (uint8 images (N, 1, 28, 28), int64 labels); upload timed."""
    spec = mdata.get_spec(config.dataset)
    x_tr, y_tr = mdata.load_arrays(config.dataset, True, root=args.data_root, mirror=args.mirror)
    x_te, y_te = mdata.load_arrays(config.dataset, False, root=args.data_root, mirror=args.mirror)
    t0 = time.perf_counter()
    data: dict[str, Any] = {
        "x_tr": x_tr.unsqueeze(1).to(device),
        "y_tr": y_tr.to(device),
        "x_te": x_te.unsqueeze(1).to(device),
        "y_te": y_te.to(device),
    }
    if device.type == "cuda":
        torch.cuda.synchronize()
    data["upload_seconds"] = time.perf_counter() - t0
    mean, std = (spec.mean, spec.std) if config.normalize else (0.0, 1.0)
    data["mean"] = torch.tensor(mean, device=device)
    data["std"] = torch.tensor(std, device=device)
    return data


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options (see ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke check)")
    p.add_argument("--recipe", default="fast", help="recipe to start from (fast)")
    p.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    p.add_argument("--lr", type=float, help="override the recipe's (peak) learning rate")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--target", type=float, default=0.99, help="test accuracy to reach (0.99)")
    p.add_argument("--evals-per-epoch", type=int, default=4, help="evaluations per epoch (4)")
    p.add_argument("--eval-batch", type=int, default=10000, help="evaluation batch (10000)")
    p.add_argument("--warmup-steps", type=int, default=30, help="steps of the warm-up run (30)")
    p.add_argument("--max-steps", type=int, help="stop the timed run after N steps (smoke)")
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the step (default: on for cuda, off for cpu)",
    )
    add_data_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write ``--json``; returns the results."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: CUDA is not available here; use --device cpu for a smoke run")
    if args.compile is None:
        args.compile = device.type == "cuda"
    config = recipe_config(
        args.recipe, batch_size=args.batch_size, lr=args.lr, epochs=args.epochs, device=args.device
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data = load(config, args, device)
    setup = build(config, args, data)
    run(setup, config, args, data, steps_limit=args.warmup_steps)  # compile, capture, autotune
    result = run(setup, config, args, data, steps_limit=args.max_steps)
    out = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "config": config.to_dict(),
        "compile": args.compile,
        "target": args.target,
        "upload_seconds": data["upload_seconds"],
        "result": result,
        "versions": versions(),
    }
    r = result
    print(
        f"{out['device']}: {'reached' if r['reached'] else 'did not reach'} "
        f"{args.target:.2%} in {r['seconds']:.3f} s ({r['steps']} steps, "
        f"last accuracy {r['accuracy']:.2%}); data upload {data['upload_seconds']:.3f} s; "
        f"target <= 0.3 s: {'met' if r['reached'] and r['seconds'] <= 0.3 else 'missed'}"
    )
    write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
