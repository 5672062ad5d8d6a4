"""One evaluation pass: ``mnistcnn evaluate`` runs each model once; the report, the
confusion matrix and the printed figures are built from that pass."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import mnistcnn.data
from ckpt_files import write_checkpoint
from mnistcnn.artifact import TrainedModel
from mnistcnn.cli import main
from mnistcnn.evaluation import evaluate_models, summarize
from mnistcnn.models import create_model
from test_train_session import synthetic


@pytest.fixture
def counted(monkeypatch):
    """Counts TrainedModel forward passes on real tensors and the images they saw."""
    calls = {"passes": 0, "images": 0}
    forward = TrainedModel.forward

    def counting(self, x):
        if x.device.type != "meta":  # loading checks the architecture on the meta device
            calls["passes"] += 1
            calls["images"] += x.shape[0]
        return forward(self, x)

    monkeypatch.setattr(TrainedModel, "forward", counting)
    monkeypatch.setattr(mnistcnn.data, "load_arrays", lambda *a, **kw: synthetic(64, 1))
    return calls


def _checkpoints(tmp_path, n):
    paths = []
    for seed in range(n):
        torch.manual_seed(seed)
        paths.append(write_checkpoint(tmp_path / f"m{seed}" / "best.pt", create_model("tutorial")))
    return [str(p) for p in paths]


@pytest.mark.parametrize("members", [1, 2])
def test_evaluate_runs_each_model_once(tmp_path, counted, members):
    paths = _checkpoints(tmp_path, members)
    out = tmp_path / "out"
    args = ["evaluate", *paths, "--batch-size", "16", "--device", "cpu", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert counted == {"passes": 4 * members, "images": 64 * members}  # 64 images / 16
    figures = json.loads(result.output)
    assert figures["num_samples"] == 64 and len(figures["checkpoints"]) == members
    page = (out / "report.html").read_text(encoding="utf-8")
    assert f"{100 * figures['accuracy']:.2f}%" in page
    csv = (out / "confusion_matrix.csv").read_text().splitlines()
    assert len(csv) == 11 and (out / "confusion_matrix.png").is_file()


def test_evaluation_figures_come_from_its_probabilities():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(50, 3, generator=g), 1)
    labels = torch.randint(0, 3, (50,), generator=g)
    ev = summarize(probs, labels, ["a", "b", "c"])
    assert ev.accuracy == float((probs.argmax(1) == labels).double().mean())
    assert ev.loss == pytest.approx(float(-probs[torch.arange(50), labels].log().mean()))
    assert int(ev.confusion.sum()) == 50 and torch.equal(ev.predictions, probs.argmax(1))
    assert [row["support"] for row in ev.per_class] == torch.bincount(labels, minlength=3).tolist()
    with pytest.raises(ValueError, match=r"need \(N >= 1, 3\)"):
        summarize(probs[:, :2], labels, ["a", "b", "c"])


def test_an_ensemble_averages_probabilities_of_in_memory_models():
    torch.manual_seed(0)
    a, b = (TrainedModel(create_model("tutorial")).eval() for _ in range(2))
    images, labels = synthetic(20, 0)
    ev = evaluate_models([a, b], images, labels, batch_size=8)
    x = images[:, None].float() / 255.0
    with torch.no_grad():
        mean = (torch.softmax(a(x), 1) + torch.softmax(b(x), 1)) / 2
    torch.testing.assert_close(ev.probabilities, mean)
    assert ev.checkpoints == ["", ""] and ev.precision == "fp32"
    other = TrainedModel(create_model("tutorial", num_classes=3), classes=["x", "y", "z"])
    with pytest.raises(ValueError, match="same classes"):
        evaluate_models([a, other], images, labels)


def test_evaluation_uses_the_fast_path_and_restores_the_flag():
    """Evaluation runs no hooks: the fused CPU kernels are on inside, off again after."""
    torch.manual_seed(0)
    model = TrainedModel(create_model("tutorial")).eval()
    images, labels = synthetic(40, 0)
    seen = []
    forward = model.net.fast_forward

    def spy(x):
        seen.append(x.shape[0])
        return forward(x)

    model.net.fast_forward = spy
    ev = evaluate_models([model], images, labels, batch_size=20)
    assert seen == [20, 20] and model.net.fast_path is False
    with torch.no_grad():
        plain = torch.softmax(model(images[:, None].float() / 255.0), 1)
    torch.testing.assert_close(ev.probabilities, plain, rtol=0, atol=1e-6)
