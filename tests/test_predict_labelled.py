"""``mnistcnn evaluate CKPT --images DIR``: your own labelled pictures, prepared as predict
prepares them; bad files listed and skipped; worst errors shown as given and as seen."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ckpt_files import write_checkpoint
from digits_synth import make_digits
from mnistcnn.artifact import load
from mnistcnn.cli import main
from mnistcnn.errors import SettingError
from mnistcnn.models import create_model
from mnistcnn.predict import Predictor
from mnistcnn.predict.labelled import evaluate_pictures


@pytest.fixture
def pictures(tmp_path):
    root = tmp_path / "mine"
    for i, d in enumerate(make_digits(12, seed=3)):
        folder = root / str(d.label)
        folder.mkdir(parents=True, exist_ok=True)
        d.image.save(folder / f"d{i}.png")
    (root / "7").mkdir(exist_ok=True)
    (root / "7" / "notes.txt").write_text("not a picture")
    return root


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    return write_checkpoint(tmp_path / "run" / "best.pt", create_model("tutorial"))


def test_accuracy_is_what_predict_says_about_the_same_pictures(pictures, checkpoint):
    model = load(checkpoint)
    result = evaluate_pictures(model, pictures)
    assert [p for p, _ in result.skipped] == [str(pictures / "7" / "notes.txt")]
    assert len(result.paths) == 12 and result.inputs.shape == (12, 28, 28)
    preds = Predictor(load(checkpoint), temperature=1.0).predict(result.paths)
    truth = [int(p.split("/")[-2]) for p in result.paths]
    said = [int(p.topk[0][0]) if p.topk else -1 for p in preds]
    right = sum(s == t for s, t in zip(said, truth))
    assert result.evaluation.accuracy == right / 12
    assert int(result.evaluation.confusion.sum()) == 12
    for got, pred in zip(result.inputs.numpy(), preds):
        assert np.array_equal(got, pred.input)  # the 28x28 the model saw


def test_cli_writes_a_report_with_both_views_of_the_worst_errors(pictures, checkpoint):
    result = CliRunner().invoke(
        main, ["evaluate", str(checkpoint), "--images", str(pictures), "--json", "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["num_samples"] == 12 and record["skipped"][0]["path"].endswith("notes.txt")
    [out] = checkpoint.parent.glob("evaluation-images-mine-*")  # -<hash of the folder's path>
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "worst_errors.png" in page and "worst_errors_pictures.png" in page
    assert (out / "worst_errors_pictures.png").is_file() and (
        out / "confusion_matrix.csv"
    ).is_file()


def test_images_and_ood_together_are_refused(pictures, checkpoint):
    args = ["evaluate", str(checkpoint), "--images", str(pictures), "--ood", "noise"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--ood measures a test split, not --images" in result.output


def test_a_folder_that_names_no_class_is_refused(pictures, checkpoint):
    (pictures / "cat").mkdir()
    with pytest.raises(SettingError, match=r"'cat' is none of the model's classes \(0, 1, 2"):
        evaluate_pictures(load(checkpoint), pictures)
    result = CliRunner().invoke(main, ["evaluate", str(checkpoint), "--images", str(pictures)])
    assert result.exit_code == 1 and "'cat' is none of the model's classes" in result.output
