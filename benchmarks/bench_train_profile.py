"""How close the ``fast`` recipe's training step comes to this CPU's arithmetic rate.

Measures, in one process:

* the large-GEMM rate: ``torch.mm`` of two ``--gemm-size`` square matrices (2048 by
  default) in float32 and in bfloat16, ``2 n^3`` FLOP each, best of ``--repeats``;
* the recipe's training step (``mnistcnn.config.RECIPES["fast"]``: its model, batch,
  optimizer, schedule, loss, precision and memory format; the whole training split as a
  uint8 tensor, batches by indexing as ``mnistcnn train`` draws them), split by phase
  with the process's CPU clock read between phases (``time.process_time``: the CPU runs
  each phase to completion before the next, and on a shared machine CPU seconds count
  the work while wall seconds also count the waits for a core): data (drawing and
  normalizing the batch), forward (model and loss), backward, optimizer (``zero_grad``,
  ``step`` and the schedule's step);
* the FLOP of one step (``torch.utils.flop_counter``: convolutions and matrix products,
  forward and backward) and so the rate reached, as a fraction of the GEMM rate in the
  recipe's precision;
* the fixed cost of each phase, Python and dispatch overhead: the same phases at a batch
  of ``--tiny-batch`` (2) images, where the arithmetic is negligible; the rest of each
  phase at the recipe's batch is work that grows with the batch (the kernels).

Then the floor: the epoch's FLOP at the GEMM rate. Example::

    OMP_NUM_THREADS=1 python benchmarks/bench_train_profile.py --threads 1 \\
        --mirror /work/shared/datasets --json benchmarks/results/train-profile.json
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import torch
from _common import add_data_args, write_json
from torch import nn

from mnistcnn import data as mdata
from mnistcnn.config import recipe_config
from mnistcnn.data.loaders import TensorSource
from mnistcnn.engine.allocator import keep_freed_memory
from mnistcnn.engine.optim import build_optimizer, build_scheduler
from mnistcnn.engine.sources import normalization_for
from mnistcnn.models import create_model

PHASES = ("data", "forward", "backward", "optimizer")


def gemm_rate(n: int, dtype: torch.dtype, repeats: int) -> float:
    """FLOP per CPU second and thread of ``a @ b`` for (n, n) ``dtype`` matrices, best of
    ``repeats`` (with one thread: FLOP/s while it runs)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        torch.mm(a, b)
        best = min(best, (time.process_time() - t0) / torch.get_num_threads())
    return 2 * n**3 / best


class Step:
    """The ``fast`` recipe's training step, phase by phase."""

    def __init__(self, args: argparse.Namespace, batch_size: int | None = None) -> None:
        self.config = config = recipe_config("fast")
        if batch_size is not None:
            self.config = config = config.replace(batch_size=batch_size)
        x, y = mdata.load_arrays("mnist", True, root=args.data_root, mirror=args.mirror)
        mean, std = normalization_for(config)
        self.source = TensorSource(x, y, config.batch_size, mean=mean, std=std, shuffle=True)
        self.model = create_model(config.model).to(memory_format=torch.channels_last)
        self.opt = build_optimizer(self.model, config)
        self.sched, _ = build_scheduler(self.opt, config, len(self.source))
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.bf16 = config.precision == "bf16"
        self.source.set_epoch(1)
        self.batches = iter(self.source)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            images, labels = next(self.batches)
        except StopIteration:
            self.batches = iter(self.source)
            images, labels = next(self.batches)
        return images.contiguous(memory_format=torch.channels_last), labels

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", torch.bfloat16, enabled=self.bf16):
            loss: torch.Tensor = self.loss_fn(self.model(images), labels)
            return loss

    def optimize(self) -> None:
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.sched is not None:
            self.sched.step()

    def timed(self, steps: int) -> dict[str, float]:
        """CPU seconds per step of each phase (all threads), averaged over ``steps`` steps."""
        sums = dict.fromkeys(PHASES, 0.0)
        self.model.train()
        for _ in range(steps):
            t0 = time.process_time()
            images, labels = self.batch()
            t1 = time.process_time()
            loss = self.forward(images, labels)
            t2 = time.process_time()
            loss.backward()
            t3 = time.process_time()
            self.optimize()
            t4 = time.process_time()
            for name, dt in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                sums[name] += dt
        return {k: v / steps for k, v in sums.items()}

    def flop(self) -> int:
        """FLOP of one step's forward and backward (convolutions, matrix products)."""
        from torch.utils.flop_counter import FlopCounterMode

        images, labels = self.batch()
        with FlopCounterMode(display=False) as counter:
            self.forward(images, labels).backward()
        self.opt.zero_grad(set_to_none=True)
        return int(counter.get_total_flops())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the measurements, print the tables, write ``--json``; returns the results."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (torch's)")
    p.add_argument("--steps", type=int, default=60, help="timed steps (60)")
    p.add_argument("--gemm-size", type=int, default=2048, help="GEMM matrix size (2048)")
    p.add_argument("--repeats", type=int, default=5, help="GEMM repeats, best kept (5)")
    p.add_argument("--tiny-batch", type=int, default=2, help="batch for the fixed costs (2)")
    add_data_args(p)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()  # as training does (mnistcnn.engine.allocator)
    step = Step(args)
    step.timed(10)  # warm-up: oneDNN primitives, allocator
    phases = step.timed(args.steps)
    tiny = Step(args, args.tiny_batch)
    tiny.timed(10)
    fixed = tiny.timed(args.steps)
    flop = step.flop()
    rates = {
        "fp32": gemm_rate(args.gemm_size, torch.float32, args.repeats),
        "bf16": gemm_rate(args.gemm_size, torch.bfloat16, args.repeats),
    }
    precision = step.config.precision
    per_step = sum(phases.values())
    steps_per_epoch = len(step.source)
    result: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "config": step.config.to_dict(),
        "gemm_flops_per_s": rates,
        "step_seconds": phases,
        "fixed_seconds": fixed,
        "step_flop": flop,
        "achieved_flops_per_s": flop / per_step,
        "fraction_of_gemm": flop / per_step / rates[precision],
        "steps_per_epoch": steps_per_epoch,
        "epoch_seconds": per_step * steps_per_epoch,
        "floor_epoch_seconds": flop * steps_per_epoch / rates[precision],
    }
    _print(result, precision)
    write_json(args.json, result)
    return result


def _print(r: dict[str, Any], precision: str) -> None:
    g = r["gemm_flops_per_s"]
    print(
        f"{r['threads']} thread(s), load average {r['load_average'][0]:.1f}; GEMM "
        f"{g['fp32'] / 1e9:.1f} GFLOP/s fp32, {g['bf16'] / 1e9:.1f} GFLOP/s bf16"
    )
    total = sum(r["step_seconds"].values())
    print(f"{'phase':<10} {'CPU ms/step':>11} {'share':>6} {'fixed (overhead)':>16} {'work':>7}")
    for name in [*PHASES, "step"]:
        if name == "step":
            s, f = total, sum(r["fixed_seconds"].values())
        else:
            s, f = r["step_seconds"][name], r["fixed_seconds"][name]
        print(
            f"{name:<10} {s * 1e3:>11.2f} {s / total:>6.1%} {f * 1e3:>16.2f} {(s - f) * 1e3:>7.2f}"
        )
    print(
        f"{r['step_flop'] / 1e9:.3f} GFLOP per step; {r['achieved_flops_per_s'] / 1e9:.1f} "
        f"GFLOP/s = {r['fraction_of_gemm']:.1%} of the {precision} GEMM rate; epoch "
        f"{r['epoch_seconds']:.2f} s ({r['steps_per_epoch']} steps), floor at the GEMM rate "
        f"{r['floor_epoch_seconds']:.2f} s"
    )


if __name__ == "__main__":
    main()
