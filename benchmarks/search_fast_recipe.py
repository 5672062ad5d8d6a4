"""The candidates tried for the ``fast`` recipe: validation accuracy and CPU cost per epoch.

Chooses on held-out training images, never on the test split: each candidate trains on
55,000 training images for ``--epochs`` (fractions allowed) and is scored on the other
5,000 (a fixed random split, seed 12345), with the recipe's loop: uint8 batches
normalized per batch (mean 0.1307, std 0.3081), channels_last, Adam with a one-cycle
schedule, cross-entropy with label smoothing, bf16 autocast, one thread.
``--speed`` instead times the training step on random data and prints CPU seconds per
epoch of 60,000 images. Reads the uncompressed IDX files under ``--data``/MNIST/raw.
Examples (the table in benchmarks/README.md, "Time to 99 %")::

    python benchmarks/search_fast_recipe.py --data /tmp/data --net tinycnn --batch 128 \\
        --lr 0.01 --seeds 0,1
    python benchmarks/search_fast_recipe.py --speed --net tinycnn,fastcnn --batch 128
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

MEAN, STD = 0.1307, 0.3081


def _bn_relu(c: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(c), nn.ReLU()]


def fastcnn() -> nn.Module:
    """The recipe's network until now (mnistcnn.models.fastcnn)."""

    def stage(i: int, o: int, k: int = 3) -> list[nn.Module]:
        return [nn.Conv2d(i, o, k, padding=k // 2, bias=False), *_bn_relu(o)]

    return nn.Sequential(
        *stage(1, 16, 5), nn.MaxPool2d(2), *stage(16, 32), nn.MaxPool2d(2), *stage(32, 64),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )  # fmt: skip


def tinycnn(widths: tuple[int, int, int] = (16, 32, 64), hidden: int | None = None) -> nn.Module:
    """mnistcnn.models.tinycnn; ``hidden``: flatten (c, 3, 3) into the head instead of the
    global max pool (0: straight to the classes; n: through an n-unit hidden layer)."""
    a, b, c = widths
    if hidden is None:
        head: list[nn.Module] = [nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c, 10)]
    elif hidden == 0:
        head = [nn.Flatten(), nn.Linear(c * 9, 10)]
    else:
        head = [nn.Flatten(), nn.Linear(c * 9, hidden), nn.ReLU(), nn.Linear(hidden, 10)]
    return nn.Sequential(
        nn.Conv2d(1, a, 5, bias=False), nn.MaxPool2d(2), *_bn_relu(a),  # (a, 12, 12)
        nn.Conv2d(a, b, 3, bias=False), nn.MaxPool2d(2), *_bn_relu(b),  # (b, 5, 5)
        nn.Conv2d(b, c, 3, bias=False), *_bn_relu(c), *head,  # (c, 3, 3)
    )  # fmt: skip


def strided(widths: tuple[int, int, int] = (16, 32, 64)) -> nn.Module:
    """tinycnn with a stride-2 first convolution instead of convolution + pooling."""
    a, b, c = widths
    return nn.Sequential(
        nn.Conv2d(1, a, 5, stride=2, bias=False), *_bn_relu(a),  # (a, 12, 12)
        nn.Conv2d(a, b, 3, bias=False), nn.MaxPool2d(2), *_bn_relu(b),  # (b, 5, 5)
        nn.Conv2d(b, c, 3, bias=False), *_bn_relu(c),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c, 10),
    )  # fmt: skip


def space_to_depth(
    widths: tuple[int, ...] = (24, 48, 64), pool_after: int = 0, pad_first: bool = False
) -> nn.Module:
    """A space-to-depth stem (each 2x2 block of pixels as 4 channels: (4, 14, 14)), then one
    3x3 convolution (+ BatchNorm, ReLU) per width, a 2x2 max-pool after convolution
    ``pool_after`` (and after the second too when there are only two), global max pool.
    ``(24, 48, 64)``: mnistcnn.models.s2dcnn, the recipe's network."""
    layers: list[nn.Module] = [nn.PixelUnshuffle(2)]
    previous = 4
    for i, width in enumerate(widths):
        pad = 1 if pad_first and i == 0 else 0
        layers.append(nn.Conv2d(previous, width, 3, padding=pad, bias=False))
        if i == pool_after or (len(widths) == 2 and i == 1):
            layers.append(nn.MaxPool2d(2))
        layers += _bn_relu(width)
        previous = width
    return nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(previous, 10))


def peer(batchnorm: bool = False) -> nn.Module:
    """tuomaso/train_mnist_fast's network (benchmarks/peer_train_mnist_fast.py), logits out;
    ``batchnorm``: BatchNorm after each pooling, a 128-unit hidden layer."""
    if not batchnorm:
        return nn.Sequential(
            nn.Conv2d(1, 24, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(24, 32, 3),
            nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(800, 256), nn.ReLU(),
            nn.Linear(256, 10),
        )  # fmt: skip
    return nn.Sequential(
        nn.Conv2d(1, 24, 5, bias=False), nn.MaxPool2d(2), *_bn_relu(24),
        nn.Conv2d(24, 32, 3, bias=False), nn.MaxPool2d(2), *_bn_relu(32),
        nn.Flatten(), nn.Linear(800, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip


NETS: dict[str, Callable[[], nn.Module]] = {
    "fastcnn": fastcnn,
    "tinycnn": tinycnn,
    "tinycnn-flat": lambda: tinycnn(hidden=0),
    "tinycnn-hidden": lambda: tinycnn(hidden=128),
    "strided": strided,
    "strided-32": lambda: strided((32, 32, 64)),
    "s2dcnn": space_to_depth,
    "s2dcnn-32": lambda: space_to_depth((32, 64, 64)),
    "s2d-two": lambda: space_to_depth((32, 64)),
    "s2d-two-24": lambda: space_to_depth((24, 48)),
    "s2d-two-pad": lambda: space_to_depth((32, 64), pad_first=True),
    "peer": peer,
    "peer-bn": lambda: peer(batchnorm=True),
}


def read_idx(path: Path) -> torch.Tensor:
    raw = path.read_bytes()
    dims = np.frombuffer(raw[4 : 4 + 4 * raw[3]], dtype=">i4")
    return torch.from_numpy(
        np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(dims).copy()
    )


def batch(x: torch.Tensor) -> torch.Tensor:
    return ((x.float().unsqueeze(1) / 255 - MEAN) / STD).contiguous(
        memory_format=torch.channels_last
    )


def run(args: argparse.Namespace, name: str, seed: int) -> tuple[float, float]:
    """(validation accuracy, training CPU seconds) of one candidate and seed."""
    raw = args.data / "MNIST" / "raw"
    x, y = read_idx(raw / "train-images-idx3-ubyte"), read_idx(raw / "train-labels-idx1-ubyte")
    perm = torch.randperm(60000, generator=torch.Generator().manual_seed(12345))
    xt, yt, xv, yv = x[perm[:55000]], y[perm[:55000]].long(), x[perm[55000:]], y[perm[55000:]]
    torch.manual_seed(seed)
    model = NETS[name]().to(memory_format=torch.channels_last)
    steps = int(len(xt) * args.epochs) // args.batch
    betas = (args.beta1, args.beta2)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=betas, fused=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=steps, pct_start=args.warmup
    )
    gen = torch.Generator().manual_seed(1000 + seed)
    order = torch.cat([torch.randperm(len(xt), generator=gen) for _ in range(int(args.epochs) + 1)])
    bf16 = args.precision == "bf16"
    c0 = time.process_time()
    model.train()
    for i in range(steps):
        idx = order[i * args.batch : (i + 1) * args.batch]
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(batch(xt[idx])), yt[idx], label_smoothing=args.smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    cpu = time.process_time() - c0
    model.eval()
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        correct = int((model(batch(xv)).argmax(1) == yv).sum())
    return correct / len(xv), cpu


def speed(args: argparse.Namespace, name: str) -> float:
    """CPU seconds per 60,000 images of the training step, on random data."""
    torch.manual_seed(0)
    model = NETS[name]().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x = torch.randn(args.batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,))

    def step() -> None:
        with torch.autocast("cpu", torch.bfloat16, enabled=args.precision == "bf16"):
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    n = max(10, 3000 // args.batch)
    c0 = time.process_time()
    for _ in range(n):
        step()
    return (time.process_time() - c0) / n / args.batch * 60000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("data"), help="root holding MNIST/raw/")
    p.add_argument("--net", default="tinycnn", help=f"comma-separated: {', '.join(NETS)}")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--epochs", type=float, default=1.0, help="may be a fraction (1.0)")
    p.add_argument("--warmup", type=float, default=0.25, help="one-cycle warm-up fraction")
    p.add_argument("--smoothing", type=float, default=0.1, help="label smoothing (0.1)")
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--speed", action="store_true", help="time the step instead")
    args = p.parse_args()
    torch.set_num_threads(1)
    for name in args.net.split(","):
        if args.speed:
            print(f"{name}: {speed(args, name):.2f} CPU s per epoch (batch {args.batch})")
            continue
        accs = []
        for seed in (int(s) for s in args.seeds.split(",")):
            acc, cpu = run(args, name, seed)
            accs.append(acc)
            print(f"{name} seed {seed}: validation {acc:.2%}, training {cpu:.1f} CPU s", flush=True)
        print(json.dumps({**{k: str(v) for k, v in vars(args).items()}, "net": name,
                          "mean": statistics.mean(accs), "min": min(accs)}))  # fmt: skip


if __name__ == "__main__":
    main()
