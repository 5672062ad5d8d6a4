"""Ensembles and test-time augmentation in predict: EnsemblePredictor, --ensemble, --tta."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ckpt_files import write_checkpoint
from digits_synth import digit
from mnistcnn.artifact import TrainedModel
from mnistcnn.cli import main
from mnistcnn.errors import CheckpointError
from mnistcnn.models import create_model
from mnistcnn.predict import Predictor
from mnistcnn.predict.ensemble import EnsemblePredictor
from mnistcnn.predict.tta import DEFAULT_VIEWS, IDENTITY, View, apply_views
from test_predict_inputs import encoded
from test_predict_predictor import make_checkpoint, pictures

KEYS = ["path", "label", "probability", "topk", "unsure", "error"]


def images(n: int = 5, seed: int = 0) -> np.ndarray:
    """uint8 (n, 28, 28): a white square of random size and place on black, per image."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 28, 28), np.uint8)
    for k in range(n):
        y, x = rng.integers(4, 14, 2)
        out[k, y : y + rng.integers(6, 12), x : x + rng.integers(3, 12)] = 255
    return out


def member(seed: int, temperature: float | None = None, **kw: object) -> Predictor:
    """A Predictor over a seeded random tutorial model made in memory."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = create_model("tutorial", num_classes=10)
    return Predictor(TrainedModel(net, [0.1307], [0.3081], **kw), temperature=temperature)  # type: ignore[arg-type]


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    return make_checkpoint(tmp_path / "a.pt", seed=0), make_checkpoint(tmp_path / "b.pt", seed=1)


def test_ensemble_is_the_mean_of_its_calibrated_members() -> None:
    a, b = member(0, temperature=0.1), member(1, temperature=0.02)  # each its own T
    x = images()
    pa, pb = a.probabilities(x), b.probabilities(x)
    assert np.abs(pa - pb).max() > 0.3  # different models: the mean means something
    ens = EnsemblePredictor([a, b])
    got = ens.probabilities(x)
    assert got.dtype == np.float32 and got.shape == (5, 10)
    np.testing.assert_allclose(got, (pa + pb) / 2, rtol=0, atol=1e-7)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-6)


def test_one_member_identity_view_is_bit_for_bit_the_plain_predictor() -> None:
    a = member(0)
    x = images()
    ens = EnsemblePredictor([a], IDENTITY)
    assert np.array_equal(ens.probabilities(x), a.probabilities(x))
    plain = a.predict(pictures())
    for p, q in zip(ens.predict(pictures()), plain):
        assert p.probabilities is not None and q.probabilities is not None
        assert np.array_equal(p.probabilities, q.probabilities) and p.label == q.label


def test_tta_is_the_mean_over_the_views() -> None:
    a = member(0)
    x = images(3)
    views = (View(), View(dx=1), View(angle=8.0))
    got = EnsemblePredictor([a], views).probabilities(x)
    shifted = np.zeros_like(x)
    shifted[:, :, 1:] = x[:, :, :-1]  # one pixel right, zeros moved in
    rotated = apply_views(x, [View(angle=8.0)])
    want = (a.probabilities(x) + a.probabilities(shifted) + a.probabilities(rotated)) / 3
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)  # batch size changes the ulps


def test_views_shift_exactly_and_rotate_clockwise() -> None:
    x = np.zeros((1, 28, 28), np.uint8)
    x[0, 4:24, 13:15] = 200  # a vertical bar
    x[0, 4:7, 10:18] = 250  # its top
    v = apply_views(x, [View(), View(dx=-1), View(dy=1), View(angle=90.0)])
    assert v.shape == (4, 28, 28) and v.dtype == np.uint8
    assert np.array_equal(v[0], x[0])
    assert np.array_equal(v[1], np.roll(x[0], -1, axis=1))  # nothing reaches the border
    assert np.array_equal(v[2], np.roll(x[0], 1, axis=0))
    rows, cols = np.nonzero(v[3] > 100)
    assert np.ptp(cols) > 15 and np.ptp(rows) <= 8  # horizontal now
    top_rows, top_cols = np.nonzero(v[3] > 225)
    assert top_cols.min() > 20 and top_rows.min() >= 10 and top_rows.max() < 18  # top -> right
    assert [w.name for w in DEFAULT_VIEWS] == [
        "identity",
        "shift(+1,+0)",
        "shift(-1,+0)",
        "shift(+0,+1)",
        "shift(+0,-1)",
    ]


def test_members_must_agree_on_classes(two: tuple[Path, Path], tmp_path: Path) -> None:
    other = write_checkpoint(
        tmp_path / "letters.pt",
        create_model("tutorial", num_classes=10),
        classes=list("abcdefghij"),
        dataset="",
    )
    with pytest.raises(CheckpointError, match=r"letters\.pt: its classes .* differ from .*a\.pt"):
        EnsemblePredictor.from_checkpoints([two[0], other])


def test_members_must_agree_on_preparation() -> None:
    other = member(1, preparation={"method": "kmnist", "box": 28, "canvas": 28})
    with pytest.raises(CheckpointError, match="picture preparation"):
        EnsemblePredictor([member(0), other])
    with pytest.raises(ValueError, match="at least one"):
        EnsemblePredictor([])


def test_cli_json_names_members_and_views(two: tuple[Path, Path], tmp_path: Path) -> None:
    pic = tmp_path / "three.png"
    pic.write_bytes(encoded(digit("3")))
    runner = CliRunner()
    a, b = map(str, two)
    plain = runner.invoke(main, ["predict", a, str(pic), "--json"])
    assert plain.exit_code == 0, plain.output
    assert list(json.loads(plain.stdout)[0]) == KEYS  # unchanged without the new flags
    r = runner.invoke(main, ["predict", a, "--ensemble", b, "--tta", str(pic), "--json"])
    assert r.exit_code == 0, r.output
    (obj,) = json.loads(r.stdout)
    assert list(obj) == [*KEYS, "members", "tta"]
    assert [m["checkpoint"] for m in obj["members"]] == [a, b]
    assert obj["members"][0] == {"checkpoint": a, "temperature": 1.0, "calibrated": False}
    assert obj["tta"] == [v.name for v in DEFAULT_VIEWS]
    want = EnsemblePredictor.from_checkpoints([a, b], tta=True).predict([str(pic)])[0]
    assert obj["probability"] == pytest.approx(want.probability, abs=1e-7)
    r = runner.invoke(main, ["predict", a, "--ensemble", b, str(pic)])
    assert r.exit_code == 0 and "2 models averaged" in r.stderr
