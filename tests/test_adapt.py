"""Adapting a model to a batch without labels (mnistcnn.predict.adapt): AdaBN and TENT."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ckpt_files import write_checkpoint
from mnistcnn.artifact import TrainedModel, load
from mnistcnn.cli import main
from mnistcnn.errors import SettingError
from mnistcnn.models import create_model
from mnistcnn.predict import Predictor
from mnistcnn.predict.adapt import adapt, adapt_predictions, batchnorm_layers


def _bn_model(seed: int = 0) -> TrainedModel:
    torch.manual_seed(seed)
    model = TrainedModel(create_model("bncnn"), [0.1307], [0.3081], model_name="bncnn")
    model.train()
    with torch.no_grad():  # running statistics of "training" pictures: faint ink
        for _ in range(3):
            model(torch.rand(32, 1, 28, 28) * 0.3)
    return model.eval()


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_adabn_re_estimates_statistics_on_a_shifted_batch() -> None:
    model = _bn_model()
    before = _state(model)
    shifted = torch.rand(64, 1, 28, 28) * 0.3 + 0.6  # brighter pictures
    adapted = adapt(model, shifted, "adabn", prior=0)
    for k, v in model.state_dict().items():  # the model given is untouched
        assert torch.equal(v, before[k]), k
    first_old, first_new = batchnorm_layers(model)[0], batchnorm_layers(adapted)[0]
    assert not torch.allclose(first_old.running_mean, first_new.running_mean)
    # prior 0: the first BatchNorm's mean is the batch's mean of its input (the first conv)
    with torch.no_grad():
        conv_out = adapted.net[0](adapted.normalize(shifted))  # (64, 32, 28, 28)
    assert torch.allclose(first_new.running_mean, conv_out.mean((0, 2, 3)), atol=1e-4)
    assert not adapted.training
    weights = [k for k in before if k.endswith("weight") or k.endswith("bias")]
    for k in weights:  # AdaBN changes statistics only
        assert torch.equal(adapted.state_dict()[k], before[k]), k


def test_prior_weighs_the_training_statistics() -> None:
    model = _bn_model()
    batch = torch.rand(16, 1, 28, 28)
    alone = batchnorm_layers(adapt(model, batch, prior=0))[0].running_mean
    mixed = batchnorm_layers(adapt(model, batch, prior=16))[0].running_mean
    old = batchnorm_layers(model)[0].running_mean
    assert torch.allclose(mixed, (old + alone) / 2, atol=1e-5)  # 16 / (16 + 16)


def test_one_picture_changes_nothing() -> None:
    model = _bn_model()
    one = torch.rand(1, 1, 28, 28)
    for method in ("adabn", "tent"):
        adapted = adapt(model, one, method)
        assert adapted is not model
        for k, v in model.state_dict().items():
            assert torch.equal(adapted.state_dict()[k], v), k
        assert torch.equal(adapted(one), model(one))


def test_tent_tunes_only_batchnorm_affine_parameters() -> None:
    model = _bn_model()
    batch = torch.rand(64, 1, 28, 28) * 0.5 + 0.3
    adapted = adapt(model, batch, "tent", steps=2, lr=1e-2, batch_size=32)
    names = {n for n, m in adapted.named_modules() if m in batchnorm_layers(adapted)}
    changed = {
        k for k, v in adapted.state_dict().items() if not torch.equal(v, model.state_dict()[k])
    }
    affine = {k for k in changed if k.rsplit(".", 1)[0] in names and k.endswith(("weight", "bias"))}
    assert affine, "TENT moved no BatchNorm weight"
    assert all(k.rsplit(".", 1)[0] in names for k in changed), changed - affine
    assert all(not p.requires_grad for p in adapted.parameters())


def test_a_model_without_batchnorm_is_refused() -> None:
    model = TrainedModel(create_model("tutorial"), model_name="tutorial")
    with pytest.raises(SettingError, match="no BatchNorm layer") as info:
        adapt(model, torch.rand(8, 1, 28, 28))
    assert info.value.setting == "adapt"
    with pytest.raises(SettingError, match="unknown adaptation"):
        adapt(_bn_model(), torch.rand(8, 1, 28, 28), "bn")


def test_adapt_predictions_counts_changed_answers() -> None:
    model = _bn_model()
    predictor = Predictor(model, threshold=0.0)
    images = (np.random.default_rng(0).random((40, 28, 28)) * 255).astype(np.uint8)
    images[-1] = 0  # blank: not in the batch, returned as it is
    preds = predictor.judge_prepared(list(images), [f"p{i}" for i in range(40)])
    after, outcome = adapt_predictions(predictor, preds, "adabn")
    assert outcome.counted == 39 and outcome.pictures == 40
    changed = sum(a.label != b.label for a, b in zip(after, preds, strict=True))
    assert outcome.changed == changed
    assert not np.allclose(after[0].probabilities, preds[0].probabilities)  # the new model's
    assert after[-1] is preds[-1]
    assert predictor.model is model  # the predictor keeps its own model


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_predict_adapt_leaves_the_checkpoint_file_unchanged(tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path / "bn.pt", _bn_model().net, model_name="bncnn")
    pictures = tmp_path / "in"
    pictures.mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        ink = np.full((40, 40), 255, np.uint8)
        ink[8 + i : 30, 12 : 16 + i] = rng.integers(0, 60)
        Image.fromarray(ink).save(pictures / f"{i}.png")
    digest = _sha(ckpt)
    r = CliRunner().invoke(main, ["predict", str(ckpt), str(pictures), "--adapt"])
    assert r.exit_code == 0, r.output
    assert "adapted to 6 pictures (adabn):" in r.output and "changed" in r.output
    r = CliRunner().invoke(main, ["predict", str(ckpt), str(pictures), "--adapt", "tent", "--json"])
    assert r.exit_code == 0, r.output
    assert {p["adapt"] for p in json.loads(r.stdout)} == {"tent"}
    r = CliRunner().invoke(main, ["predict", str(ckpt), str(pictures / "0.png"), "--adapt"])
    assert "nothing adapted" in r.output
    assert _sha(ckpt) == digest
    assert load(ckpt).checkpoint is not None


def test_read_adapt_leaves_the_checkpoint_file_unchanged(tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path / "bn.pt", _bn_model().net, model_name="bncnn")
    page = np.full((60, 160), 255, np.uint8)
    for k in range(4):  # four strokes side by side: four "digits"
        page[10:50, 20 + 35 * k : 26 + 35 * k] = 0
    Image.fromarray(page).save(tmp_path / "number.png")
    digest = _sha(ckpt)
    r = CliRunner().invoke(main, ["read", str(ckpt), str(tmp_path / "number.png"), "--adapt"])
    assert r.exit_code == 0, r.output
    assert "adapted to 4 digits (adabn):" in r.output
    assert _sha(ckpt) == digest
