"""An exported ``.onnx`` in ``mnistcnn predict`` and ``serve``: the same answers as the ``.pt``.

``trained`` fits the tutorial model on 3,000 real MNIST training images (two
passes, a few seconds; about 90 % test accuracy, so the pictures get confident
answers), saves it as a checkpoint and exports it as ONNX with the parity check
on real MNIST test images. Then the Predictor, ``mnistcnn predict --json`` and
the HTTP app answer the same pictures from both files: the same labels, and
probabilities within 1e-5.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.nn import functional as F

from ckpt_files import write_checkpoint
from digits_synth import make_digits, write_digits
from mnistcnn.artifact import OnnxModel, load
from mnistcnn.artifact.export import export_model
from mnistcnn.cli import main
from mnistcnn.models import create_model
from mnistcnn.predict import Predictor

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def trained(mnist_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(best.pt, best.onnx) of a tutorial model fitted on 3,000 MNIST images."""
    from mnistcnn.data import load_arrays

    images, labels = load_arrays("mnist", train=True, root=mnist_root)
    x = (images[:3000, None].float() / 255.0 - 0.1307) / 0.3081  # (3000, 1, 28, 28)
    labels = labels[:3000]
    torch.manual_seed(0)
    net = create_model("tutorial")
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    net.train()
    for _ in range(2):
        for start in range(0, 3000, 64):
            loss = F.cross_entropy(net(x[start : start + 64]), labels[start : start + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    folder = tmp_path_factory.mktemp("export-predict")
    config = {"seed": 0, "data_root": "/home/me/data", "mirror": "/home/me/mirror"}
    ckpt = write_checkpoint(
        folder / "best.pt", net.eval(), mean=(0.1307,), std=(0.3081,), config=config, epoch=2
    )
    report = export_model(ckpt, "onnx", parity_images=200, data_root=mnist_root)
    assert report.parity.source == "mnist test split (first 200 images)"
    assert report.parity.passed and report.parity.max_abs_logit_difference <= 1e-4
    return ckpt, report.path


def _close(a: Any, b: Any, where: str = "") -> None:
    """JSON values equal, numbers within TOLERANCE."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=TOLERANCE), where
    elif isinstance(a, dict):
        assert sorted(a) == sorted(b), where
        for key in a:
            _close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_onnx_predictor_gives_the_pytorch_predictions(trained, mnist_root):
    pt, onnx_path = trained
    ours, theirs = Predictor.from_checkpoint(pt), Predictor.from_checkpoint(onnx_path)
    assert theirs.graph is not None  # ONNX Runtime alone, numpy softmax: no torch
    assert isinstance(theirs.model, OnnxModel) and theirs.classes == ours.classes
    assert theirs.checkpoint is not None and theirs.checkpoint.dataset == "mnist"
    pictures = [d.image for d in make_digits(40, seed=1)]
    a, b = ours.predict(pictures), theirs.predict(pictures)
    assert sum(p.label is not None for p in a) >= 25  # confident answers to compare
    for p, q in zip(a, b):
        assert (p.label, p.unsure, p.error) == (q.label, q.unsure, q.error)
        assert [c for c, _ in p.topk] == [c for c, _ in q.topk]
        assert np.array_equal(p.input, q.input)  # the same 28x28 went to both models
        if p.probabilities is not None:
            assert np.abs(p.probabilities - q.probabilities).max() <= TOLERANCE
    from mnistcnn.data import load_arrays

    images, _ = load_arrays("mnist", train=False, root=mnist_root)
    batch = images[:100].numpy()  # IDX-style images: forward passes of 64
    assert np.abs(ours.probabilities(batch) - theirs.probabilities(batch)).max() <= TOLERANCE


def test_predict_json_of_the_onnx_is_the_pts(trained, tmp_path):
    pt, onnx_path = trained
    write_digits(tmp_path / "pics", 12, seed=2)
    runner = CliRunner()
    out = {}
    for path in (pt, onnx_path):
        result = runner.invoke(main, ["predict", str(path), str(tmp_path / "pics"), "--json"])
        assert result.exit_code == 0, result.output
        out[path.suffix] = json.loads(result.stdout)
    assert [p["label"] for p in out[".pt"]] == [p["label"] for p in out[".onnx"]]
    assert sum(p["label"] is not None for p in out[".pt"]) >= 6
    _close(out[".pt"], out[".onnx"])


@pytest.mark.parametrize(
    "flags", [["--json"], ["--json", "--top-k", "10", "--invert", "no", "--threshold", "0.9"]]
)
def test_predict_json_of_an_idx_file_and_pictures_is_the_same_from_the_onnx(
    trained, mnist_root, tmp_path, flags
):
    """An IDX file of 100 MNIST test images (forward passes of 64) and real-looking
    pictures, in one command: the .onnx (no torch) answers as the .pt, to 1e-5."""
    from conftest import idx_bytes
    from mnistcnn.data import load_arrays

    pt, onnx_path = trained
    images, _ = load_arrays("mnist", train=False, root=mnist_root)
    (tmp_path / "t100.idx").write_bytes(idx_bytes(images[:100].numpy()))
    write_digits(tmp_path / "pics", 6, seed=5)
    inputs = [str(tmp_path / "t100.idx"), str(tmp_path / "pics")]
    out = {}
    for path in (pt, onnx_path):
        result = CliRunner().invoke(main, ["predict", str(path), *inputs, *flags])
        assert result.exit_code == 0, result.output
        out[path.suffix] = json.loads(result.stdout)
    assert len(out[".onnx"]) == 106 and out[".onnx"][0]["path"].endswith("t100.idx#0")
    assert sum(p["label"] is not None for p in out[".onnx"]) >= 50
    assert [p["label"] for p in out[".pt"]] == [p["label"] for p in out[".onnx"]]
    _close(out[".pt"], out[".onnx"])


def test_a_calibrated_onnx_divides_by_its_temperature_as_the_pt(trained, mnist_root, tmp_path):
    from mnistcnn.artifact import load_checkpoint, save_checkpoint

    pt, _ = trained
    calibrated = tmp_path / "calibrated.pt"
    ckpt = load_checkpoint(pt)
    save_checkpoint(calibrated, ckpt.replace(calibration={"temperature": 1.7, "fitted_on": "x"}))
    report = export_model(calibrated, "onnx", parity_images=8, data_root=mnist_root)
    ours, theirs = Predictor.from_checkpoint(calibrated), Predictor.from_checkpoint(report.path)
    assert theirs.graph is not None and theirs.calibrated and theirs.temperature == 1.7
    pictures = [d.image for d in make_digits(10, seed=6)]
    for p, q in zip(ours.predict(pictures), theirs.predict(pictures)):
        assert (p.label, p.unsure) == (q.label, q.unsure)
        if p.probabilities is not None:
            assert np.abs(p.probabilities - q.probabilities).max() <= TOLERANCE


def test_serve_answers_the_same_from_the_onnx(trained):
    from fastapi.testclient import TestClient

    from mnistcnn.serve.server import ModelSource, build_app

    pt, onnx_path = trained
    digits = make_digits(6, seed=3)
    files = [
        ("file", (f"{i}.png", d.data, "application/octet-stream")) for i, d in enumerate(digits)
    ]
    answers, infos = {}, {}
    for path in (pt, onnx_path):
        with TestClient(build_app(ModelSource(str(path)))) as client:
            r = client.post("/v1/predict", files=files)
            assert r.status_code == 200, r.text
            answers[path.suffix] = r.json()
            infos[path.suffix] = client.get("/v1/model").json()
    _close(answers[".pt"], answers[".onnx"])
    assert infos[".onnx"].pop("checkpoint") == "best.onnx"
    assert infos[".pt"].pop("checkpoint") == "best.pt"
    assert infos[".onnx"]["parameters"] == infos[".pt"]["parameters"] > 0
    _close(infos[".pt"], infos[".onnx"])


def test_cli_export_prints_the_parity_and_refuses_to_overwrite(trained, mnist_root, tmp_path):
    pt, _ = trained
    out = tmp_path / "model.pt2"
    args = ["export", str(pt), "--format", "exported-program", "--out", str(out)]
    args += ["--parity-images", "71", "--data-root", str(mnist_root)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()
    assert first.startswith(f"wrote {out} (exported-program, 0.") and " MB; exported in " in first
    assert second.startswith(
        "parity with PyTorch on mnist test split (first 71 images), batches of 1, 7, 63: "
        "largest |logit difference| "
    )
    assert second.endswith("top-1 agreement 100.00% (71/71)")
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1
    assert f"error: {out} exists; pass --overwrite to replace it" in again.stderr
    result = CliRunner().invoke(main, [*args, "--overwrite", "--json"])
    report = json.loads(result.stdout)
    assert report["format"] == "exported-program" and report["parity"]["passed"] is True
    assert report["size_bytes"] == out.stat().st_size and report["model"] == "tutorial"


def test_load_gives_the_onnx_its_checkpoints_metadata(trained):
    pt, onnx_path = trained
    a, b = load(pt), load(onnx_path)
    assert (b.classes, b.mean, b.std, b.input_size) == (a.classes, a.mean, a.std, a.input_size)
    assert (b.model_name, b.preparation, b.temperature) == (a.model_name, a.preparation, 1.0)
    assert b.checkpoint is not None and b.checkpoint.epoch == 2
    assert b.checkpoint.config == {"seed": 0}  # no paths of the training machine
    x = torch.rand(3, 1, 28, 28)
    with torch.inference_mode():
        assert (b(x) - a(x)).abs().max() <= 1e-4
    assert torch.allclose(b.probabilities(x), a.probabilities(x), atol=TOLERANCE)


def test_explain_refuses_an_onnx_graph_naming_the_pt(trained, tmp_path):
    """An ONNX graph has no layers to show: a clear error, not a traceback."""
    from click.testing import CliRunner
    from PIL import Image

    from mnistcnn.cli import main

    _, onnx_path = trained
    picture = tmp_path / "seven.png"
    Image.new("L", (40, 40), 255).save(picture)
    for args in (["explain", "activations", str(onnx_path), str(picture)],
                 ["explain", "model", str(onnx_path)]):  # fmt: skip
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, result.output
        assert "exported ONNX graph has no PyTorch layers" in result.output
        assert "Traceback" not in result.output
