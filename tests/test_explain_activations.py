"""Feature maps, saliency, invariance and the evaluation report, on synthetic data."""

import math

import pytest
import torch
from torch.nn import functional as F

from mnistcnn.artifact import TrainedModel
from mnistcnn.evaluation import summarize
from mnistcnn.evaluation.report import build_report, most_confused_pairs, save_report, worst_errors
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
    assert list(maps) == ["conv1", "conv2"]
    assert maps["conv1"].shape == (1, 10, 28, 28)  # 5x5, padding 2: 28 -> 28
    assert maps["conv2"].shape == (1, 20, 10, 10)  # after pooling to 14, 5x5 no padding: 14 -> 10
    conv1 = model.conv1
    assert torch.allclose(maps["conv1"], F.conv2d(x, conv1.weight, conv1.bias, padding=2))
    assert torch.allclose(logits, model(x), atol=1e-6)
    assert not model.conv1._forward_hooks  # hooks removed
    assert describe_conv(conv1) == "Conv2d(1, 10, k=5x5, s=1, p=2)"
    assert describe_conv(model.conv2) == "Conv2d(10, 20, k=5x5, s=1, p=0)"


def test_gradient_saliency_is_the_input_gradient_and_zero_far_from_receptive_field(model):
    x = digit_like()
    sal = gradient_saliency(model, x, target=3)
    xr = x.clone().view(1, 1, 28, 28).requires_grad_(True)
    model(xr)[0, 3].backward()
    assert torch.allclose(sal, xr.grad[0, 0].abs())
    assert sal.shape == (28, 28) and (sal >= 0).all() and sal.sum() > 0


def test_occlusion_saliency_matches_hiding_a_square_by_hand(model):
    x = digit_like()
    sal = occlusion_saliency(model, x, target=1, patch=5)
    base = model(x.view(1, 1, 28, 28))[0, 1]
    hidden = x.clone()
    hidden[12:17, 12:17] = 0.0  # square centred on (14, 14): rows/cols 14-2 .. 14+2
    expected = base - model(hidden.view(1, 1, 28, 28))[0, 1]
    assert sal.shape == (28, 28)
    assert sal[14, 14].item() == pytest.approx(expected.item(), abs=1e-5)
    assert sal[0, 0].item() == pytest.approx(0.0, abs=1e-5)  # nothing there to hide


def test_explain_activations_record_and_figures(model):
    image = InputImage(digit_like(), "bar.png", "bar", label=1)
    act = explain_activations(TrainedModel(model, classes=CLASSES), image)
    assert act.probabilities.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert act.kernels.shape == (10, 1, 5, 5)
    assert torch.equal(act.kernels, model.conv1.weight.detach())
    d = act.to_dict()
    assert d["feature_maps"] == {"conv1": [10, 28, 28], "conv2": [20, 10, 10]}
    assert d["predicted"] == int(act.probabilities.argmax())
    figures = activation_figures(act)
    assert {"input.png", "kernels.png", "saliency.png"} <= set(figures)
    assert sum(n.startswith("feature_maps") for n in figures) == 2
    with pytest.raises(ValueError, match="unknown saliency method 'magic'"):
        explain_activations(TrainedModel(model, classes=CLASSES), image, saliency="magic")


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
        Centre(), images, labels, shifts=(0, 1, 2), angles=(0, 45),
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
        summarize(probs, labels, CLASSES), images, title="t", config={"lr": 0.01}, history=history
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


# --- explain activations judges an image as `mnistcnn predict` does -----------------------


def _run_cli(*args):
    from click.testing import CliRunner

    from mnistcnn.cli import main

    return CliRunner().invoke(main, list(args))


def test_activations_say_unsure_and_fail_like_predict(tmp_path):
    import json

    from PIL import Image

    from digits_synth import digit
    from test_predict_predictor import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "model.pt")
    Image.new("L", (60, 60), 255).save(tmp_path / "blank.png")
    Image.new("L", (1, 1), 0).save(tmp_path / "dot.png")
    digit("3").save(tmp_path / "three.png")
    out = tmp_path / "act"
    for name in ("blank.png", "three.png"):
        picture = str(tmp_path / name)
        r = _run_cli("explain", "activations", str(ckpt), picture, "--out", str(out), "--json")
        assert r.exit_code == 0, r.output
        explained = json.loads(r.output)
        (predicted,) = json.loads(_run_cli("predict", str(ckpt), picture, "--json").stdout)
        assert explained["unsure"] == predicted["unsure"], name
        if predicted["probability"] is not None:  # the same (calibrated) probabilities
            top = max(explained["probabilities"])
            assert top == pytest.approx(predicted["probability"], abs=1e-6)
            assert explained["predicted_class"].startswith(predicted["topk"][0]["label"])
    assert explained["unsure"]  # random weights: the top probability is about 0.1
    r = _run_cli(
        "explain", "activations", str(ckpt), str(tmp_path / "blank.png"), "--out", str(out)
    )
    assert r.exit_code == 0 and "blank.png: unsure: no ink found, not a digit" in r.output
    r = _run_cli(
        "explain", "activations", str(ckpt), str(tmp_path / "three.png"), "--out", str(out)
    )
    assert "three.png: unsure: best guess " in r.output and "under the threshold 0.5" in r.output
    r = _run_cli("explain", "activations", str(ckpt), str(tmp_path / "dot.png"), "--out", str(out))
    (predicted,) = json.loads(
        _run_cli("predict", str(ckpt), str(tmp_path / "dot.png"), "--json").stdout
    )
    assert (
        r.exit_code == 1 and predicted["error"] in r.output
    )  # "the image is 1x1 px: too small..."
    assert "Traceback" not in r.output


def test_activations_refuse_a_dataset_of_other_classes(tmp_path):
    from ckpt_files import write_v1_checkpoint

    fashion = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]  # fmt: skip
    torch.manual_seed(0)
    payload = {
        "model": {"name": "tutorial", "kwargs": {"num_classes": 10, "in_chans": 1}},
        "state_dict": create_model("tutorial").state_dict(),
        "classes": fashion,
        "dataset": "fashion-mnist",
    }
    ckpt = write_v1_checkpoint(tmp_path / "fashion.pt", payload)
    empty = tmp_path / "no-data"  # refused before any data is read
    r = _run_cli("explain", "activations", str(ckpt), "mnist:test:0", "--data-root", str(empty))
    assert r.exit_code == 1, r.output
    assert (
        "mnist:test:0: the model's classes (trained on fashion-mnist) are not mnist's" in r.output
    )
    assert "T-shirt/top, Trouser" in r.output and "0, 1, 2" in r.output
    assert "e.g. fashion-mnist:test:0" in r.output and not empty.exists()


# --- report pictures: no overlapping labels -------------------------------------------------


def test_worst_error_titles_keep_clear_of_the_images_above():
    from mnistcnn.evaluation.plots import plot_samples

    titles = [f"#{1000 + i} true 7\npred 1 p=0.99" for i in range(24)]
    fig = plot_samples(torch.ones(24, 28, 28), titles)  # 3 rows of 8, as the report draws
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for above, below in zip(fig.axes[:16], fig.axes[8:]):
        gap = above.get_window_extent(renderer).y0 - below.title.get_window_extent(renderer).y1
        assert gap >= 6 * fig.dpi / 100, gap  # pixels between an image and the title below


def test_curves_of_one_epoch_have_one_tick_and_the_label_clear_of_the_title():
    from mnistcnn.evaluation.plots import plot_curves

    row = {"epoch": 1, "train_loss": 0.7, "train_accuracy": 0.76, "test_loss": 0.29,
           "test_accuracy": 0.9122}  # fmt: skip
    fig = plot_curves([row])
    fig.canvas.draw()
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1"]  # not 0.96 .. 1.04
    ax_acc = fig.axes[1]
    (best,) = ax_acc.texts
    box, title = best.get_window_extent(), ax_acc.title.get_window_extent()
    assert best.get_text() == "91.22%" and not box.overlaps(title)
    assert ax_acc.get_window_extent().contains(box.x0, box.y1)  # inside the axes
    many = plot_curves([{**row, "epoch": e} for e in range(1, 31)])
    many.canvas.draw()
    ticks = [float(t) for t in many.axes[0].get_xticks()]
    assert all(t == int(t) for t in ticks) and len(ticks) < 12


def test_per_class_accuracy_overall_line_and_its_label_cross_no_bar_label():
    from mnistcnn.evaluation.plots import plot_per_class_accuracy

    accuracy = [0.861, 0.987, 0.942, 0.908, 0.954, 0.963, 0.933, 0.959, 0.726, 0.878]
    fig = plot_per_class_accuracy(accuracy, [f"{i} - x" for i in range(10)], overall=0.9122)
    fig.draw_without_rendering()
    (ax,) = fig.axes
    bars = ax.patches
    (line,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert line.get_zorder() < min(b.get_zorder() for b in bars)  # drawn behind the bars
    assert ax.get_legend() is None  # a legend box used to cover the last bar
    (label,) = [t for t in ax.texts if t.get_text().startswith("overall")]
    assert label.get_text() == "overall\n91.22%"
    assert label.get_window_extent().x0 >= ax.get_window_extent().x1  # right of the axes
    for bar in bars:
        assert not label.get_window_extent().overlaps(bar.get_window_extent())


def test_invariance_refuses_a_dataset_of_other_classes(tmp_path):
    from ckpt_files import write_v1_checkpoint
    from mnistcnn.data import get_spec

    torch.manual_seed(0)
    payload = {
        "model": {"name": "tutorial", "kwargs": {"num_classes": 10, "in_chans": 1}},
        "state_dict": create_model("tutorial").state_dict(),
        "classes": list(get_spec("mnist").classes),
        "dataset": "mnist",
    }
    ckpt = write_v1_checkpoint(tmp_path / "digits.pt", payload)
    empty = tmp_path / "no-data"  # refused before any data is read
    args = ["explain", "invariance", str(ckpt), "--dataset", "fashion-mnist"]
    r = _run_cli(*args, "--data-root", str(empty), "--out", str(tmp_path / "out"))
    assert r.exit_code == 1, r.output
    assert (
        "--dataset fashion-mnist: the model's classes (trained on mnist) are not fashion-mnist's"
        in r.output
    )
    assert "0, 1, 2" in r.output and "T-shirt/top, Trouser" in r.output
    assert "Traceback" not in r.output and not empty.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("image", "words"),
    [
        ("nonexist.png", "nonexist.png: no such file"),
        ("pics/seven", "pics/seven: no such file"),
        ("scan.JPEG", "scan.JPEG: no such file"),
        ("nonsense", "'nonsense' is neither an image file nor a dataset sample"),
        ("mnist:test:x", "'mnist:test:x' is neither an image file nor a dataset sample such"),
        (".", ".: a folder, not an image file"),
    ],
)
def test_activations_say_no_such_file_for_a_missing_path(tmp_path, image, words):
    from test_predict_predictor import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "model.pt")
    r = _run_cli("explain", "activations", str(ckpt), image, "--out", str(tmp_path / "act"))
    assert r.exit_code == 1 and f"error: {words}" in r.output, r.output


def test_invariance_writes_its_own_folder_and_says_when_it_replaces(tmp_path, monkeypatch):
    """Issue 13.13/14: not over the run's files, never silently replaced; no "0..0 px"."""
    import mnistcnn.data
    from ckpt_files import write_checkpoint
    from test_train_session import synthetic

    monkeypatch.setattr(mnistcnn.data, "load_arrays", lambda *a, **kw: synthetic(20, 1))
    torch.manual_seed(0)
    ckpt = write_checkpoint(tmp_path / "run" / "best.pt", create_model("tutorial"))
    first = _run_cli("explain", "invariance", str(ckpt), "--device", "cpu")
    assert first.exit_code == 0, first.output
    folder = tmp_path / "run" / "invariance"
    assert {p.name for p in folder.iterdir()} == {
        "invariance.png", "invariance.csv", "invariance.json"
    }  # fmt: skip
    assert not (tmp_path / "run" / "invariance.png").exists()
    assert "replacing" not in first.output and "0..0" not in first.output
    second = _run_cli("explain", "invariance", str(ckpt), "--device", "cpu")
    assert f"to {folder} (replacing the previous ones there)" in second.output


def test_a_transform_with_no_tolerance_says_none():
    from types import SimpleNamespace

    from click.testing import CliRunner

    from mnistcnn.cli.explain.trained import _print_invariance

    fake = SimpleNamespace(
        model="m", dataset="d", num_samples=5, plain_accuracy=0.9,
        series=lambda t: ([0.0, 1.0], [0.9, 0.5]),
        tolerated=lambda t, drop: (0.0, 0.0) if t == "shift" else (-5.0, 5.0),
    )  # fmt: skip
    import click

    @click.command()
    def show() -> None:
        _print_invariance(fake)

    out = CliRunner().invoke(show).output
    assert "shift none" in out and "0..0" not in out and "rotation -5..5 deg" in out
