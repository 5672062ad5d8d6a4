"""Feature maps, saliency, invariance and the evaluation report, on synthetic data."""

import math

import pytest
import torch
from torch.nn import functional as F

from mnistcnn.explain.activations import (
    InputImage,
    activation_figures,
    capture_feature_maps,
    describe_conv,
    explain_activations,
    gradient_saliency,
    occlusion_saliency,
    parse_sample_ref,
)
from mnistcnn.explain.invariance import apply_affine, measure_invariance, variants
from mnistcnn.models import create_model
from mnistcnn.report import build_report, most_confused_pairs, save_report, worst_errors

CLASSES = [str(i) for i in range(10)]


@pytest.fixture
def model():
    torch.manual_seed(0)
    return create_model("tutorial").eval()


def digit_like():
    x = torch.zeros(28, 28)
    x[6:22, 12:16] = 1.0  # a vertical bar, like a "1"
    return x


def test_feature_maps_are_the_conv_outputs_with_the_tutorial_shapes(model):
    x = digit_like().view(1, 1, 28, 28)
    logits, maps = capture_feature_maps(model, x)
    assert list(maps) == ["0", "3"]
    assert maps["0"].shape == (1, 10, 28, 28)  # 5x5, padding 2: 28 -> 28
    assert maps["3"].shape == (1, 20, 10, 10)  # after pooling to 14, 5x5 no padding: 14 -> 10
    conv1 = model[0]
    assert torch.allclose(maps["0"], F.conv2d(x, conv1.weight, conv1.bias, padding=2))
    assert torch.allclose(logits, model(x), atol=1e-6)  # the unhooked CPU forward is fused
    assert not model[0]._forward_hooks  # hooks removed
    assert describe_conv(conv1) == "Conv2d(1, 10, k=5x5, s=1, p=2)"
    assert describe_conv(model[3]) == "Conv2d(10, 20, k=5x5, s=1, p=0)"


def test_gradient_saliency_is_the_input_gradient_and_zero_far_from_receptive_field(model):
    x = digit_like()
    sal = gradient_saliency(model, x, [0.0], [1.0], target=3)
    xr = x.clone().view(1, 1, 28, 28).requires_grad_(True)
    model(xr)[0, 3].backward()
    assert torch.allclose(sal, xr.grad[0, 0].abs())
    assert sal.shape == (28, 28) and (sal >= 0).all() and sal.sum() > 0


def test_occlusion_saliency_matches_hiding_a_square_by_hand(model):
    x = digit_like()
    sal = occlusion_saliency(model, x, [0.0], [1.0], target=1, patch=5)
    base = model(x.view(1, 1, 28, 28))[0, 1]
    hidden = x.clone()
    hidden[12:17, 12:17] = 0.0  # square centred on (14, 14): rows/cols 14-2 .. 14+2
    expected = base - model(hidden.view(1, 1, 28, 28))[0, 1]
    assert sal.shape == (28, 28)
    assert sal[14, 14].item() == pytest.approx(expected.item(), abs=1e-5)
    assert sal[0, 0].item() == pytest.approx(0.0, abs=1e-5)  # nothing there to hide


def test_explain_activations_record_and_figures(model):
    image = InputImage(digit_like(), "bar.png", "bar", label=1)
    act = explain_activations(model, image, mean=[0.0], std=[1.0], classes=CLASSES)
    assert act.probabilities.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert act.kernels.shape == (10, 1, 5, 5)
    assert torch.equal(act.kernels, model[0].weight.detach())
    d = act.to_dict()
    assert d["feature_maps"] == {"0": [10, 28, 28], "3": [20, 10, 10]}
    assert d["predicted"] == int(act.probabilities.argmax())
    figures = activation_figures(act)
    assert {"input.png", "kernels.png", "saliency.png"} <= set(figures)
    assert sum(n.startswith("feature_maps") for n in figures) == 2
    with pytest.raises(ValueError, match="unknown saliency method 'magic'"):
        explain_activations(model, image, mean=[0.0], std=[1.0], classes=CLASSES, saliency="magic")


def test_sample_refs():
    assert parse_sample_ref("mnist:test:123") == ("mnist", False, 123)
    assert parse_sample_ref("fashion-mnist:train:0") == ("fashion-mnist", True, 0)
    assert parse_sample_ref("digit.png") is None


def test_integer_shift_is_an_exact_translation_and_identity_is_not_resampled():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 10:18, 12:15] = 1.0
    (right, *_rest) = variants("shift", 3)
    moved = apply_affine(x, right)
    assert torch.allclose(moved[0, 0, 10:18, 15:18], torch.ones(8, 3), atol=1e-6)
    assert moved.sum().item() == pytest.approx(24.0, abs=1e-4)
    assert variants("shift", 0) == [] and variants("scale", 1.0) == []
    assert len(variants("shift", 2)) == 4 and len(variants("rotation", 10)) == 2
    with pytest.raises(ValueError, match="scale factors must be > 0"):
        variants("scale", 0)


def test_invariance_of_a_shift_sensitive_model():
    # A "model" that says class 1 when the centre pixel is lit, else class 0.
    class Centre(torch.nn.Module):
        def forward(self, x):
            lit = (x[:, 0, 14, 14] > 0.5).float()
            return torch.stack([1 - lit, lit], 1) * 10

    images = torch.zeros(4, 28, 28, dtype=torch.uint8)
    images[:, 13:16, 13:16] = 255  # a 3x3 dot at the centre
    labels = torch.ones(4, dtype=torch.long)
    result = measure_invariance(
        Centre(), images, labels, mean=[0.0], std=[1.0], shifts=(0, 1, 2), angles=(0, 45),
        scales=(1.0, 0.5),
    )  # fmt: skip
    assert result.plain_accuracy == 1.0
    assert result.series("shift") == ([0.0, 1.0, 2.0], [1.0, 1.0, 0.0])  # 1 px stays lit
    assert result.accuracy("rotation", 45) == 1.0  # a centred dot survives rotation
    assert result.accuracy("scale", 0.5) == 1.0


def test_worst_errors_and_confused_pairs_exact():
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.05, 0.05, 0.9]])
    labels = torch.tensor([0, 1, 1, 0])
    worst = worst_errors(probs, labels, k=2)
    assert [w.index for w in worst] == [3, 2]
    assert worst[0].predicted == 2 and worst[0].loss == pytest.approx(-math.log(0.05))
    assert worst[1].prob_true == pytest.approx(0.3) and worst[1].prob_predicted == pytest.approx(
        0.6
    )
    confusion = torch.tensor([[5, 2, 0], [1, 7, 3], [0, 0, 4]])
    pairs = most_confused_pairs(confusion, k=5)
    assert [(p.true, p.predicted, p.count) for p in pairs] == [(1, 2, 3), (0, 1, 2), (1, 0, 1)]
    assert pairs[0].rate == pytest.approx(3 / 11)


def test_report_html_embeds_metrics_and_pictures(tmp_path):
    torch.manual_seed(0)
    labels = torch.arange(40) % 10
    probs = F.softmax(torch.randn(40, 10) + 4 * F.one_hot(labels, 10), 1)
    images = torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8)
    history = [
        {"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.8, "test_loss": 0.4,
         "test_accuracy": 0.85, "lr": 0.01, "train_seconds": 1.0, "eval_seconds": 0.1},
        {"epoch": 2, "train_loss": 0.3, "train_accuracy": 0.9, "test_loss": 0.3,
         "test_accuracy": 0.9, "lr": 0.01, "train_seconds": 1.0, "eval_seconds": 0.1},
    ]  # fmt: skip
    report = build_report(
        probs, labels, images, CLASSES, title="t", config={"lr": 0.01}, history=history
    )
    accuracy = (probs.argmax(1) == labels).double().mean().item()
    assert report.evaluation.accuracy == pytest.approx(accuracy)
    path = save_report(report, tmp_path)
    html = path.read_text()
    for name in ("curves.png", "worst_errors.png", "confused_pairs.png", "per_class_accuracy.png",
                 "confusion_matrix.png"):  # fmt: skip
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert name in html
    assert f"{accuracy:.2%}" in html
    assert "lr" in html and "0.01" in html
    assert not list(tmp_path.glob(".*tmp"))
