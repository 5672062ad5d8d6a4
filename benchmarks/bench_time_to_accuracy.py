"""Wall time to the first test evaluation at >= 99.0%: the ``fast`` recipe vs pytorch/examples.

Both runs start the clock before loading the data and stop it at the first
evaluation (on the whole 10,000-image test split) whose accuracy reaches the
target; evaluations happen every 1/``--evals-per-epoch`` epoch and their time
is counted.

* ``fast``: ``mnistcnn.config.RECIPES["fast"]`` (flags may override it) on the
  on-device tensor path, the same math as ``mnistcnn train --recipe fast``
  (optimizer, schedule, loss, precision, memory format).
* baseline: a faithful re-implementation of pytorch/examples ``mnist/main.py``
  (its ``Net`` with dropout; ``ToTensor`` + ``Normalize(0.1307, 0.3081)``;
  torchvision dataset + DataLoader, batch 64, test batch 1000; Adadelta lr
  1.0; StepLR step 1, gamma 0.7). One deliberate difference: the training
  loader shuffles on the CPU too (the original shuffles only with CUDA).

Prints a table and writes JSON. Example::

    python benchmarks/bench_time_to_accuracy.py --mirror /work/shared/datasets \
        --json benchmarks/results/time_to_accuracy.json

``--whole-process``: what a user waits for instead, start to exit of two commands, run
interleaved for each of ``--seeds`` (the order alternates from seed to seed):

* ours: ``python -m mnistcnn train --recipe fast --seed S --no-progress --out TMP``
  (the run folder, checkpoints and metrics written; its accuracy read from the result
  line, its inner loop (train + evaluation seconds) from ``metrics.csv``);
* peer: ``benchmarks/peer_train_mnist_fast.py`` (tuomaso/train_mnist_fast's recipe
  as a plain script; its docstring has the recipe), which times its own inner loop;
* ``python -c "import torch"``, the floor of any torch command, as a yardstick.

It prints each run, the medians and the ratios peer / ours (whole process and inner
loop), and writes them to ``--json``::

    python benchmarks/bench_time_to_accuracy.py --whole-process --seeds 0-7 \
        --mirror /work/shared/datasets --json benchmarks/results/tta-whole.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import add_data_args, write_json
from torch import nn
from torch.nn import functional as F

from mnistcnn import data as mdata
from mnistcnn.config import TrainConfig, recipe_config
from mnistcnn.data.augment import build_augment
from mnistcnn.data.loaders import TensorSource
from mnistcnn.engine.optim import build_optimizer, build_scheduler
from mnistcnn.engine.sources import normalization_for
from mnistcnn.engine.utils import seed_everything, versions
from mnistcnn.models import create_model

Evaluate = Callable[[], float]


class ExamplesNet(nn.Module):
    """pytorch/examples ``mnist/main.py`` ``Net``, layer for layer (1,199,882 params).

    (1, 28, 28) -> conv 3x3 32 -> (32, 26, 26) -> conv 3x3 64 -> (64, 24, 24)
    -> maxpool 2 -> (64, 12, 12) -> dropout 0.25 -> flatten (9216) -> fc 128
    -> dropout 0.5 -> fc 10 -> log_softmax.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)  # 64 * 12 * 12
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))  # (N, 32, 26, 26)
        x = F.relu(self.conv2(x))  # (N, 64, 24, 24)
        x = self.dropout1(F.max_pool2d(x, 2))  # (N, 64, 12, 12)
        x = F.relu(self.fc1(torch.flatten(x, 1)))  # (N, 128)
        return F.log_softmax(self.fc2(self.dropout2(x)), dim=1)  # (N, 10)


def _checkpoints(steps_per_epoch: int, per_epoch: int, epochs: int) -> set[int]:
    """Global step numbers after which to evaluate (every 1/per_epoch epoch, and epoch ends)."""
    marks = set()
    for e in range(epochs):
        for k in range(1, per_epoch + 1):
            marks.add(e * steps_per_epoch + round(k * steps_per_epoch / per_epoch))
    return marks


def _race(
    step_batches: Callable[[], Any],
    train_step: Callable[[Any], None],
    evaluate: Evaluate,
    marks: set[int],
    target: float,
    t0: float,
    epochs: int,
    steps_per_epoch: int,
    on_epoch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train until an evaluation reaches ``target``; returns the timeline."""
    evals: list[dict[str, Any]] = []
    step, eval_seconds = 0, 0.0
    for epoch in range(1, epochs + 1):
        for batch in step_batches(epoch):
            train_step(batch)
            step += 1
            if step in marks:
                t_eval = time.perf_counter()
                acc = evaluate()
                eval_seconds += time.perf_counter() - t_eval
                now = time.perf_counter() - t0
                evals.append(
                    {"step": step, "epoch": step / steps_per_epoch, "acc": acc, "seconds": now}
                )
                if acc >= target:
                    return {
                        "reached": True,
                        "seconds": now,
                        "accuracy": acc,
                        "steps": step,
                        "eval_seconds": eval_seconds,
                        "evals": evals,
                    }
        if on_epoch is not None:
            on_epoch(epoch)
    last = evals[-1] if evals else {"acc": float("nan"), "seconds": time.perf_counter() - t0}
    return {
        "reached": False,
        "seconds": last["seconds"],
        "accuracy": last["acc"],
        "steps": step,
        "eval_seconds": eval_seconds,
        "evals": evals,
    }


def run_fast(config: TrainConfig, args: argparse.Namespace) -> dict[str, Any]:
    """Time ``config`` (the fast recipe) to the target on the tensor path."""
    t0 = time.perf_counter()
    device = torch.device(args.device)
    mean, std = normalization_for(config)
    x_tr, y_tr = mdata.load_arrays(config.dataset, True, root=args.data_root, mirror=args.mirror)
    x_te, y_te = mdata.load_arrays(config.dataset, False, root=args.data_root, mirror=args.mirror)
    aug = build_augment(
        config.augment,
        degrees=config.aug_degrees,
        translate=config.aug_translate,
        scale=config.aug_scale,
    )
    train = TensorSource(
        x_tr,
        y_tr,
        config.batch_size,
        mean=mean,
        std=std,
        shuffle=True,
        seed=config.seed,
        device=device,
        augment=aug,
    )
    test = TensorSource(x_te, y_te, config.eval_batch_size, mean=mean, std=std, device=device)
    seed_everything(config.seed)
    model = create_model(config.model, num_classes=10).to(device)
    fmt = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(memory_format=fmt)  # type: ignore[call-overload]
    opt = build_optimizer(model, config)
    sched, per_step = build_scheduler(opt, config, len(train))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    bf16 = config.precision == "bf16"

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        images, labels = batch
        model.train()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(images.contiguous(memory_format=fmt)), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None and per_step:
            sched.step()

    def evaluate() -> float:
        model.eval()
        correct = 0
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            for images, labels in test:
                logits = model(images.contiguous(memory_format=fmt))
                correct += int((logits.argmax(1) == labels).sum())
        return correct / test.num_samples

    def batches(epoch: int) -> Any:
        train.set_epoch(epoch)
        return iter(train)

    def end_epoch(epoch: int) -> None:
        if sched is not None and not per_step:
            sched.step()

    marks = _checkpoints(len(train), args.evals_per_epoch, config.epochs)
    return _race(
        batches, step, evaluate, marks, args.target, t0, config.epochs, len(train), end_epoch
    )


def run_examples(args: argparse.Namespace) -> dict[str, Any]:
    """Time the pytorch/examples MNIST configuration to the target (see the module docstring)."""
    from torch.utils.data import DataLoader
    from torchvision import transforms

    t0 = time.perf_counter()
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    kw = {"root": args.data_root, "mirror": args.mirror, "transform": tf}
    train_ds = mdata.load_dataset("mnist", train=True, **kw)
    test_ds = mdata.load_dataset("mnist", train=False, **kw)
    gen = torch.Generator().manual_seed(args.seed)
    train = DataLoader(train_ds, batch_size=64, shuffle=True, generator=gen)
    test = DataLoader(test_ds, batch_size=1000)
    torch.manual_seed(args.seed)
    model = ExamplesNet()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        data, target = batch
        model.train()
        opt.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        opt.step()

    def evaluate() -> float:
        model.eval()
        correct = 0
        with torch.no_grad():
            for data, target in test:
                correct += int(model(data).argmax(1).eq(target).sum())
        return correct / len(test_ds)

    marks = _checkpoints(len(train), args.evals_per_epoch, args.baseline_epochs)
    return _race(
        lambda e: iter(train),
        step,
        evaluate,
        marks,
        args.target,
        t0,
        args.baseline_epochs,
        len(train),
        lambda e: sched.step(),
    )


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str, float]:
    """(wall seconds from start to exit, stdout, CPU seconds: user + system) of ``cmd``.

    On a shared machine the CPU seconds are the steadier figure: the wall seconds also
    count the time the process waited for a core.

    Raises:
        RuntimeError: the command failed.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return seconds, proc.stdout, cpu


def _ours(seed: int, root: str, scratch: Path, env: dict[str, str]) -> dict[str, Any]:
    """One ``mnistcnn train --recipe fast`` process: wall, accuracy, inner loop."""
    out = scratch / f"fast-{seed}"
    cmd = [sys.executable, "-m", "mnistcnn", "train", "--recipe", "fast", "--seed", str(seed)]
    cmd += ["--no-progress", "--data-root", root, "--out", str(out)]
    seconds, stdout, cpu = _timed(cmd, env)
    found = re.search(r"final test accuracy ([\d.]+)%", stdout)
    if found is None:
        raise RuntimeError(f"no result line in:\n{stdout}")
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    inner = sum(float(r["train_seconds"]) + float(r["eval_seconds"]) for r in rows)
    shutil.rmtree(out)
    accuracy = float(found.group(1)) / 100
    return {"seconds": seconds, "cpu_s": cpu, "accuracy": accuracy, "inner_s": inner}


def _peer(seed: int, root: str, env: dict[str, str]) -> dict[str, Any]:
    """One run of the peer script: wall, accuracy, inner loop (its own timing)."""
    script = Path(__file__).with_name("peer_train_mnist_fast.py")
    cmd = [sys.executable, str(script), "--data", root, "--seed", str(seed)]
    seconds, stdout, cpu = _timed(cmd, env)
    return {"seconds": seconds, "cpu_s": cpu, **json.loads(stdout.strip().splitlines()[-1])}


def _seeds(text: str) -> list[int]:
    """``"0-7"`` or ``"0,3,5"`` -> the seeds."""
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(s) for s in text.split(",")]


def whole_process(args: argparse.Namespace) -> dict[str, Any]:
    """Race the two commands start to exit, interleaved per seed; print and return the runs."""
    root = str(mdata.fetch_dataset("mnist", args.data_root, args.mirror).root)  # not timed
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-tta-") as scratch:
        _timed([sys.executable, "-c", "import torch, mnistcnn.engine"], env)  # warm file caches
        for i, seed in enumerate(_seeds(args.seeds)):
            row: dict[str, Any] = {"seed": seed}
            order = ("ours", "peer") if i % 2 == 0 else ("peer", "ours")
            for name in order:
                row[name] = (
                    _ours(seed, root, Path(scratch), env)
                    if name == "ours"
                    else _peer(seed, root, env)
                )
            wall, _, cpu = _timed([sys.executable, "-c", "import torch"], env)
            row["import_torch_s"], row["import_torch_cpu_s"] = wall, cpu
            runs.append(row)
            print(
                f"seed {seed}: ours {row['ours']['seconds']:.2f} s, "
                f"{row['ours']['cpu_s']:.2f} CPU s "
                f"({row['ours']['accuracy']:.2%}, inner {row['ours']['inner_s']:.2f} s)  "
                f"peer {row['peer']['seconds']:.2f} s, {row['peer']['cpu_s']:.2f} CPU s "
                f"({row['peer']['accuracy']:.2%}, "
                f"inner {row['peer']['inner_s']:.2f} s)  "
                f"import torch {row['import_torch_s']:.2f} s, "
                f"{row['import_torch_cpu_s']:.2f} CPU s",
                flush=True,
            )
    return _summary(runs)


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(who: str, key: str) -> float:
        return statistics.median(r[who][key] for r in runs)

    out: dict[str, Any] = {"runs": runs, "load_average": os.getloadavg()}
    for who in ("ours", "peer"):
        out[who] = {
            "median_s": med(who, "seconds"),
            "median_cpu_s": med(who, "cpu_s"),
            "median_inner_s": med(who, "inner_s"),
            "min_accuracy": min(r[who]["accuracy"] for r in runs),
            "mean_accuracy": statistics.mean(r[who]["accuracy"] for r in runs),
            "seeds_at_99": sum(r[who]["accuracy"] >= 0.99 for r in runs),
        }
    out["import_torch_median_s"] = statistics.median(r["import_torch_s"] for r in runs)
    out["ratio_whole"] = out["peer"]["median_s"] / out["ours"]["median_s"]
    out["ratio_cpu"] = out["peer"]["median_cpu_s"] / out["ours"]["median_cpu_s"]
    out["ratio_inner"] = out["peer"]["median_inner_s"] / out["ours"]["median_inner_s"]
    n = len(runs)
    for who in ("ours", "peer"):
        o = out[who]
        print(
            f"{who}: median {o['median_s']:.2f} s whole process ({o['median_cpu_s']:.2f} CPU s), "
            f"{o['median_inner_s']:.2f} s "
            f"inner loop; accuracy min {o['min_accuracy']:.2%}, mean {o['mean_accuracy']:.2%}, "
            f"{o['seeds_at_99']}/{n} seeds >= 99.00%"
        )
    print(
        f"peer / ours: {out['ratio_whole']:.2f}x whole process ({out['ratio_cpu']:.2f}x in CPU "
        f"seconds), {out['ratio_inner']:.2f}x inner "
        f"loop; import torch alone {out['import_torch_median_s']:.2f} s (median); "
        f"load average {out['load_average'][0]:.1f}"
    )
    return out


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = (
        "model",
        "batch_size",
        "lr",
        "epochs",
        "optimizer",
        "precision",
        "scheduler",
        "warmup_fraction",
        "weight_decay",
        "label_smoothing",
        "seed",
    )
    return {n: getattr(args, n) for n in names}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options (see ``--help``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="fast", help="recipe to race (default: fast)")
    p.add_argument("--target", type=float, default=0.99, help="test accuracy to reach (0.99)")
    p.add_argument("--evals-per-epoch", type=int, default=4, help="evaluations per epoch (4)")
    p.add_argument(
        "--baseline-epochs",
        type=int,
        default=3,
        help="most epochs for the pytorch/examples baseline (3); "
        "not reached: its time is a lower bound",
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline")
    p.add_argument(
        "--whole-process",
        action="store_true",
        help="race `mnistcnn train --recipe fast` against the peer script, start to exit",
    )
    p.add_argument("--seeds", default="0-7", help="--whole-process seeds: 0-7 or 0,3 (0-7)")
    p.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    p.add_argument("--device", default="cpu", help="device for the fast run (cpu)")
    add_data_args(p)
    for name, kind in (
        ("model", str),
        ("batch-size", int),
        ("lr", float),
        ("epochs", int),
        ("optimizer", str),
        ("precision", str),
        ("scheduler", str),
        ("warmup-fraction", float),
        ("weight-decay", float),
        ("label-smoothing", float),
        ("seed", int),
    ):
        p.add_argument(f"--{name}", type=kind, default=None, help=f"override the recipe's {name}")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write ``--json``; returns the results."""
    args = parse_args(argv)
    if args.whole_process:
        results = whole_process(args)
        write_json(args.json, results)
        return results
    if args.threads:
        torch.set_num_threads(args.threads)
    args.seed = args.seed if args.seed is not None else 0
    config = recipe_config(args.recipe, **_overrides(args))
    mdata.fetch_dataset("mnist", args.data_root, args.mirror)  # downloads are not timed
    results: dict[str, Any] = {
        "config": config.to_dict(),
        "target": args.target,
        "threads": torch.get_num_threads(),
        "versions": versions(),
    }
    results["fast"] = run_fast(config, args)
    if not args.no_baseline:
        results["baseline"] = run_examples(args)
    _print(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return results


def _print(results: dict[str, Any]) -> None:
    print(f"time to {results['target']:.2%} test accuracy ({results['threads']} threads)")
    print(f"{'run':<10} {'reached':>7} {'seconds':>8} {'eval s':>7} {'steps':>6} {'accuracy':>8}")
    for name in ("fast", "baseline"):
        r = results.get(name)
        if r is None:
            continue
        print(
            f"{name:<10} {str(r['reached']):>7} {r['seconds']:>8.1f} {r['eval_seconds']:>7.1f} "
            f"{r['steps']:>6} {r['accuracy']:>8.2%}"
        )
    for name in ("fast", "baseline"):
        if name in results:
            line = " ".join(f"{e['epoch']:.2f}:{e['acc']:.2%}" for e in results[name]["evals"])
            print(f"  {name} evaluations (epoch:accuracy): {line}")
    fast, base = results["fast"], results.get("baseline")
    if base is not None:
        bound = "" if base["reached"] else ">= "
        print(f"speed-up (baseline / fast): {bound}{base['seconds'] / fast['seconds']:.1f}x")


if __name__ == "__main__":
    main()
