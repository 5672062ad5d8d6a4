"""Each dataset's own picture preparation: registry, checkpoint record, the methods' geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mnistcnn.artifact import CheckpointError, TrainedModel, load, save
from mnistcnn.data import get_spec, list_datasets
from mnistcnn.models import create_model
from mnistcnn.predict import Predictor
from mnistcnn.prepare import METHODS, PREPARATIONS, Preparation, dataset_format, preparation_record


def box_of(image: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the nonzero pixels, bottom/right exclusive."""
    rows, cols = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def test_every_dataset_names_a_known_preparation():
    expected = {"mnist": "mnist", "qmnist": "mnist", "fashion-mnist": "fashion-mnist"}
    expected |= {"kmnist": "kmnist", "emnist-letters": "emnist", "emnist-digits": "emnist"}
    for name in list_datasets():
        spec = get_spec(name)
        assert spec.preparation in METHODS and spec.preparation in PREPARATIONS, name
        if name in expected:
            assert spec.preparation == expected[name], name
    assert set(METHODS) == set(PREPARATIONS)
    with pytest.raises(ValueError, match="known: emnist, fashion-mnist, kmnist, mnist"):
        preparation_record("cifar")


def _model(dataset: str, preparation: dict) -> TrainedModel:
    torch.manual_seed(0)
    return TrainedModel(
        create_model("tutorial", num_classes=10),
        [0.5],
        [0.25],
        model_name="tutorial",
        model_kwargs={"num_classes": 10, "in_chans": 1},
        dataset=dataset,
        preparation=preparation,
    )


def test_an_old_fashion_checkpoint_gets_the_fashion_preparation(tmp_path):
    """Before datasets had their own, training recorded MNIST's for every dataset."""
    old = {"method": "mnist", "box": 20, "canvas": 28}
    save(_model("fashion-mnist", old), tmp_path / "fashion.pt", epoch=1, step=1)
    save(_model("mnist", old), tmp_path / "mnist.pt", epoch=1, step=1)
    assert load(tmp_path / "fashion.pt").preparation == preparation_record("fashion-mnist")
    assert load(tmp_path / "mnist.pt").preparation == old
    assert Predictor(load(tmp_path / "fashion.pt")).preparation.method == "fashion-mnist"


def test_an_unknown_preparation_is_refused_by_name(tmp_path):
    save(_model("mnist", {"method": "from-the-future"}), tmp_path / "new.pt", epoch=1, step=1)
    with pytest.raises(CheckpointError, match="new.pt: .*'from-the-future' is unknown.*known: emn"):
        Predictor.from_checkpoint(tmp_path / "new.pt")


def product(size=(240, 160), paper=250, shade=60) -> Image.Image:
    """A dark 'boot' (an L of two rectangles) on light paper, away from the edges."""
    img = Image.new("L", size, paper)
    draw = ImageDraw.Draw(img)
    draw.rectangle((60, 20, 110, 130), fill=shade)
    draw.rectangle((60, 100, 190, 130), fill=shade)
    return img


def test_fashion_trims_fits_the_long_side_to_28_centres_and_negates():
    r = Preparation("fashion-mnist").apply(product())
    assert r.ink_found and r.inverted and r.bbox == (60, 20, 191, 131)
    top, left, bottom, right = box_of(r.image)
    assert (left, right) == (0, 28)  # the long side (131 px wide) becomes 28
    assert bottom - top == round(111 * 28 / 131) and top == (28 - (bottom - top)) // 2
    assert r.image[0].max() == 0 and r.image[-1].max() == 0  # the paper is exactly 0
    # the paper's colour does not matter: grey paper gives the same product
    grey = Preparation("fashion-mnist").apply(product(paper=200, shade=48))
    assert np.abs(grey.image.astype(int) - r.image).mean() < 3


def test_fashion_leaves_its_own_images_unchanged():
    """A 28x28 image in the dataset's format (product touching two edges, black corners)
    is not resampled, not sharpened and not negated."""
    rng = np.random.default_rng(0)
    img = np.zeros((28, 28), np.uint8)
    img[:, 6:22] = rng.integers(40, 256, (28, 16))  # a dress from the top edge to the bottom
    r = Preparation("fashion-mnist").apply(Image.fromarray(img))
    assert not r.inverted and np.array_equal(r.image, img)
    # and it passes as dataset format for a Fashion model, not by the digits' frame rule
    frame_mean = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]]).mean()
    assert frame_mean > 32 and dataset_format(img) is None
    assert np.array_equal(Preparation("fashion-mnist").given(img), img)


def test_kmnist_and_emnist_fill_the_field_and_centre_the_box():
    img = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(img).line([(60, 40), (140, 40), (80, 160)], fill=0, width=10)  # a 7
    k = Preparation("kmnist").apply(img)
    top, left, bottom, right = box_of(k.image)
    assert bottom - top == 28 and abs(left - (28 - right)) <= 1  # long side 28, box centred
    e = Preparation("emnist").apply(img)
    top, left, bottom, right = box_of(e.image > 20)
    assert 25 <= bottom - top <= 28 and abs(left - (28 - right)) <= 1
    assert e.image.max() == 255  # intensities scaled to 0..255
    m = Preparation("mnist").apply(img)
    top, left, bottom, right = box_of(m.image)
    assert bottom - top == 20  # MNIST's 20x20 box
