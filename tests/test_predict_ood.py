"""Out-of-distribution measurement: generated non-digits, AUROC of MSP and energy scores,
and the share ``predict`` calls unsure (``evaluate --ood``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import mnistcnn.data
from ckpt_files import write_checkpoint
from mnistcnn.artifact import load
from mnistcnn.cli import main
from mnistcnn.data.outliers import SHAPES, drawings, letters, noise
from mnistcnn.errors import SettingError
from mnistcnn.models import create_model
from mnistcnn.predict.ood import _compare, ood_scores, parse_ood_sets
from test_train_session import synthetic


def test_generated_outliers_are_seeded_and_varied():
    a, b = drawings(len(SHAPES), seed=1), drawings(len(SHAPES), seed=1)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
    assert not np.array_equal(np.asarray(drawings(1, 2)[0]), np.asarray(a[0]))
    ink = [float((np.asarray(im.convert("L")) < 128).mean()) for im in a]
    assert all(0.005 < f < 0.5 for f in ink), ink  # strokes on paper, not blank, not filled
    assert len(letters(5)) == 5 and letters(1)[0].mode == "RGB"
    n = noise(6, seed=0)
    assert n.shape == (6, 28, 28) and n.dtype == np.uint8 and (n.reshape(6, -1).max(1) == 255).all()


def test_auroc_and_unsure_share_from_scores():
    inside = (np.array([0.9, 0.95, 0.99]), np.array([5.0, 6.0, 7.0]))
    outside = (np.array([0.2, 0.6]), np.array([1.0, 2.0]))
    r = _compare("x", inside, outside, threshold=0.5)
    assert (r.auroc_msp, r.auroc_energy, r.unsure, r.count) == (1.0, 1.0, 0.5, 2)
    swapped = _compare("x", outside, inside, threshold=0.5)
    assert swapped.auroc_msp == 0.0
    blank = (np.array([0.0]), np.array([-np.inf]))  # a blank picture scores lowest
    assert _compare("x", inside, blank, threshold=0.5).auroc_energy == 1.0


def test_sets_are_checked():
    assert parse_ood_sets("fashion-mnist, noise", "mnist") == ["fashion-mnist", "noise"]
    with pytest.raises(SettingError, match="unknown OOD set 'cats'"):
        parse_ood_sets("cats", "mnist")
    with pytest.raises(SettingError, match="the model's own dataset"):
        parse_ood_sets("mnist", "mnist")


@pytest.fixture
def model_file(tmp_path, monkeypatch):
    monkeypatch.setattr(mnistcnn.data, "load_arrays", lambda *a, **kw: synthetic(30, 1))
    torch.manual_seed(0)
    return write_checkpoint(tmp_path / "run" / "best.pt", create_model("tutorial"))


def test_ood_scores_cover_each_set(model_file):
    report = ood_scores(load(model_file), ["drawings", "noise"], threshold=0.5, limit=12)
    assert report.in_count == 12 and [r.name for r in report.results] == ["drawings", "noise"]
    for r in report.results:
        assert r.count == 12 and 0 <= r.auroc_msp <= 1 and 0 <= r.auroc_energy <= 1
        assert 0 <= r.unsure <= 1
    assert report.to_dict()["results"][1]["name"] == "noise"


def test_cli_prints_and_writes_ood_json(model_file, monkeypatch):
    import mnistcnn.predict.ood as ood

    real = ood.ood_scores
    monkeypatch.setattr(ood, "ood_scores", lambda *a, **kw: real(*a, **{**kw, "limit": 10}))
    args = ["evaluate", str(model_file), "--ood", "noise", "--device", "cpu", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["ood"]["results"][0]["name"] == "noise"
    saved = json.loads((model_file.parent / "evaluation" / "ood.json").read_text())
    assert saved == record["ood"]
    bad = CliRunner().invoke(main, ["evaluate", str(model_file), "--ood", "mnist"])
    assert bad.exit_code == 1 and "the model's own dataset" in bad.output


def test_an_ood_set_that_cannot_be_had_is_skipped_not_fatal(model_file, monkeypatch):
    from mnistcnn.data import DataError

    real = mnistcnn.data.load_arrays

    def only_mnist(name, *a, **kw):
        if name == "kmnist":
            raise DataError("could not obtain 4 of the 4 files of dataset 'kmnist'\nmore")
        return real(name, *a, **kw)

    monkeypatch.setattr(mnistcnn.data, "load_arrays", only_mnist)
    report = ood_scores(load(model_file), ["kmnist", "noise"], threshold=0.5, limit=8)
    assert [r.name for r in report.results] == ["noise"]
    assert report.skipped == {"kmnist": "could not obtain 4 of the 4 files of dataset 'kmnist'"}
