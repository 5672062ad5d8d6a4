"""Each dataset's preparation on its own test images: PNG files, prepared anyway, as pictures.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_preparation.py \\
        --mnist MNIST_CKPT --fashion FASHION_CKPT [--root ../shared/datasets] [-n 10000]

For MNIST and Fashion-MNIST (a checkpoint of each), the first ``-n`` test images:

* written as 8-bit PNG files and predicted by path (``Predictor.predict``): the
  share whose class agrees with the model's on the arrays, and the time;
* prepared anyway by the checkpoint's own method (not passed through as
  dataset format): agreement, accuracy, mean absolute change (grey levels);
* drawn as pictures (negated: dark on a white page, 4x bicubic, a 20-px
  margin), prepared by the checkpoint's method and by MNIST's.

``--root``: a folder with MNIST/raw and FashionMNIST/raw .gz files.
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mnistcnn.predict import Predictor
from mnistcnn.predict.prediction import short_label
from mnistcnn.prepare import Preparation


def read(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path) as fh:
        return np.frombuffer(fh.read(), np.uint8, offset=offset)


def picture(a: np.ndarray) -> Image.Image:
    big = Image.fromarray(255 - a).resize((112, 112), Image.Resampling.BICUBIC)
    page = Image.new("L", (152, 152), 255)
    page.paste(big, (20, 20))
    return page


def bench(name: str, folder: Path, checkpoint: str, n: int) -> None:
    x = read(folder / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)[:n]
    y = read(folder / "t10k-labels-idx1-ubyte.gz", 8)[:n]
    pr = Predictor.from_checkpoint(checkpoint, threshold=0.0)
    direct = pr.probabilities(x).argmax(1)
    index = {short_label(c): i for i, c in enumerate(pr.classes)}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        paths = []
        for i, a in enumerate(x):
            path = Path(tmp) / f"{i:05d}.png"
            Image.fromarray(a).save(path)
            paths.append(str(path))
        got = np.array([index[p.topk[0][0]] for p in pr.predict(paths)])
        took = time.perf_counter() - t
    print(f"{name}: {n} test PNGs through predict agree {np.mean(got == direct):.2%} "
          f"({took:.0f} s to write and predict); accuracy {np.mean(got == y):.2%} "
          f"vs {np.mean(direct == y):.2%} on the arrays")  # fmt: skip
    method = pr.preparation.method
    forced = np.stack([pr.preparation.apply(Image.fromarray(a)).image for a in x])
    f = pr.probabilities(forced).argmax(1)
    change = np.abs(forced.astype(int) - x).mean()
    print(f"  prepared anyway ({method}): agree {np.mean(f == direct):.2%}, "
          f"accuracy {np.mean(f == y):.2%}, mean change {change:.2f} grey levels")  # fmt: skip
    pictures = [picture(a) for a in x]
    for m in dict.fromkeys([method, "mnist"]):
        made = np.stack([Preparation(m).apply(p).image for p in pictures])
        g = pr.probabilities(made).argmax(1)
        print(f"  as pictures, prepared by {m}: agree {np.mean(g == direct):.2%}, "
              f"accuracy {np.mean(g == y):.2%}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mnist", required=True, help="checkpoint of an MNIST model")
    p.add_argument("--fashion", required=True, help="checkpoint of a Fashion-MNIST model")
    default_root = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    p.add_argument("--root", type=Path, default=default_root)
    p.add_argument("-n", type=int, default=10_000)
    args = p.parse_args()
    bench("mnist", args.root / "MNIST" / "raw", args.mnist, args.n)
    bench("fashion-mnist", args.root / "FashionMNIST" / "raw", args.fashion, args.n)


if __name__ == "__main__":
    main()
