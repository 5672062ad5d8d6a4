"""predict with a model trained on real MNIST, on generated pictures of digits (slow).

Trains the tutorial recipe for one epoch on real MNIST (about 1-2 minutes on a
CPU), then compares two ways of feeding people's pictures to it, on 300
generated digits (tests/digits_synth.py, seed 0):

* ``predict``: :class:`~mnistcnn.predict.Predictor` (MNIST-style preprocessing);
* naive: the whole picture resized to 28x28 grayscale, no inversion.

Run with ``-s`` to see the numbers::

    .venv/bin/python -m pytest -q -s -m slow tests/test_predict_real.py
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from digits_synth import make_digits
from mnistcnn.cli import main
from mnistcnn.config import recipe_config
from mnistcnn.engine import load_checkpoint, train
from mnistcnn.evaluation.calibration import calibrate_from_split
from mnistcnn.predict import Predictor

pytestmark = pytest.mark.slow

N_DIGITS = 300


@pytest.fixture(scope="module")
def checkpoint(mnist_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict-real") / "run"
    train(recipe_config("tutorial", epochs=1, seed=0), out=out, data_root=mnist_root)
    return out / "best.pt"


@pytest.fixture(scope="module")
def digits():
    return make_digits(N_DIGITS, seed=0)


def naive_pixels(img: Image.Image) -> np.ndarray:
    """What a script that skips MNIST's preparation feeds the model: uint8 (28, 28)."""
    return np.asarray(img.convert("L").resize((28, 28), Image.Resampling.BILINEAR))


def test_predict_beats_the_naive_path_on_generated_digits(checkpoint, digits):
    predictor = Predictor.from_checkpoint(checkpoint)
    labels = np.array([d.label for d in digits])
    preds = predictor.predict([d.image for d in digits])
    assert all(p.error is None for p in preds)
    top1 = np.array([p.topk[0][0] if p.topk else "" for p in preds])
    accuracy = float((top1 == labels.astype(str)).mean())
    naive = predictor.probabilities(np.stack([naive_pixels(d.image) for d in digits]))
    naive_accuracy = float((naive.argmax(1) == labels).mean())
    unsure = np.array([p.unsure for p in preds])
    answered = float((top1[~unsure] == labels[~unsure].astype(str)).mean())
    print(
        f"\n{N_DIGITS} generated digits, tutorial recipe 1 epoch: predict {accuracy:.1%}, "
        f"naive {naive_accuracy:.1%}; unsure {unsure.mean():.1%}, "
        f"accuracy of the confident ones {answered:.1%}"
    )
    assert accuracy >= 0.85, accuracy  # one epoch; the 90 % is for the full recipe
    assert naive_accuracy <= 0.35, naive_accuracy
    assert accuracy - naive_accuracy >= 0.5


def test_mnist_test_images_through_idx_input_keep_the_test_accuracy(
    checkpoint, mnist_root, tmp_path
):
    """IDX images go to the model as they are: predict's accuracy is the test accuracy."""
    from mnistcnn.data.idx import read_idx, write_idx

    raw = mnist_root / "MNIST" / "raw"
    images = tmp_path / "first1000-idx3-ubyte"
    write_idx(images, read_idx(raw / "t10k-images-idx3-ubyte")[:1000])
    labels = read_idx(raw / "t10k-labels-idx1-ubyte")[:1000]
    result = CliRunner().invoke(
        main, ["predict", str(checkpoint), str(images), "--json", "--threshold", "0"]
    )
    assert result.exit_code == 0, result.output[-500:]
    out = json.loads(result.stdout)
    assert len(out) == 1000 and out[0]["path"] == f"{images}#0"
    got = np.array([int(d["label"]) for d in out])
    accuracy = float((got == labels).mean())
    reported = load_checkpoint(checkpoint).metrics["test_accuracy"]  # on all 10,000
    print(f"\nMNIST test[:1000] through predict (IDX): {accuracy:.1%}; all test {reported:.1%}")
    assert abs(accuracy - reported) < 0.02, (accuracy, reported)


def test_calibrating_on_the_test_split_lowers_its_nll(checkpoint, mnist_root, tmp_path):
    copy = tmp_path / "calibrated.pt"
    copy.write_bytes(checkpoint.read_bytes())
    with pytest.raises(ValueError, match="no held-out validation images"):
        calibrate_from_split(copy, "val", data_root=mnist_root)
    report = calibrate_from_split(copy, "test", data_root=mnist_root)
    fit = report.fit
    print(
        f"\ntemperature {fit.temperature:.3f}: NLL {fit.nll_before:.4f} -> {fit.nll_after:.4f}, "
        f"ECE {fit.ece_before:.4f} -> {fit.ece_after:.4f}"
    )
    assert 0.5 < fit.temperature < 3.0 and fit.nll_after <= fit.nll_before
    assert fit.num_samples == 10_000 and report.test_accuracy > 0.95
    row = report.test_rows[0]  # threshold 0.5
    assert row.threshold == 0.5 and row.answered > 0.97 and row.error_answered < row.error_unsure
    predictor = Predictor.from_checkpoint(copy)
    assert predictor.calibrated and predictor.temperature == pytest.approx(fit.temperature)
    assert torch.isfinite(torch.tensor(predictor.temperature))


def test_predictor_on_test_arrays_agrees_with_evaluate(checkpoint, mnist_root):
    """MNIST's 10,000 test images given to Predictor.predict as arrays (the datasets' own
    28x28 format: used as they are) get the classes that evaluate gives them."""
    import mnistcnn
    from mnistcnn.data import load_arrays

    images, labels = load_arrays("mnist", train=False, root=mnist_root)
    evaluation = mnistcnn.evaluate(checkpoint, data_root=mnist_root, device="cpu")
    predictor = Predictor.from_checkpoint(checkpoint)
    preds = predictor.predict(list(images.numpy()))
    assert len(preds) == 10_000 and all(p.error is None and p.topk for p in preds)
    from mnistcnn.predict.prediction import short_label

    index = {short_label(name): i for i, name in enumerate(predictor.classes)}
    top1 = torch.tensor([index[p.topk[0][0]] for p in preds])
    agree = float((top1 == evaluation.predictions).double().mean())
    print(f"\npredict on test arrays vs evaluate: {agree:.2%} agree")
    assert agree >= 0.999, agree
    probs = predictor.probabilities(images.numpy())  # the same arrays, the batch path
    assert (torch.from_numpy(probs).argmax(1) == top1).all()
