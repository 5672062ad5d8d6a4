"""Cost of the torchvision networks: parameters, MFLOPs per image, CPU seconds per 1,000
training images, for vgg19 / resnet50 / googlenet from scratch (28x28) and fine-tuned with a
frozen backbone (``--pretrained --freeze backbone``, input resized inside the model).

One torch thread. The pretrained runs start from *generated* stand-in weights
(torchvision's builder, seed 0, saved under torchvision's file name and given as
``weights=FILE``): no real ImageNet weights can be fetched on this machine, and
the cost of a step does not depend on the weights' values. The images are random
uint8 pixels for the same reason. FLOPs: ``torch.utils.flop_counter.FlopCounterMode``
on one image in eval mode (a multiply-add counts 2). CPU seconds:
``time.process_time()`` of the training steps (forward, ``training_loss``,
backward, Adam), after one warm-up step, scaled to 1,000 images.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_tvnets.py \
        --out benchmarks/results/tvnets.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mnistcnn.config import TrainConfig
from mnistcnn.data.loaders import TensorSource
from mnistcnn.engine.model import trained_model
from mnistcnn.engine.optim import build_optimizer
from mnistcnn.engine.sources import DataSources
from mnistcnn.models.imagenet import INPUT_SIZES
from mnistcnn.models.outputs import training_loss
from mnistcnn.models.weights_cache import make_standin_weights

MODELS = ("vgg19", "resnet50", "googlenet")


def measure(config: TrainConfig, images: int, batch: int) -> dict[str, float]:
    """Parameters, forward MFLOPs per image and CPU s / 1,000 training images of one setup."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(
        0, 256, (batch * (images // batch + 1), 28, 28), dtype=torch.uint8, generator=g
    )
    y = torch.randint(0, 10, (len(x),), generator=g)
    train = TensorSource(x, y, batch, shuffle=True, seed=0, device=torch.device("cpu"))
    sources = DataSources(train, {}, [str(i) for i in range(10)], [0.0], [1.0])
    torch.manual_seed(0)
    model = trained_model(config, sources)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 1, 28, 28))
    mflops = counter.get_total_flops() / 1e6
    model.train()
    optimizer = build_optimizer(model, config)
    loss_fn = nn.CrossEntropyLoss()
    batches = iter(train)
    seen, spent = 0, 0.0
    for i, (images_b, labels) in enumerate(batches):
        start = time.process_time()
        _, loss = training_loss(loss_fn, model(images_b), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i > 0:  # the first step (allocations, oneDNN primitive creation) is a warm-up
            spent += time.process_time() - start
            seen += len(labels)
        if seen >= images:
            break
    return {
        "params": params,
        "trainable_params": trainable,
        "mflops_per_image": round(mflops, 1),
        "cpu_s_per_1000_images": round(1000 * spent / seen, 1),
        "images_timed": seen,
        "batch_size": batch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--images", type=int, default=64, help="timed training images per setup")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            weights = make_standin_weights(name, tmp, seed=0)
            setups = {
                "scratch (28x28)": TrainConfig(model=name, lr=1e-3),
                f"frozen backbone ({INPUT_SIZES[name]}x{INPUT_SIZES[name]})": TrainConfig(
                    model=name, lr=1e-3, pretrained=True, freeze="backbone", weights=str(weights)
                ),
            }
            for setup, config in setups.items():
                row = {
                    "model": name,
                    "setup": setup,
                    **measure(config, args.images, args.batch_size),
                }
                print(json.dumps(row), flush=True)
                results.append(row)
            weights.unlink()
    meta = {"threads": torch.get_num_threads(), "torch": torch.__version__, "time": time.ctime()}
    if args.out:
        args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
