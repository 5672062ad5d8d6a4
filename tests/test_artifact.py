"""The trained-model artifact: one checkpoint format (v2, v1 converted on read) and a model
that carries its own normalization, classes, preparation, temperature and precision."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mnistcnn
from ckpt_files import write_checkpoint
from mnistcnn.artifact import (
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    Normalize,
    TrainedModel,
    load,
    load_checkpoint,
    save,
    save_checkpoint,
)
from mnistcnn.models import create_model

FIXTURES = Path(__file__).parent / "fixtures"
V1 = FIXTURES / "checkpoint_v1.pt"


def test_version_1_checkpoint_loads_and_gives_the_old_logits_on_raw_pixels():
    """tests/fixtures/checkpoint_v1.pt was written by mnistcnn 0.1 (format 1, bare weights,
    normalization applied by each caller); its expected logits were computed then, with
    ``model((x - 0.1307) / 0.3081)``. Loaded now, the model takes the raw pixels."""
    expected = torch.load(FIXTURES / "checkpoint_v1_expected.pt", weights_only=True)
    model = load(V1)
    assert isinstance(model, TrainedModel) and not model.training
    with torch.no_grad():
        logits = model(expected["pixels"])
    torch.testing.assert_close(logits, expected["logits"], rtol=0, atol=1e-6)
    assert model.mean == pytest.approx([0.1307]) and model.std == pytest.approx([0.3081])
    assert model.classes[3] == "3 - three" and model.dataset == "mnist"
    assert model.temperature == 1.5 and model.calibrated
    assert model.precision == "bf16"  # the fast recipe's, from the recorded config
    assert model.preparation == {"method": "mnist", "box": 20, "canvas": 28}
    assert model.checkpoint is not None and model.checkpoint.path == V1
    assert model.checkpoint.step == 938 and model.checkpoint.epoch == 1
    keys = set(model.state_dict())
    assert {"normalize.mean", "normalize.std"} <= keys
    assert all(k.startswith(("net.", "normalize.")) for k in keys)


def test_version_1_file_is_rewritten_as_version_2_by_calibration(tmp_path):
    from mnistcnn.evaluation.calibration import calibrate_checkpoint

    path = tmp_path / "old.pt"
    path.write_bytes(V1.read_bytes())
    g = torch.Generator().manual_seed(0)
    logits, labels = (
        torch.randn(200, 10, generator=g) * 3,
        torch.randint(0, 10, (200,), generator=g),
    )
    fit = calibrate_checkpoint(path, logits, labels, fitted_on="noise")
    raw = torch.load(path, weights_only=True)
    assert raw["format_version"] == FORMAT_VERSION == 2
    assert raw["calibration"]["temperature"] == fit.temperature
    assert set(raw["state_dict"]) == set(load(V1).state_dict())  # the current layer names
    assert "normalize.mean" in raw["state_dict"]
    before, after = load(V1), load(path)
    for k, v in before.state_dict().items():
        assert torch.equal(v, after.state_dict()[k]), k
    assert after.classes == before.classes and after.checkpoint.history == before.checkpoint.history
    assert after.temperature == pytest.approx(fit.temperature)


def test_save_then_load_round_trips_weights_and_metadata(tmp_path):
    torch.manual_seed(0)
    model = TrainedModel(
        create_model("bncnn", num_classes=3),
        [0.5],
        [0.25],
        classes=["a", "b", "c"],
        model_name="bncnn",
        model_kwargs={"num_classes": 3, "in_chans": 1},
        dataset="",
        preparation={"method": "mnist", "box": 20, "canvas": 28},
        calibration={"temperature": 2.0},
        precision="bf16",
    )
    ckpt = save(model, tmp_path / "m.pt", epoch=3, step=7, history=[{"epoch": 3}])
    assert isinstance(ckpt, Checkpoint) and ckpt.to_dict()["format_version"] == 2
    back = load(tmp_path / "m.pt")
    assert back.classes == ["a", "b", "c"] and back.precision == "bf16"
    assert back.temperature == 2.0 and back.mean == [0.5] and back.std == [0.25]
    assert back.checkpoint.epoch == 3 and back.checkpoint.history == [{"epoch": 3}]
    model.eval()
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x), rtol=0, atol=0)


def test_forward_normalizes_exactly_as_the_data_loader_did():
    """(x - mean) / std inside the model: bitwise the loader's ops (sub, then div)."""
    torch.manual_seed(0)
    net = create_model("tutorial").eval()
    model = TrainedModel(net, [0.1307], [0.3081]).eval()
    x = torch.rand(32, 1, 28, 28)
    with torch.no_grad():
        by_hand = net(x.clone().sub_(torch.tensor(0.1307)).div_(torch.tensor(0.3081)))
        assert torch.equal(model(x), by_hand)
    with pytest.raises(ValueError, match="std > 0"):
        Normalize([0.1], [0.0])


def test_probabilities_apply_the_temperature_and_take_uint8():
    torch.manual_seed(0)
    model = TrainedModel(create_model("tutorial"), calibration={"temperature": 4.0}).eval()
    images = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8)
    probs = model.probabilities(images)
    with torch.no_grad():
        logits = model(images.float().div(255.0)[:, None])
    torch.testing.assert_close(probs, torch.softmax(logits / 4.0, 1))
    assert probs.shape == (6, 10)


def test_weights_of_another_shape_are_refused_with_the_key(tmp_path):
    path = write_checkpoint(tmp_path / "a.pt", create_model("tutorial"))
    ckpt = load_checkpoint(path)
    bad = dict(ckpt.state_dict)
    bad["net.fc3.weight" if "net.fc3.weight" in bad else "net.11.weight"] = torch.zeros(3, 100)
    save_checkpoint(tmp_path / "b.pt", ckpt.replace(state_dict=bad))
    with pytest.raises(CheckpointError, match=r"b\.pt: weights do not fit.*size mismatch"):
        load(tmp_path / "b.pt")


def test_bare_state_dict_is_named_by_the_artifact_layer(tmp_path):
    """``mnistcnn.load`` says what a bare state_dict (or another trainer's dict holding
    one) is and what to do, from the object already loaded: the CLI's message."""
    weights = create_model("tutorial").state_dict()
    bare = tmp_path / "bare.pt"
    torch.save(weights, bare)
    want = f"{bare}: a bare state_dict (e.g. from torch.save(model.state_dict())), not an mnistcnn"
    for reader in (mnistcnn.load, load, load_checkpoint):
        with pytest.raises(CheckpointError) as info:
            reader(bare)
        assert str(info.value).startswith(want) and "TrainedModel(" in str(info.value)
    for key in ("state_dict", "model_state_dict", "model"):
        other = tmp_path / f"other_{key}.pt"
        torch.save({"epoch": 3, key: weights}, other)
        with pytest.raises(CheckpointError, match="another tool's checkpoint holding a state_dict"):
            load(other)
    plain = tmp_path / "plain.pt"  # a dict without weights: the plain refusal
    torch.save({"epoch": 3}, plain)
    with pytest.raises(CheckpointError, match="cannot be used") as info:
        load(plain)
    assert "state_dict (e.g." not in str(info.value)


def test_a_users_own_module_trains_and_loads_with_net(tmp_path, monkeypatch):
    """``train(net=...)`` records model "custom"; loading it needs the architecture again."""
    from mnistcnn.config import recipe_config
    from mnistcnn.data.loaders import TensorSource
    from mnistcnn.engine import session
    from test_train_session import _stub_report, synthetic

    def build_sources(config, device, **kw):
        x, y = synthetic(96, 0)
        xt, yt = synthetic(32, 1)
        train = TensorSource(x, y, 32, shuffle=True, seed=0, device=device)
        test = TensorSource(xt, yt, 32, device=device)
        return session.DataSources(train, {"test": test}, [str(i) for i in range(10)], [0.1], [0.3])

    monkeypatch.setattr(session, "build_sources", build_sources)
    monkeypatch.setattr(session, "write_run_report", _stub_report)

    def tiny() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))

    config = recipe_config("tutorial", epochs=1, device="cpu")
    result = mnistcnn.train(config, out=tmp_path / "run", net=tiny(), handle_signals=False)
    assert (result.run_dir / "report.html").is_file()
    with pytest.raises(CheckpointError, match=r"your own module; pass it: load\(path, net="):
        load(result.run_dir / "best.pt")
    model = load(result.run_dir / "best.pt", net=tiny())
    assert model.model_name == "custom" and model.mean == pytest.approx([0.1])
    with pytest.raises(CheckpointError, match="weights do not fit the given module"):
        load(result.run_dir / "best.pt", net=create_model("tutorial"))


def test_public_api_is_listed_for_tab_completion():
    names = dir(mnistcnn)
    for name in ("train", "load", "evaluate", "create_model", "list_models", "Predictor"):
        assert name in names and callable(getattr(mnistcnn, name)), name
    assert mnistcnn.load is load
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = mnistcnn.nope
