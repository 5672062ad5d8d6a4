"""The 10,000 test images of MNIST and of Fashion-MNIST, saved as PNG files and given to
``predict`` as file paths, get the classes ``evaluate`` gives them (issue 11 item 2; slow).

Each dataset trains the tutorial recipe for 150 steps (9,600 images; the
agreement does not need a good model), then every test image is written as
an 8-bit grayscale PNG and predicted through :class:`~mnistcnn.predict.Predictor`
with the model's own preparation (recorded in the checkpoint: ``mnist`` and
``fashion-mnist``). A picture already in its dataset's format goes to the
model unchanged; a Fashion-MNIST garment reaches the image's edges (2.7 % of
the test images have a bright frame), which its own format rule allows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import mnistcnn
from mnistcnn.config import recipe_config
from mnistcnn.data import fetch_dataset, load_arrays
from mnistcnn.engine import train
from mnistcnn.predict import Predictor
from mnistcnn.predict.prediction import short_label

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["mnist", "fashion-mnist"])
def trained(request, shared_datasets, tmp_path_factory):
    name = request.param
    root = tmp_path_factory.mktemp(f"{name}-root")
    fetch_dataset(name, root=root, mirror=shared_datasets, allow_download=False, allow_pypi=False)
    out = tmp_path_factory.mktemp(f"{name}-run") / "run"
    config = recipe_config("tutorial", dataset=name, epochs=1, max_steps=150, seed=0)
    train(config, out=out, data_root=root)
    return name, root, out / "best.pt"


def test_test_images_as_png_files_agree_with_evaluate(trained, tmp_path):
    name, root, checkpoint = trained
    images, labels = load_arrays(name, train=False, root=root)
    paths = []
    for i, image in enumerate(images.numpy()):
        path = tmp_path / f"{i:05d}_{int(labels[i])}.png"
        Image.fromarray(image, "L").save(path)
        paths.append(str(path))
    evaluation = mnistcnn.evaluate(checkpoint, data_root=root, device="cpu")
    predictor = Predictor.from_checkpoint(checkpoint, threshold=0.0)
    assert predictor.preparation.method == name
    preds = predictor.predict(paths)
    assert len(preds) == 10_000 and all(p.error is None and p.topk for p in preds)
    index = {short_label(c): i for i, c in enumerate(predictor.classes)}
    top1 = torch.tensor([index[p.topk[0][0]] for p in preds])
    agree = float((top1 == evaluation.predictions).double().mean())
    accuracy = float((top1 == labels).double().mean())
    print(f"\n{name}: 10,000 test PNGs through predict agree with evaluate on {agree:.2%} "
          f"(accuracy {accuracy:.2%}, evaluate {evaluation.accuracy:.2%})")  # fmt: skip
    assert agree >= 0.999, agree
    assert np.isclose(accuracy, evaluation.accuracy, atol=1e-3)
