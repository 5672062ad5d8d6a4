"""The peer recipe for ``bench_time_to_accuracy.py --peer``: tuomaso/train_mnist_fast as a script.

tuomaso/train_mnist_fast (GitHub), its final notebook (0.76 s to 99 % on a GTX 1660 Ti),
written out as the plain script one would run on a CPU: the whole training set as one
normalized float tensor in memory (mean 0.1307, std 0.3081); Conv(1->24, 5x5) ->
max-pool 2 -> ReLU -> Conv(24->32, 3x3) -> max-pool 2 -> ReLU -> Linear(800->256) ->
ReLU -> Linear(256->10) -> log-softmax; NLL loss; batches of 256 in file order; Adam
(lr 0.01, betas (0.7, 0.9)); OneCycleLR (max_lr 0.01 over the one epoch, cycle_momentum
off); the test split in batches of 2,000.

It reads the four uncompressed IDX files itself (``<data>/MNIST/raw/``, as torchvision
lays them out) and prints one JSON line: test accuracy, the seconds of its phases
(``train_s``, ``test_s``; ``inner_s`` is their sum) and since the interpreter started
(``process_s``, read from /proc). Usage::

    python benchmarks/peer_train_mnist_fast.py --data /tmp/data --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def read_idx(path: Path) -> np.ndarray:
    """An uncompressed IDX file as a uint8 array (images (N, 28, 28), labels (N,))."""
    raw = path.read_bytes()
    ndim = raw[3]
    dims = np.frombuffer(raw[4 : 4 + 4 * ndim], dtype=">i4")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class Net(nn.Module):
    """The notebook's network: (N, 1, 28, 28) -> log-probabilities (N, 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 24, 5)  # (N, 24, 24, 24)
        self.conv2 = nn.Conv2d(24, 32, 3)  # (N, 32, 10, 10)
        self.fc1 = nn.Linear(800, 256)  # 32 * 5 * 5
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))  # (N, 24, 12, 12)
        x = F.relu(F.max_pool2d(self.conv2(x), 2))  # (N, 32, 5, 5)
        x = F.relu(self.fc1(torch.flatten(x, 1)))  # (N, 256)
        return F.log_softmax(self.fc2(x), dim=1)  # (N, 10)


def load(raw: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images float32 (N, 1, 28, 28) normalized, labels int64 (N,))."""
    prefix = "train" if split == "train" else "t10k"
    images = torch.from_numpy(read_idx(raw / f"{prefix}-images-idx3-ubyte").copy())
    labels = torch.from_numpy(read_idx(raw / f"{prefix}-labels-idx1-ubyte").astype(np.int64))
    x = (images.float().unsqueeze(1) / 255 - 0.1307) / 0.3081
    return x, labels


def process_seconds() -> float:
    """Seconds since this process started (Linux /proc; the interpreter's start-up included)."""
    ticks = os.sysconf("SC_CLK_TCK")
    start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="root holding MNIST/raw/")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    raw = args.data / "MNIST" / "raw"
    torch.manual_seed(args.seed)
    x_train, y_train = load(raw, "train")
    x_test, y_test = load(raw, "test")
    model = Net()
    batch = 256
    steps = (len(x_train) + batch - 1) // batch
    opt = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.7, 0.9))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.01, total_steps=steps, cycle_momentum=False
    )
    t0 = time.perf_counter()
    model.train()
    for i in range(steps):
        x, y = x_train[i * batch : (i + 1) * batch], y_train[i * batch : (i + 1) * batch]
        opt.zero_grad()
        F.nll_loss(model(x), y).backward()
        opt.step()
        sched.step()
    t1 = time.perf_counter()
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x_test), 2000):
            pred = model(x_test[i : i + 2000]).argmax(1)
            correct += int((pred == y_test[i : i + 2000]).sum())
    t2 = time.perf_counter()
    result = {
        "accuracy": correct / len(x_test),
        "train_s": t1 - t0,
        "test_s": t2 - t1,
        "inner_s": t2 - t0,
        "process_s": process_seconds(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
