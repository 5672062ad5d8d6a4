"""The command line: help texts, data commands and a smoke run of train, on real MNIST."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mnistcnn.cli import main

COMMANDS = [[], ["train"], ["evaluate"], ["models"], ["data"], ["data", "fetch"], ["data", "info"],
            ["data", "show"]]  # fmt: skip


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "main")
def test_help(args):
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    if args == ["train"]:
        for flag in (
            "--epochs",
            "--batch-size",
            "--lr",
            "--optimizer",
            "--seed",
            "--model",
            "--dataset",
            "--device",
            "--no-progress",
            "--data-root",
            "--mirror",
        ):
            assert flag in result.output


def test_python_dash_m_works():
    out = subprocess.run(
        [sys.executable, "-m", "mnistcnn", "models"], capture_output=True, text=True, check=True
    ).stdout
    assert "tutorial" in out and "156,640" in out


def test_models_json():
    result = CliRunner().invoke(main, ["models", "--json"])
    rows = json.loads(result.output)
    by_name = {r["name"]: r["parameters"] for r in rows}
    assert by_name["tutorial"] == 156_640


def test_data_show_labels(mnist_root):
    result = CliRunner().invoke(
        main,
        [
            "data",
            "show",
            "mnist",
            "--split",
            "train",
            "--index",
            "34",
            "--count",
            "5",
            "--data-root",
            str(mnist_root),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    # the first labels of MNIST's training set: 5 0 4 1 9 2 1 3 1 4 3 5 3 6 1 7 2 8 6 9 4 0 9 1 1 2
    # 4 3 2 7 3 8 6 9 0 5 6 0 7 6; samples 34..38 are 0 5 6 0 7
    assert [ln.split()[2] for ln in lines] == ["0", "5", "6", "0", "7"]
    assert lines[0].startswith("train[34]: label 0")


def test_data_show_tensor_and_grid(mnist_root, tmp_path):
    grid = tmp_path / "grid.png"
    result = CliRunner().invoke(
        main,
        [
            "data",
            "show",
            "mnist",
            "--index",
            "12",
            "--tensor",
            "--grid",
            str(grid),
            "--data-root",
            str(mnist_root),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "train[12]: label 3" in result.output
    assert "shape (1, 28, 28) dtype torch.float32" in result.output
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_show_index_past_end_is_a_clean_error(mnist_root):
    result = CliRunner().invoke(
        main,
        [
            "data",
            "show",
            "mnist",
            "--split",
            "test",
            "--index",
            "10000",
            "--data-root",
            str(mnist_root),
        ],
    )
    assert result.exit_code == 1
    assert "past the end of the test split (10000 images)" in result.output


def test_train_dry_run_writes_run_dir(mnist_root, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        ["train", "--dry-run", "--out", str(out), "--data-root", str(mnist_root), "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    assert "epoch   1" in result.output and f"run written to {out}" in result.output
    for name in ("config.json", "metrics.csv", "last.pt", "best.pt", "curves.png"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["max_steps"] == 10 and config["lr"] == 0.01 and config["batch_size"] == 64
    assert set(config["versions"]) == {"python", "torch", "torchvision", "mnistcnn"}
    # a second run into the same folder is refused, the first run is untouched
    before = (out / "last.pt").read_bytes()
    again = CliRunner().invoke(
        main,
        ["train", "--dry-run", "--out", str(out), "--data-root", str(mnist_root), "--no-progress"],
    )
    assert again.exit_code == 1 and "not empty" in again.output
    assert (out / "last.pt").read_bytes() == before


def test_train_bad_flags_are_clean_errors(tmp_path):
    r = CliRunner().invoke(main, ["train", "--epochs", "0"])
    assert r.exit_code == 2 and "--epochs" in r.output
    r = CliRunner().invoke(
        main,
        [
            "train",
            "--model",
            "nope",
            "--out",
            str(tmp_path / "x"),
            "--data-root",
            str(tmp_path / "d"),
            "--dry-run",
        ],
    )
    assert r.exit_code == 1
    assert "--model 'nope' is unknown; valid models: " in r.output


def test_data_show_grid_into_a_missing_folder_is_a_clean_error(mnist_root, tmp_path):
    grid = tmp_path / "no" / "such" / "grid.png"
    args = ["data", "show", "mnist", "--grid", str(grid), "--data-root", str(mnist_root)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert f"the folder {grid.parent} does not exist" in result.output
    assert "Traceback" not in result.output


def test_explain_images_refuse_decompression_bombs(tmp_path, monkeypatch):
    from PIL import Image

    from mnistcnn.explain.activations import load_image_file

    path = tmp_path / "big.png"
    Image.new("L", (64, 64), 255).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 4096 px > 2 x 100: a "bomb"
    with pytest.raises(ValueError, match="cannot read image .*big.png"):
        load_image_file(path)
    result = CliRunner().invoke(main, ["explain", "conv", "--image", str(path)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "cannot read image" in result.output


def test_data_show_grid_count_limit_is_checked_before_any_data(tmp_path):
    root = tmp_path / "data"
    args = ["data", "show", "mnist", "--data-root", str(root), "--count", "100000"]
    result = CliRunner().invoke(main, [*args, "--grid", str(tmp_path / "g.png")])
    assert result.exit_code == 2, result.output
    words = " ".join(result.output.split())
    assert "Invalid value for '--count': 100000 is too many for one --grid picture" in words
    assert "1..256 images" in words and not root.exists()
    result = CliRunner().invoke(main, ["data", "show", "mnist", "--data-root", str(root), "--count",
                                       "3", "--grid", str(tmp_path / "g.foo")])  # fmt: skip
    assert result.exit_code == 2 and "unknown picture format '.foo'" in result.output
    assert ".jpg" in result.output and ".png" in result.output and not root.exists()


def test_data_show_grid_writes_the_format_its_extension_names(mnist_root, tmp_path):
    magic = {"g.jpg": b"\xff\xd8\xff", "g.pdf": b"%PDF", "g.png": b"\x89PNG", "g.svg": b"<?xml"}
    for name, head in magic.items():
        args = ["data", "show", "mnist", "--count", "3", "--grid", str(tmp_path / name)]
        result = CliRunner().invoke(main, [*args, "--data-root", str(mnist_root)])
        assert result.exit_code == 0, result.output
        assert (tmp_path / name).read_bytes().startswith(head), name
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_train_regularization_flags_reach_the_config(mnist_root, tmp_path):
    out = tmp_path / "run"
    flags = ["--augment", "affine-flip-erase", "--label-smoothing", "0.05"]
    flags += ["--weight-decay", "1e-4", "--precision", "fp32", "--max-steps", "2"]
    args = ["train", "--out", str(out), "--data-root", str(mnist_root), "--no-progress"]
    result = CliRunner().invoke(main, args + flags)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["augment"] == "affine-flip-erase" and config["label_smoothing"] == 0.05
    assert config["weight_decay"] == 1e-4 and config["precision"] == "fp32"
    bad = CliRunner().invoke(main, ["train", "--augment", "mirror"])
    assert bad.exit_code == 2 and "'mirror' is not one of" in bad.output


def test_evaluate_gives_a_bf16_run_the_accuracy_its_training_recorded(mnist_root, tmp_path):
    """A bf16 recipe is evaluated under bf16 autocast by default, as training evaluated it."""
    from mnistcnn.engine.run_dir import read_metrics

    out = tmp_path / "run"
    args = ["--train-subset", "2000", "--epochs", "1", "--data-root", str(mnist_root)]
    result = CliRunner().invoke(
        main, ["train", "--recipe", "fast", *args, "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    recorded = read_metrics(out / "metrics.csv")[-1]["test_accuracy"]
    ev = ["evaluate", str(out / "best.pt"), "--data-root", str(mnist_root), "--json"]
    result = CliRunner().invoke(main, ev)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["precision"] == "bf16"
    assert data["accuracy"] == pytest.approx(recorded, abs=1e-9)
    result = CliRunner().invoke(main, [*ev[:-1], "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert "(precision fp32, --precision)" in result.output


def test_out_may_not_be_the_latest_link(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train", "--dry-run", "--out", "runs/latest"])
    assert result.exit_code == 2 and "runs/latest is the link to the newest run" in result.output
    assert not (tmp_path / "runs").exists()


def test_obtaining_a_dataset_says_where_it_came_from_once(shared_datasets, tmp_path):
    """Issue 13.9: the first (offline) fetch names its source in one line; later ones stay quiet."""
    args = [
        "data",
        "fetch",
        "mnist",
        "--data-root",
        str(tmp_path),
        "--mirror",
        str(shared_datasets),
    ]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    lines = [line for line in first.output.splitlines() if line.startswith("data: ")]
    assert lines == [
        f"data: mnist: all files: extracted from mirror dir {shared_datasets}/MNIST/raw/; "
        f"verified, into {tmp_path}/MNIST/raw"
    ]
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "data: " not in again.output


def test_data_commands_name_their_dataset_argument_not_a_flag():
    result = CliRunner().invoke(main, ["data", "info", "nope"])
    assert result.exit_code == 1 and "error: dataset 'nope' is unknown" in result.output
    assert "--dataset" not in result.output
