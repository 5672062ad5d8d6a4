"""The tutorial recipe on real MNIST (read through --mirror from ../shared/datasets)."""

import json

import pytest
from click.testing import CliRunner

from mnistcnn.cli import main
from mnistcnn.config import recipe_config
from mnistcnn.engine import evaluate, load_checkpoint, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def one_epoch_run(mnist_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("tutorial") / "run"
    config = recipe_config("tutorial", epochs=1, seed=0)
    return train(config, out=out, data_root=mnist_root)


def test_one_tutorial_epoch_reaches_96_5_percent(one_epoch_run):
    row = one_epoch_run.history.last
    assert row["epoch"] == 1
    assert row["test_accuracy"] >= 0.965, row
    assert 0.0 < row["test_loss"] < 0.15
    assert row["lr"] == 0.01
    ckpt = load_checkpoint(one_epoch_run.run_dir / "last.pt")
    assert ckpt.step == 938  # ceil(60000 / 64): nothing dropped
    assert ckpt.normalization == {"mean": [0.0], "std": [1.0]}  # ToTensor only
    assert ckpt.classes[:2] == ["0 - zero", "1 - one"]


def test_reloaded_last_pt_gives_the_same_accuracy(one_epoch_run, mnist_root, tmp_path):
    result = evaluate([one_epoch_run.run_dir / "last.pt"], data_root=mnist_root, out=tmp_path)
    assert result.num_samples == 10_000
    assert result.accuracy == pytest.approx(one_epoch_run.history.last["test_accuracy"], abs=1e-9)
    assert result.loss == pytest.approx(one_epoch_run.history.last["test_loss"], rel=1e-4)
    assert int(result.confusion.sum()) == 10_000
    assert int(result.confusion.trace()) == round(result.accuracy * 10_000)
    assert sum(r["support"] for r in result.per_class) == 10_000
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 1000
    lines = (tmp_path / "confusion_matrix.csv").read_text().splitlines()
    assert len(lines) == 11 and lines[0].startswith("true\\predicted,")


def test_evaluate_cli_json(one_epoch_run, mnist_root, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            str(one_epoch_run.run_dir / "best.pt"),
            "--json",
            "--data-root",
            str(mnist_root),
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["accuracy"] == pytest.approx(one_epoch_run.history.last["test_accuracy"])
    assert len(payload["per_class"]) == 10
    assert set(payload["per_class"][0]) == {"class", "precision", "recall", "f1", "support"}
    assert (tmp_path / "report.html").is_file()
    assert (tmp_path / "worst_errors.png").read_bytes()[:4] == b"\x89PNG"


def test_explain_activations_of_a_test_digit(one_epoch_run, mnist_root, tmp_path):
    args = ["explain", "activations", str(one_epoch_run.run_dir / "best.pt"), "mnist:test:0",
            "--out", str(tmp_path), "--data-root", str(mnist_root), "--json"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["label"] == 7 and payload["predicted"] == 7  # test image 0 is a clear 7
    assert payload["probabilities"][7] > 0.9
    assert payload["feature_maps"] == {"conv1": [10, 28, 28], "conv2": [20, 10, 10]}
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    expected = ["feature_maps_1.png", "feature_maps_2.png", "input.png", "kernels.png"]
    assert names == [*expected, "saliency.png"]


def test_explain_invariance_shift_hurts_more_than_small_rotation(
    one_epoch_run, mnist_root, tmp_path
):
    args = ["explain", "invariance", str(one_epoch_run.run_dir / "best.pt"), "--limit", "300",
            "--out", str(tmp_path), "--data-root", str(mnist_root), "--json"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    points = {(p["transform"], p["value"]): p["accuracy"] for p in payload["points"]}
    assert points[("shift", 0.0)] == pytest.approx(payload["plain_accuracy"], abs=1e-6)
    assert payload["plain_accuracy"] > 0.95
    assert points[("shift", 6.0)] < 0.5 < points[("rotation", 5.0)]
    rows = (tmp_path / "invariance.csv").read_text().splitlines()
    assert len(rows) == 1 + 7 + 10 + 11  # header, shifts, angles, scales
    assert (tmp_path / "invariance.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_without_out_never_overwrites_the_run_report(one_epoch_run, mnist_root):
    run = one_epoch_run.run_dir
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    ckpt = str(run / "best.pt")
    args = ["evaluate", ckpt, ckpt, "--data-root", str(mnist_root), "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    (folder,) = run.glob("evaluation-ensemble-2-*")  # named by a hash of the members
    assert (folder / "report.html").is_file()
    other = ["evaluate", ckpt, str(run / "last.pt"), "--data-root", str(mnist_root), "--json"]
    assert CliRunner().invoke(main, other).exit_code == 0
    assert len(list(run.glob("evaluation-ensemble-2-*"))) == 2  # another set: its own folder
    refused = CliRunner().invoke(main, ["evaluate", ckpt, "--out", str(run)])
    assert refused.exit_code == 2 and "training run's folder" in refused.output
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
