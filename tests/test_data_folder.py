"""Your own labelled pictures as a dataset: ``folder:PATH`` (prepare, cache, train, ``--init``)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageDraw

import mnistcnn
from ckpt_files import write_checkpoint
from mnistcnn.artifact import TrainedModel
from mnistcnn.cli import main
from mnistcnn.config import TrainConfig
from mnistcnn.data import DataError, get_spec, pixel_stats
from mnistcnn.data.loaders import split_indices
from mnistcnn.engine import train as engine_train
from mnistcnn.engine.init import init_weights
from mnistcnn.engine.model import trained_model
from mnistcnn.engine.sources import build_sources
from mnistcnn.errors import SettingError
from mnistcnn.models import classifier_name, create_model, list_models
from mnistcnn.predict import Predictor
from mnistcnn.predict.folder_dataset import prepare_folder

CLASSES = ("circle", "cross", "bar")


def _draw(kind: str, rng: np.random.Generator) -> Image.Image:
    """One dark-on-light picture of a shape, at a random size, place and stroke width."""
    w, h = int(rng.integers(60, 140)), int(rng.integers(60, 140))
    paper = int(rng.integers(200, 256))
    img = Image.new("RGB", (w, h), (paper, paper, paper))
    draw = ImageDraw.Draw(img)
    s = int(rng.integers(24, min(w, h) - 8))
    x0, y0 = int(rng.integers(2, w - s - 2)), int(rng.integers(2, h - s - 2))
    ink = tuple(int(v) for v in rng.integers(0, 80, 3))
    width = int(rng.integers(3, 7))
    if kind == "circle":
        draw.ellipse((x0, y0, x0 + s, y0 + s), outline=ink, width=width)
    elif kind == "cross":
        draw.line((x0, y0, x0 + s, y0 + s), fill=ink, width=width)
        draw.line((x0, y0 + s, x0 + s, y0), fill=ink, width=width)
    else:
        draw.line((x0 + s // 2, y0, x0 + s // 2, y0 + s), fill=ink, width=width)
    return img


def make_picture_folder(root: Path, per_class: int = 30, seed: int = 0) -> Path:
    """``root/<class>/<i>.png|jpg`` for 3 classes, plus a corrupt JPEG and a text file."""
    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        sub = root / kind
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = _draw(kind, rng)
            if i % 3 == 0:
                img.save(sub / f"{i:03d}.jpg", quality=90)
            else:
                img.save(sub / f"{i:03d}.png")
    (root / "cross" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)
    (root / "bar" / "notes.txt").write_text("not a picture\n")
    (root / "bar" / ".DS_Store").write_bytes(b"\x00\x01")  # hidden: not listed
    (root / "README.txt").write_text("in no class\n")
    return root


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 30 pictures (PNG and JPEG), a corrupt JPEG and a text file; never modified."""
    return make_picture_folder(tmp_path_factory.mktemp("pictures") / "shapes")


@pytest.fixture(scope="module")
def prepared(pictures: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """(data root, PreparedFolder) of ``pictures``, prepared once for the module."""
    root = tmp_path_factory.mktemp("data")
    return root, prepare_folder(pictures, root=root)


def _config(pictures: Path, **changes: Any) -> TrainConfig:
    base = dict(
        dataset=f"folder:{pictures}", val_fraction=0.2, epochs=1, batch_size=16, device="cpu"
    )
    return TrainConfig(**{**base, **changes})


def test_every_picture_is_prepared_as_predict_prepares_it_and_bad_files_are_listed(
    pictures, prepared
):
    _, result = prepared
    cache = result.cache
    assert cache.classes == ["bar", "circle", "cross"]  # the folder names, sorted
    assert cache.images.dtype == torch.uint8 and tuple(cache.images.shape) == (90, 28, 28)
    assert torch.bincount(cache.labels).tolist() == [30, 30, 30]
    assert dict(result.skipped) == {
        "README.txt": "in no class folder (PATH/<class>/<picture>)",
        "bar/notes.txt": "a text file, not an image",
        "cross/broken.jpg": "truncated or corrupt image: a JPEG image that cannot be read",
    }  # and the hidden bar/.DS_Store is not listed at all
    assert not any(".DS_Store" in f for f in cache.files)
    # what `mnistcnn predict` shows the model, picture by picture
    model = TrainedModel(create_model("tutorial", num_classes=3), [0.0], [1.0], classes=CLASSES)
    for i in (0, 1, 45, 89):  # a JPEG, a PNG, from each class
        pred = Predictor(model).predict([str(pictures / cache.files[i])])[0]
        assert np.array_equal(pred.input, cache.images[i].numpy()), cache.files[i]
    assert cache.images.reshape(90, -1).amax(1).min() >= 240  # every picture has solid ink


def test_the_cache_is_reused_and_rebuilt_when_a_file_changes(pictures, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(pictures, folder)
    root = tmp_path / "data"
    first = prepare_folder(folder, root=root)
    assert not first.reused and first.path.parent == root / "folders"
    stamp = first.path.stat().st_mtime_ns
    again = prepare_folder(f"folder:{folder}", root=root)
    assert again.reused and again.path == first.path and first.path.stat().st_mtime_ns == stamp
    assert torch.equal(again.cache.images, first.cache.images)
    # one picture replaced by another: the cache is made again, with the new picture
    index = first.cache.files.index("circle/001.png")
    Image.open(folder / "bar" / "002.png").save(folder / "circle" / "001.png")
    os.utime(folder / "circle" / "001.png", ns=(stamp + 10**9, stamp + 10**9))
    changed = prepare_folder(folder, root=root)
    assert not changed.reused and changed.cache.key != first.cache.key
    assert not torch.equal(changed.cache.images[index], first.cache.images[index])
    # other preparation settings: another key, prepared again
    assert not prepare_folder(folder, root=root, invert="yes").reused
    assert [p.name for p in (root / "folders").iterdir()] == [first.path.name]  # one file


def test_train_from_python_on_a_prepared_folder(pictures, prepared, tmp_path):
    root, _ = prepared
    result = mnistcnn.train(_config(pictures, max_steps=3), out=tmp_path / "run", data_root=root)
    model = mnistcnn.load(result.run_dir / "best.pt")
    assert model.classes == ["bar", "circle", "cross"]
    assert model.dataset == f"folder:{pictures}"
    row = result.history.rows[-1]
    assert "val_accuracy" in row and "test_accuracy" not in row  # no test split in a folder
    assert result.history.steps == 3
    report = (result.run_dir / "report.html").read_text()
    assert "validation split)</b>: 18 images" in report  # round(90 * 0.2)
    assert "chosen on the validation split it is evaluated on" in report


def test_train_from_python_prepares_the_folder_first(pictures, tmp_path):
    """``mnistcnn.train`` on a folder never prepared: prepared as the command does, then trained."""
    folder, root = tmp_path / "copy", tmp_path / "data"
    shutil.copytree(pictures, folder)
    config = _config(folder, max_steps=2)
    result = mnistcnn.train(config, out=tmp_path / "run", data_root=root, report=False)
    assert result.history.steps == 2 and not result.folder.reused
    assert len(result.folder.cache.files) == 90
    assert ("bar/notes.txt", "a text file, not an image") in result.folder.skipped
    (folder / "bar" / "000.jpg").unlink()  # changed since: prepared again, not refused
    again = mnistcnn.train(config, out=tmp_path / "run2", data_root=root, report=False)
    assert not again.folder.reused and len(again.folder.cache.files) == 89
    third = mnistcnn.train(config, out=tmp_path / "run3", data_root=root, dry_run=True)
    assert third.folder.reused and third.history.steps == 2


def test_the_cli_prepares_lists_skipped_files_and_reuses_the_cache(pictures, tmp_path, monkeypatch):
    stub = lambda run_dir, *a, **k: run_dir / "report.html"  # noqa: E731 - the report: tested above
    monkeypatch.setattr("mnistcnn.engine.session.write_run_report", stub)
    args = ["train", "--no-progress", "--dataset", f"folder:{pictures}", "--val-fraction", "0.2"]
    args += ["--epochs", "1", "--max-steps", "2", "--data-root", str(tmp_path / "data")]
    first = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    assert "90 pictures in 3 classes (bar 30, circle 30, cross 30)" in first.output
    assert "prepared as `mnistcnn predict` prepares pictures" in first.output
    assert "skipped bar/notes.txt: a text file, not an image" in first.stderr
    assert "skipped cross/broken.jpg: truncated or corrupt image" in first.stderr
    assert "final validation accuracy" in first.output
    second = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b")])
    assert second.exit_code == 0, second.output
    assert "cache reused" in second.output and "skipped bar/notes.txt" in second.stderr
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # seeded: the same run twice


def test_folder_errors_are_clear(pictures, prepared, tmp_path):
    root, _ = prepared
    with pytest.raises(SettingError, match="val_fraction must be > 0 for a picture folder"):
        TrainConfig(dataset=f"folder:{pictures}")
    out = CliRunner().invoke(main, ["train", "--dataset", f"folder:{pictures}"])
    assert out.exit_code == 1 and "--val-fraction must be > 0 for a picture folder" in out.stderr
    with pytest.raises(SettingError, match="does not exist"):
        mnistcnn.train(_config(tmp_path / "nowhere"), out=tmp_path / "r0", data_root=root)
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(b"")
    with pytest.raises(SettingError, match="no class folders"):
        prepare_folder(tmp_path / "flat", root=root)
    with pytest.raises(DataError, match="not prepared yet.*prepare_folder"):  # the engine alone
        engine_train(_config(pictures), out=tmp_path / "r1", data_root=tmp_path / "empty")
    (tmp_path / "junk" / "a").mkdir(parents=True)
    (tmp_path / "junk" / "a" / "x.txt").write_text("text")
    with pytest.raises(SettingError, match="no readable picture.*a/x.txt: a text file"):
        prepare_folder(tmp_path / "junk", root=root)


def test_a_folder_changed_after_preparing_is_refused_by_training(pictures, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(pictures, folder)
    prepare_folder(folder, root=tmp_path / "data")
    (folder / "bar" / "000.jpg").unlink()
    with pytest.raises(DataError, match="changed since"):  # the engine alone never prepares
        engine_train(_config(folder), out=tmp_path / "run", data_root=tmp_path / "data")


def _ten_class_checkpoint(path: Path, model: str = "tutorial") -> Path:
    torch.manual_seed(5)
    return write_checkpoint(path, create_model(model), model_name=model)


def test_init_with_other_classes_replaces_only_the_classifier(pictures, prepared, tmp_path):
    root, _ = prepared
    source = _ten_class_checkpoint(tmp_path / "mnist.pt")
    config = _config(pictures, init=str(source), optimizer="sgd", lr=1e-30, momentum=0.0)
    result = mnistcnn.train(
        config.replace(max_steps=1), out=tmp_path / "run", data_root=root, report=False
    )
    tuned = mnistcnn.load(result.run_dir / "last.pt")
    before = torch.load(source, weights_only=True)["state_dict"]
    after = tuned.state_dict()
    for key in before:
        if key.startswith("net.fc3."):
            assert after[key].shape[0] == 3  # a new head of 3 classes
        else:
            assert torch.equal(after[key], before[key]), key  # lr 1e-30: no change
    assert tuned.checkpoint.config["init"] == str(source)
    record = json.loads((result.run_dir / "config.json").read_text())
    assert record["init"] == str(source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert record["init_source"] == {"path": str(source), "sha256": digest}
    assert record["folder_source"]["pictures"] == 90
    assert ["bar/notes.txt", "a text file, not an image"] in record["folder_source"]["skipped"]


def test_init_with_the_same_classes_copies_every_weight(pictures, prepared, tmp_path):
    root, _ = prepared
    first = mnistcnn.train(
        _config(pictures, max_steps=2), out=tmp_path / "a", data_root=root, report=False
    )
    seed_source = first.run_dir / "last.pt"
    model = trained_model(_config(pictures, seed=1), _sources(root, pictures))
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    assert init_weights(model, seed_source, "tutorial") == []
    saved = torch.load(seed_source, weights_only=True)["state_dict"]
    assert all(torch.equal(model.state_dict()[k], saved[k]) for k in saved)
    assert not torch.equal(fresh["net.conv1.weight"], saved["net.conv1.weight"])


def _sources(root: Path, pictures: Path) -> Any:
    return build_sources(_config(pictures), torch.device("cpu"), data_root=root)


def test_init_from_another_model_names_both(pictures, prepared, tmp_path):
    root, _ = prepared
    source = _ten_class_checkpoint(tmp_path / "fast.pt", "fastcnn")
    with pytest.raises(SettingError, match="holds model 'fastcnn', this run trains 'tutorial'"):
        mnistcnn.train(_config(pictures, init=str(source)), out=tmp_path / "r", data_root=root)
    out = CliRunner().invoke(
        main,
        ["train", "--dataset", f"folder:{pictures}", "--val-fraction", "0.2", "--init",
         str(source), "--data-root", str(root), "--out", str(tmp_path / "r2")],
    )  # fmt: skip
    assert out.exit_code == 1 and "--init" in out.stderr and "'fastcnn'" in out.stderr


@pytest.mark.parametrize("name", list_models())
def test_every_model_declares_its_classifier_layer(name):
    net = create_model(name, num_classes=7)
    layer = dict(net.named_modules())[classifier_name(name)]
    assert isinstance(layer, torch.nn.Linear) and layer.out_features == 7


def test_normalization_comes_from_the_training_split(pictures, prepared):
    root, result = prepared
    sources = build_sources(_config(pictures, normalize=True), torch.device("cpu"), data_root=root)
    train_idx, _ = split_indices(90, 0.2, 0)
    mean, std = pixel_stats(result.cache.images[train_idx].numpy())
    assert sources.mean == [round(mean, 4)] and sources.std == [round(std, 4)]
    assert list(sources.evals) == ["val"] and sources.evals["val"].num_samples == 18


def test_init_keeps_the_classifier_when_folders_name_the_same_classes_shortly(tmp_path):
    source = _ten_class_checkpoint(tmp_path / "mnist.pt")  # classes "0".."9"
    mnist_names = list(get_spec("mnist").classes)  # "0 - zero", ...
    write_checkpoint(tmp_path / "named.pt", create_model("tutorial"), classes=mnist_names)
    folder_classes = [str(i) for i in range(10)]  # what folders 0/ .. 9/ are called
    for path in (source, tmp_path / "named.pt"):
        torch.manual_seed(9)
        model = TrainedModel(
            create_model("tutorial"), [0.0], [1.0], classes=folder_classes, model_name="tutorial",
            model_kwargs={"num_classes": 10, "in_chans": 1},
        )  # fmt: skip
        assert init_weights(model, path, "tutorial") == []  # nothing left as initialized
        saved = torch.load(path, weights_only=True)["state_dict"]
        assert torch.equal(model.state_dict()["net.fc3.weight"], saved["net.fc3.weight"])


def test_a_resume_on_changed_pictures_is_refused_unless_forced(pictures, tmp_path):
    folder, root = tmp_path / "copy", tmp_path / "data"
    shutil.copytree(pictures, folder)
    prepare_folder(folder, root=root)
    config = _config(folder, epochs=1, max_steps=None, train_subset=16)
    run = mnistcnn.train(config, out=tmp_path / "run", data_root=root, report=False).run_dir
    (folder / "bar" / "000.jpg").unlink()
    prepare_folder(folder, root=root)  # what `mnistcnn train --resume` does first
    more = config.replace(epochs=2)
    with pytest.raises(SettingError, match="changed since the run started"):
        mnistcnn.train(more, resume=run, data_root=root, report=False)
    result = mnistcnn.train(more, resume=run, data_root=root, report=False, force=True)
    assert [r["epoch"] for r in result.history.rows] == [1, 2]


def test_init_replaces_googlenets_auxiliary_classifiers_too(pictures, prepared, tmp_path):
    """GoogLeNet's aux heads also output one row per class: replaced with ``fc``, the rest kept."""
    root, _ = prepared
    source = _ten_class_checkpoint(tmp_path / "g.pt", "googlenet")
    model = trained_model(_config(pictures, model="googlenet"), _sources(root, pictures))
    replaced = init_weights(model, source, "googlenet")
    assert {k.rsplit(".", 1)[0] for k in replaced} == {"fc", "aux1.fc2", "aux2.fc2"}
    saved = torch.load(source, weights_only=True)["state_dict"]
    own = model.state_dict()
    assert own["net.fc.weight"].shape[0] == 3 and own["net.aux1.fc2.weight"].shape[0] == 3
    kept = [k for k in saved if k[4:] not in replaced]
    assert len(kept) > 300 and all(torch.equal(own[k], saved[k]) for k in kept)


def test_an_empty_class_folder_is_refused_naming_it(pictures, tmp_path):
    """As torchvision's ImageFolder: a class with no readable picture is an error, not a class."""
    folder = tmp_path / "shapes"
    shutil.copytree(pictures, folder)
    (folder / "empty").mkdir()
    (folder / "junk").mkdir()
    (folder / "junk" / "notes.txt").write_text("not a picture")
    with pytest.raises(SettingError, match=r"no readable picture in class folder\(s\) empty, junk"):
        prepare_folder(folder, root=tmp_path / "data")
