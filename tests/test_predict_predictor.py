"""Predictor: calibrated probabilities, the unsure rule, batch invariance, input kinds."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from ckpt_files import write_checkpoint
from conftest import idx_bytes
from digits_synth import digit
from mnistcnn.engine import load_checkpoint, load_model
from mnistcnn.evaluation.calibration import (
    calibrate_checkpoint,
    expected_calibration_error,
    fit_temperature,
    threshold_table,
)
from mnistcnn.models import create_model
from mnistcnn.predict import DEFAULT_THRESHOLD, Prediction, Predictor, expand_inputs

MEAN, STD = 0.1307, 0.3081
NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def make_checkpoint(path: Path, seed: int = 0) -> Path:
    """A tutorial-model checkpoint with seeded random weights and MNIST normalization."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = create_model("tutorial", num_classes=10)
    classes = [f"{i} - {w}" for i, w in enumerate(NAMES)]  # as torchvision names them
    return write_checkpoint(path, model, classes=classes, mean=[MEAN], std=[STD])


@pytest.fixture
def ckpt(tmp_path) -> Path:
    return make_checkpoint(tmp_path / "model.pt")


def pictures() -> list[Image.Image]:
    return [digit(t, ink=i, paper=p) for t, i, p in [("3", 0, 255), ("7", 255, 0), ("1", 40, 200)]]


def test_probabilities_are_the_normalized_model_output(ckpt):
    p = Predictor.from_checkpoint(ckpt)
    assert not p.calibrated and p.temperature == 1.0 and p.threshold == DEFAULT_THRESHOLD
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    model, _ = load_model(ckpt)
    with torch.inference_mode():
        x = torch.from_numpy(images).float()[:, None] / 255  # (4, 1, 28, 28) in [0, 1]
        want = F.softmax(model(x), dim=1).numpy()  # the model normalizes itself:
        by_hand = F.softmax(model.net((x - MEAN) / STD), dim=1).numpy()
    np.testing.assert_allclose(want, by_hand, rtol=0, atol=1e-6)
    got = p.probabilities(images)
    assert got.shape == (4, 10) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)  # batch of 4 vs 4 of 1: ulps
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-6)


def test_one_picture_alone_or_in_a_batch_gives_identical_probabilities(ckpt):
    """Bit-for-bit (torch.equal): each picture has a forward pass of its own."""
    p = Predictor.from_checkpoint(ckpt)
    pics = pictures()
    batch = p.predict(pics)
    for k, pic in enumerate(pics):
        (alone,) = p.predict([pic])
        assert torch.equal(
            torch.from_numpy(alone.probabilities), torch.from_numpy(batch[k].probabilities)
        )
        assert alone.topk == batch[k].topk and np.array_equal(alone.input, batch[k].input)
    reordered = p.predict(pics[::-1])
    assert [r.topk for r in reordered] == [b.topk for b in batch[::-1]]


def test_idx_images_are_batched_with_the_same_results_as_one_by_one(ckpt, tmp_path):
    """An IDX file goes through the model FORWARD_BATCH images at a time; each image's
    probabilities equal (bit for bit) those of the image predicted alone."""
    from mnistcnn.predict.predictor import FORWARD_BATCH

    n = FORWARD_BATCH + 6  # two forward passes, the second one filled up
    images = np.random.default_rng(3).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images[5] = 0  # a blank image among them
    idx = tmp_path / "imgs-idx3-ubyte"
    idx.write_bytes(idx_bytes(images))
    p = Predictor.from_checkpoint(ckpt, threshold=0.3)
    calls = []
    p.model.register_forward_hook(lambda _m, inputs, _out: calls.append(len(inputs[0])))
    batched = p.predict([idx])
    assert calls == [FORWARD_BATCH, FORWARD_BATCH]
    assert [b.path for b in batched] == [f"{idx}#{i}" for i in range(n)]
    assert batched[5].blank and batched[5].unsure and batched[5].probabilities is None
    for i in (0, 1, FORWARD_BATCH - 1, FORWARD_BATCH, n - 1):
        one = tmp_path / f"one{i}-idx3-ubyte"
        one.write_bytes(idx_bytes(images[i : i + 1]))
        (alone,) = p.predict([one])
        assert np.array_equal(alone.probabilities, batched[i].probabilities), i
        assert (alone.label, alone.topk, alone.unsure) == (
            batched[i].label,
            batched[i].topk,
            batched[i].unsure,
        )
        assert np.array_equal(alone.input, images[i])
    # and the same as the forward passes of one image each, up to float rounding
    one_by_one = np.concatenate([p._forward(images[i : i + 1]) for i in range(n)])
    np.testing.assert_allclose(p.probabilities(images), one_by_one, rtol=0, atol=1e-6)
    streamed = []  # the CLI path: predict_items with a callback, in order
    items = expand_inputs([str(idx), str(idx)])
    p.predict_items(items, on_prediction=streamed.append)
    assert [s.path for s in streamed] == [b.path for b in batched] * 2
    assert all(np.array_equal(s.input, b.input) for s, b in zip(streamed, batched * 2))


def test_prediction_fields_and_to_dict(ckpt):
    p = Predictor.from_checkpoint(ckpt, top_k=4, threshold=0.0)
    (pred,) = p.predict([digit("5")])
    assert isinstance(pred, Prediction) and pred.error is None and not pred.unsure
    assert pred.input.shape == (28, 28) and pred.input.dtype == np.uint8
    assert len(pred.topk) == 4 and pred.topk[0] == (pred.label, pred.probability)
    assert all(a[1] >= b[1] for a, b in zip(pred.topk, pred.topk[1:]))
    assert pred.label in [str(i) for i in range(10)]  # "5 - five" is reported as "5"
    assert math.isclose(pred.probability, float(pred.probabilities.max()), rel_tol=0, abs_tol=0)
    assert pred.inverted is True and pred.size == (120, 160)
    d = pred.to_dict()
    assert list(d) == ["path", "label", "probability", "topk", "unsure", "error"]
    assert d["topk"][0] == {"label": pred.label, "probability": pred.probability}
    assert d["path"] == "<image 0>" and d["error"] is None
    assert all(isinstance(t["probability"], float) for t in d["topk"])


def test_threshold_decides_unsure(ckpt):
    pics = pictures()
    sure = Predictor.from_checkpoint(ckpt, threshold=0.0).predict(pics)
    never = Predictor.from_checkpoint(ckpt, threshold=1.0).predict(pics)
    assert not any(s.unsure for s in sure) and all(s.label is not None for s in sure)
    assert all(n.unsure and n.label is None and n.probability is not None for n in never)
    assert [n.topk for n in never] == [s.topk for s in sure]  # probabilities still reported
    with pytest.raises(ValueError, match="threshold"):
        Predictor.from_checkpoint(ckpt, threshold=1.5)


def test_blank_picture_is_unsure_without_probabilities(ckpt):
    (pred,) = Predictor.from_checkpoint(ckpt, threshold=0.0).predict(
        [Image.new("L", (64, 64), 255)]
    )
    assert pred.unsure and pred.blank and pred.error is None
    assert pred.label is None and pred.probability is None and pred.topk == []
    assert pred.input is not None and not pred.input.any()


def test_all_input_kinds(ckpt, tmp_path):
    pic = digit("4")
    png = io.BytesIO()
    pic.save(png, "PNG")
    (tmp_path / "four.png").write_bytes(png.getvalue())
    idx = tmp_path / "imgs-idx3-ubyte"
    idx.write_bytes(
        idx_bytes(np.stack([np.zeros((28, 28), np.uint8), np.full((28, 28), 200, np.uint8)]))
    )
    arr = np.asarray(pic)
    inputs = [
        pic,
        arr,
        arr.astype(np.float32) / 255,
        np.stack([arr] * 3, -1),
        png.getvalue(),
        str(tmp_path / "four.png"),
        tmp_path / "four.png",
        idx,
        np.zeros((2, 2, 2)),
        42,
    ]
    preds = Predictor.from_checkpoint(ckpt).predict(inputs)  # type: ignore[arg-type]
    names = [p.path for p in preds]
    assert names[:7] == [
        "<image 0>",
        "<array 1>",
        "<array 2>",
        "<array 3>",
        "<bytes 4>",
        str(tmp_path / "four.png"),
        str(tmp_path / "four.png"),
    ]
    assert names[7:9] == [f"{idx}#0", f"{idx}#1"]
    first = preds[0].probabilities
    for p in preds[1:7]:  # the same picture, however it was given
        assert p.error is None and np.abs(p.probabilities - first).max() < 1e-3, p.path
    assert preds[7].blank and preds[7].unsure  # an all-black IDX image
    assert preds[8].error is None and (preds[8].input == 200).all()  # IDX images are used as is
    assert "(H, W)" in preds[9].error and "unsupported input type int" in preds[10].error
    (as_bytes,) = Predictor.from_checkpoint(ckpt).predict([idx.read_bytes()])  # bytes: 1:1
    assert "an IDX file (many images): give it as a path" in as_bytes.error


def test_fit_temperature_recovers_a_known_temperature():
    g = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(20_000, 10, generator=g)  # the model's (over-confident) logits
    labels = torch.multinomial(F.softmax(logits / 2.5, 1), 1, generator=g)[:, 0]  # truth: T=2.5
    fit = fit_temperature(logits, labels)
    assert fit.temperature == pytest.approx(2.5, rel=0.03)
    assert fit.nll_after < fit.nll_before and fit.ece_after < fit.ece_before
    assert fit.ece_after < 0.02 and fit.num_samples == 20_000
    with pytest.raises(ValueError, match="labels must be in"):
        fit_temperature(logits, labels + 10)


def test_expected_calibration_error_by_hand():
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1])
    # bins of 0.1: {0.9, 0.9} accuracy 0.5 -> |0.5 - 0.9| = 0.4; {0.6}: |1 - 0.6|; {0.7}: |1 - 0.7|
    want = 0.5 * 0.4 + 0.25 * 0.4 + 0.25 * 0.3
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx(want, abs=1e-12)
    (row,) = threshold_table(probs, labels, (0.65,))
    assert (row.answered, row.error_answered, row.error_unsure) == (0.75, pytest.approx(1 / 3), 0.0)
    assert row.errors_caught == 0.0


def test_calibrate_checkpoint_stores_the_temperature_and_predictor_uses_it(ckpt):
    g = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(5000, 10, generator=g)
    labels = torch.multinomial(F.softmax(logits / 1.7, 1), 1, generator=g)[:, 0]
    before = load_checkpoint(ckpt)
    fit = calibrate_checkpoint(ckpt, logits, labels, fitted_on="synthetic logits")
    after = load_checkpoint(ckpt)
    assert (
        after.calibration == fit.to_dict() and after.calibration["fitted_on"] == "synthetic logits"
    )
    assert after.calibration["temperature"] == pytest.approx(1.7, rel=0.05)
    for key, value in before.state_dict.items():  # everything else untouched
        assert torch.equal(value, after.state_dict[key])
    assert not list(ckpt.parent.glob(".*.tmp"))  # written atomically, no temp file left
    p = Predictor.from_checkpoint(ckpt)
    raw = Predictor(p.model, temperature=1.0)  # the same model, T = 1
    assert p.calibrated and p.temperature == fit.temperature
    images = np.random.default_rng(2).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    logp = torch.from_numpy(raw.probabilities(images)).double().log()  # log p = logits + const
    want = F.softmax(logp / fit.temperature, 1).numpy()
    np.testing.assert_allclose(p.probabilities(images), want, atol=1e-5)
