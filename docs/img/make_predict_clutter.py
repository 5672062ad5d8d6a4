"""Draw docs/img/predict_clutter.png and docs/img/predict_datasets.png (docs/predict.md).

    PYTHONPATH=src .venv/bin/python docs/img/make_predict_clutter.py [DATASETS_ROOT]

predict_clutter.png: one generated page per clutter kind (mnistcnn.data.page_clutter,
seed 0, page 3 of each kind), the 28x28 made with all ink kept (clutter removal
and the morphological background off) and the 28x28 ``predict`` makes.
predict_datasets.png: Fashion-MNIST test images drawn as pictures (dark on a
white page, 4x bicubic) and the 28x28 each preparation makes of them, beside
the dataset's own image. DATASETS_ROOT: a folder with FashionMNIST/raw/*.gz
(default ../shared/datasets).
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))

from clutter_synth import make_clutter  # noqa: E402
from mnistcnn.data.page_clutter import CLUTTER_KINDS  # noqa: E402
from mnistcnn.prepare import InkSettings, Preparation, PreparationSettings  # noqa: E402


def clutter_figure(out: Path) -> None:
    keep_all = PreparationSettings(clutter=None, ink=InkSettings(local_background=0))
    fig, axes = plt.subplots(3, len(CLUTTER_KINDS), figsize=(1.45 * len(CLUTTER_KINDS), 4.6))
    rows = ("picture", "all ink kept", "predict")
    for j, kind in enumerate(CLUTTER_KINDS):
        page = make_clutter(kind, seed=0, index=3)
        shown = [
            np.asarray(page.picture),
            Preparation(settings=keep_all).apply(page.picture).image,
            Preparation().apply(page.picture).image,
        ]
        for i, img in enumerate(shown):
            ax = axes[i, j]
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(kind, fontsize=8)
            if j == 0:
                ax.set_ylabel(rows[i], fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def datasets_figure(root: Path, out: Path, n: int = 8) -> None:
    raw = root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    with gzip.open(raw) as fh:
        images = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    picks = images[:n]
    fig, axes = plt.subplots(4, n, figsize=(1.3 * n, 5.6))
    rows = ("picture", "MNIST's\npreparation", "Fashion-MNIST's\npreparation", "dataset image")
    for j, a in enumerate(picks):
        big = Image.fromarray(255 - a).resize((112, 112), Image.Resampling.BICUBIC)
        page = Image.new("L", (152, 152), 255)
        page.paste(big, (20, 20))
        shown = [
            np.asarray(page),
            Preparation("mnist").apply(page).image,
            Preparation("fashion-mnist").apply(page).image,
            a,
        ]
        for i, img in enumerate(shown):
            ax = axes[i, j]
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(rows[i], fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "datasets"
    clutter_figure(HERE / "predict_clutter.png")
    datasets_figure(root, HERE / "predict_datasets.png")
    print("wrote", HERE / "predict_clutter.png", HERE / "predict_datasets.png")
