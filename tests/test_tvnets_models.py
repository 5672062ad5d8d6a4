"""vgg19, resnet50 and googlenet from torchvision's builders: the 28x28 adaptations, the
ImageNet-pretrained form (summed gray kernels, new classifier, resize, frozen backbone),
GoogLeNet's auxiliary losses, and fine-tuning from generated ImageNet weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from mnistcnn.artifact import load
from mnistcnn.cli import main
from mnistcnn.config import TrainConfig
from mnistcnn.data import load_arrays
from mnistcnn.data.loaders import TensorSource
from mnistcnn.engine import session
from mnistcnn.engine.loop import fit
from mnistcnn.engine.model import trained_model
from mnistcnn.engine.sources import DataSources
from mnistcnn.errors import SettingError
from mnistcnn.models import create_model
from mnistcnn.models.imagenet import imagenet_net, imagenet_normalization
from mnistcnn.models.outputs import AUX_LOSS_WEIGHT, training_loss
from mnistcnn.models.weights import WeightsError, read_state_dict, weights_file
from tvnets_weights import generated


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("standins")
    return {m: generated(folder, m)[0] for m in ("googlenet", "resnet50")}


def _trace(net: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    mods = dict(net.named_modules())
    hooks = [mods[n].register_forward_hook(
        lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:]))) for n in names]  # fmt: skip
    net(x)
    for h in hooks:
        h.remove()
    return shapes


def test_scratch_stems_keep_28x28_where_imagenet_shrinks_it():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 28, 28)
    vgg = create_model("vgg19").eval()
    assert isinstance(vgg.features[4], nn.Identity)  # the first max-pool, dropped
    assert sum(isinstance(m, nn.MaxPool2d) for m in vgg.features) == 4
    shapes = _trace(vgg, ["features.3", "features.8", "features.17", "features.26", "features.35",
                          "features.36", "classifier.0"], x)  # fmt: skip
    assert shapes["features.3"] == (64, 28, 28) and shapes["features.8"] == (128, 28, 28)
    assert shapes["features.17"] == (256, 14, 14) and shapes["features.26"] == (512, 7, 7)
    assert shapes["features.35"] == (512, 3, 3) and shapes["features.36"] == (512, 1, 1)
    assert vgg.classifier[0].in_features == 512
    res = create_model("resnet50").eval()
    shapes = _trace(res, ["layer1", "layer2", "layer3", "layer4"], x)
    assert [s[1] for s in shapes.values()] == [28, 14, 7, 4] and shapes["layer4"][0] == 2048
    goo = create_model("googlenet").eval()
    shapes = _trace(goo, ["inception3b", "inception4a", "inception5b"], x)
    assert shapes == {"inception3b": (480, 28, 28), "inception4a": (512, 14, 14),
                      "inception5b": (1024, 7, 7)}  # fmt: skip
    assert sum(p.numel() for p in vgg.parameters()) == 38_946_762
    assert sum(p.numel() for p in res.parameters()) == 23_519_690
    assert sum(p.numel() for p in goo.parameters()) == 9_951_806


def test_googlenet_trains_with_auxiliary_losses_weighted_0_3():
    torch.manual_seed(0)
    net = create_model("googlenet", num_classes=10)
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([3, 7])
    out = net(x)  # training mode: GoogLeNetOutputs
    assert type(out).__name__ == "GoogLeNetOutputs"
    ce = nn.CrossEntropyLoss()
    logits, loss = training_loss(ce, out, y)
    expected = ce(out.logits, y) + 0.3 * (ce(out.aux_logits1, y) + ce(out.aux_logits2, y))
    assert AUX_LOSS_WEIGHT == 0.3 and torch.equal(logits, out.logits)
    assert torch.allclose(loss, expected)
    assert isinstance(net.eval()(x), torch.Tensor)  # eval: the logits only
    plain = torch.randn(2, 10)
    assert torch.equal(training_loss(ce, plain, y)[1], ce(plain, y))


def test_pretrained_gray_kernels_are_the_summed_rgb_ones(standins):
    info = weights_file("googlenet")
    state = read_state_dict(standins["googlenet"], info)
    torch.manual_seed(0)
    gray = imagenet_net("googlenet", 10, 1, "none", state)
    conv = gray.net.conv1.conv
    assert conv.weight.shape == (64, 1, 7, 7) and conv.stride == (2, 2)
    assert torch.allclose(conv.weight, state["conv1.conv.weight"].sum(1, keepdim=True))
    assert gray.net.fc.out_features == 10 and gray.net.aux1 is None and gray.size == 112
    torch.manual_seed(0)
    rgb = imagenet_net("googlenet", 10, 3, "none", state)
    rgb.net.fc.load_state_dict(gray.net.fc.state_dict())
    x = torch.rand(2, 1, 28, 28)
    mean, std = imagenet_normalization("googlenet")  # 0.5, 0.5: the same for R, G and B
    with torch.no_grad():
        a = gray.eval()((x - mean[0]) / std[0])
        b = rgb.eval()((x.expand(-1, 3, -1, -1) - mean[0]) / std[0])  # R = G = B
    assert torch.allclose(a, b, atol=1e-4)
    assert imagenet_normalization("resnet50") == ((0.449,), (0.226,))


def test_frozen_backbone_trains_only_the_classifier(standins):
    state = read_state_dict(standins["resnet50"], weights_file("resnet50"))
    net = imagenet_net("resnet50", 10, 1, "backbone", state)
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trainable == ["net.fc.weight", "net.fc.bias"]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    bn = net.net.bn1
    assert isinstance(bn, FrozenBatchNorm2d)
    assert torch.equal(bn.running_var, state["bn1.running_var"])


def test_settings_of_pretraining_are_checked():
    with pytest.raises(SettingError, match="freeze needs pretrained") as err:
        TrainConfig(freeze="backbone")
    assert err.value.setting == "freeze"
    with pytest.raises(SettingError, match="weights is the ImageNet weights file"):
        TrainConfig(weights="x.pth")
    with pytest.raises(WeightsError, match="pretrained models: vgg19, resnet50, googlenet"):
        imagenet_net("tutorial")


def _sources(x: torch.Tensor, y: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor, batch: int):
    cpu = torch.device("cpu")
    train = TensorSource(x, y, batch, shuffle=True, seed=0, device=cpu)
    test = TensorSource(xt, yt, 32, device=cpu)
    return DataSources(train, {"test": test}, [str(i) for i in range(10)], [0.0], [1.0])


def test_fine_tuning_on_an_mnist_subset_lowers_the_loss(mnist_root, standins):
    x, y = load_arrays("mnist", True, root=mnist_root, allow_download=False)
    xt, yt = load_arrays("mnist", False, root=mnist_root, allow_download=False)
    sources = _sources(x[:32], y[:32], xt[:16], yt[:16], batch=16)
    # the whole network: a frozen backbone of generated (random) weights gives features
    # too poor to learn from in a few steps; real ImageNet features are not (README)
    config = TrainConfig(model="googlenet", pretrained=True, lr=1e-3,
                         weights=str(standins["googlenet"]), epochs=3, device="cpu")  # fmt: skip
    torch.manual_seed(0)
    model = trained_model(config, sources)
    assert model.mean == [0.5] and model.model_kwargs["imagenet"] is True
    history = fit(model, sources.train, sources.evals, config)
    losses = [row["train_loss"] for row in history.rows]
    assert losses[0] > 2.0 and losses[-1] < 0.5 * losses[0], losses  # 2.25 -> 0.66 (seed 0)


def test_train_cli_pretrained_run_round_trips_through_its_checkpoint(tmp_path, standins,
                                                                     monkeypatch):  # fmt: skip
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.randint(0, 256, (32, 28, 28), dtype=torch.uint8, generator=g),
        torch.arange(32) % 10,
    )
    monkeypatch.setattr(session, "build_sources", lambda config, device, **kw: _sources(
        x, y, x[:8], y[:8], config.batch_size))  # fmt: skip
    monkeypatch.setattr(session, "write_run_report", lambda *a, **k: None)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "train", "--model", "resnet50", "--pretrained", "--freeze", "backbone", "--weights",
        str(standins["resnet50"]), "--epochs", "1", "--batch-size", "8", "--max-steps", "2",
        "--device", "cpu", "--no-progress", "--out", str(out), "--lr", "0.001"])  # fmt: skip
    assert result.exit_code == 0, result.output
    model = load(out / "last.pt")
    assert model.model_kwargs == {"num_classes": 10, "in_chans": 1, "imagenet": True,
                                  "freeze": "backbone"}  # fmt: skip
    assert model.mean == pytest.approx([0.449]) and model.std == pytest.approx([0.226])
    probe = torch.rand(2, 1, 28, 28)
    assert model.probabilities(probe).shape == (2, 10)
    state = read_state_dict(standins["resnet50"], weights_file("resnet50"))
    conv = model.net.net.conv1.weight  # frozen: still the summed ImageNet kernels
    assert torch.allclose(conv, state["conv1.weight"].sum(1, keepdim=True))
    bad = CliRunner().invoke(main, ["train", "--model", "tutorial", "--freeze", "backbone"])
    assert bad.exit_code != 0 and "--freeze needs pretrained" in bad.output
