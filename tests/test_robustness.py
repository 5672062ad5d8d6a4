"""The corruption benchmark: the checksummed cache of corrupted copies and
``mnistcnn evaluate --corruptions`` end to end (synthetic test split, a real MNIST subset)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import mnistcnn.data
from ckpt_files import write_checkpoint
from mnistcnn.cli import main
from mnistcnn.data import corruption_cache as cache
from mnistcnn.data.corruptions import CORRUPTIONS, corrupt
from mnistcnn.models import create_model
from test_train_session import synthetic


@pytest.fixture
def images():
    return synthetic(12, 0)[0].numpy()


def test_a_copy_is_cached_with_its_checksums_and_read_back(tmp_path, images):
    first = cache.corrupted_images(images, "zigzag", dataset="toy", root=tmp_path, seed=2)
    assert first.built and first.path == tmp_path / "toy-c" / "zigzag.npy"
    assert np.array_equal(first.images, corrupt(images, "zigzag", seed=2))
    manifest = json.loads((tmp_path / "toy-c" / "zigzag.json").read_text())
    assert manifest["sha256"] == first.sha256 == cache._sha256(first.path.read_bytes())
    assert manifest["source_sha256"] == cache._sha256(images.tobytes())
    assert (manifest["count"], manifest["seed"], manifest["corruption"]) == (12, 2, "zigzag")
    again = cache.corrupted_images(images, "zigzag", dataset="toy", root=tmp_path, seed=2)
    assert not again.built and np.array_equal(again.images, first.images)
    fewer = cache.corrupted_images(images, "zigzag", dataset="toy", root=tmp_path, seed=2, count=5)
    assert not fewer.built and np.array_equal(fewer.images, first.images[:5])
    assert sorted(p.name for p in (tmp_path / "toy-c").iterdir()) == ["zigzag.json", "zigzag.npy"]


def test_a_copy_whose_checksum_does_not_match_is_rebuilt(tmp_path, images, caplog):
    first = cache.corrupted_images(images, "fog", dataset="toy", root=tmp_path)
    assert first.path is not None
    np.save(first.path, np.zeros_like(first.images))  # edited behind the manifest's back
    second = cache.corrupted_images(images, "fog", dataset="toy", root=tmp_path)
    assert second.built and "is not the manifest's; rebuilding" in caplog.text
    assert np.array_equal(second.images, first.images)
    assert cache._sha256(first.path.read_bytes()) == first.sha256  # the file is whole again
    (tmp_path / "toy-c" / "fog.json").write_text("[1, 2]")  # a manifest that is not one
    third = cache.corrupted_images(images, "fog", dataset="toy", root=tmp_path)
    assert third.built and np.array_equal(third.images, first.images)


@pytest.mark.parametrize("change", ["seed", "images", "version"])
def test_a_copy_of_other_settings_or_images_is_rebuilt(tmp_path, images, monkeypatch, change):
    cache.corrupted_images(images, "rotate", dataset="toy", root=tmp_path, seed=0)
    seed, source = 0, images
    if change == "seed":
        seed = 1
    elif change == "images":
        source = images.copy()
        source[0, 0, 0] ^= 1
    else:
        monkeypatch.setattr(cache, "ALGORITHM_VERSION", cache.ALGORITHM_VERSION + 1)
    again = cache.corrupted_images(source, "rotate", dataset="toy", root=tmp_path, seed=seed)
    assert again.built
    assert np.array_equal(again.images, corrupt(source, "rotate", seed=seed))


def test_an_unwritable_root_builds_the_copy_without_caching(tmp_path, images, monkeypatch):
    import mnistcnn._io

    def refuse(path, *a, **kw):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(mnistcnn._io, "atomic_write", refuse)
    result = cache.corrupted_images(images, "stripe", dataset="toy", root=tmp_path)
    assert result.built and result.path is None
    assert np.array_equal(result.images, corrupt(images, "stripe"))


def test_a_short_request_builds_whole_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "CHUNK", 4)
    monkeypatch.setattr("mnistcnn.data.corruptions.CHUNK", 4)
    x = synthetic(10, 0)[0].numpy()
    part = cache.corrupted_images(x, "impulse_noise", dataset="toy", root=tmp_path, count=3)
    assert len(part.images) == 3
    assert json.loads((tmp_path / "toy-c" / "impulse_noise.json").read_text())["count"] == 4
    whole = cache.corrupted_images(x, "impulse_noise", dataset="toy", root=tmp_path, count=10)
    assert whole.built and np.array_equal(whole.images[:3], part.images)


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(mnistcnn.data, "load_arrays", lambda *a, **kw: synthetic(24, 1))
    torch.manual_seed(0)
    return str(write_checkpoint(tmp_path / "run" / "best.pt", create_model("tutorial")))


def _evaluate(checkpoint, tmp_path, *flags):
    args = ["evaluate", checkpoint, "--device", "cpu", "--data-root", str(tmp_path / "data")]
    return CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out"), *flags])


def test_cli_measures_each_corruption_and_writes_report_and_json(checkpoint, tmp_path):
    text = _evaluate(checkpoint, tmp_path, "--corruptions", "stripe,translate")
    assert text.exit_code == 0, text.output
    assert "mean of the corruptions" in text.output and "worst: " in text.output
    assert "corruption_examples.png" in text.output
    flags = ["--corruptions", "stripe,translate", "--corruption-limit", "20"]
    result = _evaluate(checkpoint, tmp_path, *flags, "--json")  # fewer: from the cache
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)["corruptions"]
    assert set(record) == {
        "dataset", "seed", "num_samples", "clean_accuracy", "mean_accuracy", "mean_error",
        "worst", "corruptions", "cache",
    }  # fmt: skip
    rows = record["corruptions"]
    assert [r["name"] for r in rows] == ["stripe", "translate"] and record["num_samples"] == 20
    assert set(rows[0]) == {
        "name", "accuracy", "loss", "num_samples", "cached", "sha256", "seconds", "error"
    }  # fmt: skip
    assert all(r["cached"] for r in rows)
    mean = (rows[0]["accuracy"] + rows[1]["accuracy"]) / 2
    assert record["mean_accuracy"] == pytest.approx(mean)
    worst = min(rows, key=lambda r: r["accuracy"])
    assert record["worst"] == {"name": worst["name"], "accuracy": worst["accuracy"]}
    assert record["cache"] == str(tmp_path / "data" / "mnist-c")
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "Corruptions (MNIST-C)" in page and "corruption_examples.png" in page
    assert f"{100 * rows[1]['accuracy']:.2f}%" in page
    assert (tmp_path / "out" / "corruption_examples.png").stat().st_size > 1000
    manifest = json.loads((tmp_path / "data" / "mnist-c" / "stripe.json").read_text())
    assert manifest["count"] == 24  # the limited run kept the longer copy


def test_bare_flag_measures_all_15(checkpoint, tmp_path):
    result = _evaluate(checkpoint, tmp_path, "--corruption-limit", "8", "--json", "--corruptions")
    assert result.exit_code == 0, result.output
    names = [r["name"] for r in json.loads(result.output)["corruptions"]["corruptions"]]
    assert names == list(CORRUPTIONS)


def test_cli_names_the_flag_of_a_bad_corruption(checkpoint, tmp_path):
    result = _evaluate(checkpoint, tmp_path, "--corruptions", "fog,snow")
    assert result.exit_code == 1
    assert "--corruptions 'snow': no such corruption; known: all, shot_noise" in result.output
    pictures = tmp_path / "pictures"
    (pictures / "7").mkdir(parents=True)
    both = _evaluate(checkpoint, tmp_path, "--images", str(pictures), "--corruptions")
    assert both.exit_code == 2 and "--corruptions measures a test split" in both.output
    alone = _evaluate(checkpoint, tmp_path, "--corruption-limit", "5")
    assert alone.exit_code == 2 and "--corruption-limit goes with --corruptions" in alone.output


def test_real_mnist_digits_keep_their_ink_under_translate(mnist_root):
    x, _ = mnistcnn.data.load_arrays("mnist", train=False, root=mnist_root)
    real = x[:20].numpy()
    moved = corrupt(real, "translate", seed=0)
    inside = real[:, 3:-3, 3:-3].sum(axis=(1, 2)) == real.sum(axis=(1, 2))  # no ink lost
    assert inside.sum() >= 10
    assert np.array_equal(moved[inside].sum(axis=(1, 2)), real[inside].sum(axis=(1, 2)))
