"""torchvision's ImageNet networks as they are (``torchvision:NAME``): top-5 of the 1,000
categories for photos with ImageNet preprocessing, feature maps at a few depths, GoogLeNet's
inception branches, and the layer table. Weights: generated stand-ins in a temporary hub cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torchvision.models import get_model, get_model_weights

from mnistcnn.cli import main
from mnistcnn.errors import SettingError
from mnistcnn.explain.imagenet import imagenet_activations
from mnistcnn.predict.imagenet import load_imagenet_model, predict_photos, prepare_photo
from tvnets_weights import accept_generated, generated, into_cache


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("standins")
    return {m: generated(folder, m) for m in ("googlenet", "resnet50")}


@pytest.fixture
def hub(tmp_path, monkeypatch, standins) -> Path:
    """A TORCH_HOME whose hub cache holds the stand-ins, their hashes accepted."""
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    for path, _ in standins.values():
        into_cache(home, path)
    accept_generated(monkeypatch, {m: d for m, (_, d) in standins.items()})
    return home


@pytest.fixture
def photo(tmp_path) -> Path:
    """A 300x200 RGB picture (a colour gradient with a square), seed-free."""
    yy, xx = np.mgrid[0:200, 0:300]
    rgb = np.stack([xx * 255 // 299, yy * 255 // 199, (xx + yy) % 256], -1).astype(np.uint8)
    rgb[60:140, 100:180] = (250, 30, 30)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb, "RGB").save(path)
    return path


def test_top5_is_torchvisions_own_pipeline(hub, standins, photo):
    model = load_imagenet_model("torchvision:resnet50")
    (pred,) = predict_photos(model, [str(photo)], top_k=5)
    # torchvision's own way: the builder, the state dict, weights.transforms() (it normalizes)
    weights = get_model_weights("resnet50").DEFAULT
    ref = get_model("resnet50", weights=None).eval()
    ref.load_state_dict(torch.load(standins["resnet50"][0]))
    with torch.no_grad():
        probs = ref(weights.transforms()(Image.open(photo).convert("RGB"))[None]).softmax(1)[0]
    values, indices = probs.topk(5)
    assert pred.indices == indices.tolist()
    assert [p for _, p in pred.topk] == pytest.approx(values.tolist(), abs=1e-5)
    assert [c for c, _ in pred.topk] == [weights.meta["categories"][i] for i in indices]
    assert model.preparation["resize"] == 232 and model.preparation["crop"] == 224  # V2 weights


def test_predict_cli_torchvision_json_and_errors(hub, photo, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["predict", "torchvision:googlenet", str(photo), "--json",
                                  "--top-k", "5"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    cats = get_model_weights("googlenet").DEFAULT.meta["categories"]
    assert len(row["topk"]) == 5 and all(cats[t["index"]] == t["category"] for t in row["topk"])
    probs = [t["probability"] for t in row["topk"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1
    text = runner.invoke(main, ["predict", "torchvision:googlenet", str(photo)]).output
    assert text.startswith(f"{photo}: {row['topk'][0]['category']} ")
    bad = runner.invoke(main, ["predict", "torchvision:alexnet", str(photo)])
    assert bad.exit_code == 1 and "torchvision:vgg19, torchvision:resnet50" in bad.output
    missing = runner.invoke(main, ["predict", str(tmp_path / "nope.pt"), str(photo)])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_googlenet_feature_maps_and_inception_branches(hub, photo, tmp_path):
    out = tmp_path / "act"
    result = CliRunner().invoke(main, ["explain", "activations", "torchvision:googlenet",
                                       str(photo), "--out", str(out), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    shapes = {k: tuple(v) for k, v in record["maps"].items()}
    assert shapes == {
        "conv1": (64, 112, 112), "conv3": (192, 56, 56), "inception3b": (480, 28, 28),
        "inception4e": (832, 14, 14), "inception5b": (1024, 7, 7),
        "inception4a.branch1": (192, 14, 14), "inception4a.branch2": (208, 14, 14),
        "inception4a.branch3": (48, 14, 14), "inception4a.branch4": (64, 14, 14),
    }  # fmt: skip
    assert len(record["topk"]) == 5 and str(out / "branch_3.png") in record["files"]
    assert "inception branch 3 of 4, 48 maps of 14x14" in record["files"][str(out / "branch_3.png")]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["branch_1.png", "branch_2.png", "branch_3.png", "branch_4.png",
                     "depth_1.png", "depth_2.png", "depth_3.png", "depth_4.png", "depth_5.png",
                     "input.png"]  # fmt: skip


def test_photo_preparation_and_activations_of_resnet50(hub, photo):
    model = load_imagenet_model("torchvision:resnet50")
    pixels = prepare_photo(Image.open(photo), model.preparation)
    assert pixels.shape == (3, 224, 224) and 0 <= float(pixels.min()) <= float(pixels.max()) <= 1
    act = imagenet_activations(model, pixels, "photo")
    shapes = [tuple(v.shape) for v in act.maps.values()]
    assert list(act.maps) == ["relu", "layer1", "layer2", "layer3", "layer4"]
    assert shapes == [(64, 112, 112), (256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]
    (pred,) = predict_photos(model, [str(photo)], top_k=5)
    assert [c for c, _ in act.topk] == [c for c, _ in pred.topk]  # the same pass as predict
    assert [p for _, p in act.topk] == pytest.approx([p for _, p in pred.topk], abs=1e-6)


def test_explain_model_of_a_torchvision_network_needs_no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    result = CliRunner().invoke(main, ["explain", "model", "--model", "torchvision:resnet50",
                                       "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["total_params"] == 25_557_032  # torchvision's meta["num_params"]
    assert summary["input_shape"] == [3, 224, 224]


def test_missing_imagenet_weights_for_predict_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setattr("mnistcnn.models.weights.DOWNLOAD_TIMEOUT", 1.0)
    with pytest.raises(SettingError):
        load_imagenet_model("torchvision:lenet")
    from mnistcnn.models.weights import WeightsMissingError

    with pytest.raises(WeightsMissingError, match="googlenet-1378be20.pth"):
        load_imagenet_model("torchvision:googlenet", download=False)
