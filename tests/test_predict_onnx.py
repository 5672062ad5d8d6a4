"""An exported ``.onnx`` predicted without torch: OnnxGraph, numpy softmax, both Predictor routes.

``Predictor.from_checkpoint("model.onnx")`` on the CPU runs ONNX Runtime alone (an
:class:`~mnistcnn.artifact.onnx_graph.OnnxGraph`, numpy's softmax); everything that needs
a torch module gets the :class:`~mnistcnn.artifact.onnx_model.OnnxModel` over the same
session. Both routes, and the ``.pt`` the file was exported from, give the same
probabilities. (That the command imports no torch: ``tests/test_speed_imports.py``.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from digits_synth import make_digits
from mnistcnn.artifact import CheckpointError, OnnxModel, load
from mnistcnn.artifact.onnx_graph import OnnxGraph, open_onnx
from mnistcnn.predict import Predictor
from mnistcnn.predict.predictor import softmax
from test_predict_predictor import make_checkpoint

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, mnist_root: Path) -> tuple[Path, Path]:
    """(model.pt, model.onnx): a tutorial model with seeded random weights, exported."""
    from mnistcnn.artifact.export import export_model

    pt = make_checkpoint(tmp_path_factory.mktemp("onnx-predict") / "model.pt", seed=3)
    report = export_model(pt, "onnx", parity_images=16, data_root=mnist_root)
    return pt, report.path


@pytest.mark.parametrize("temperature", [1.0, 0.5, 1.7, 3.0])
def test_numpy_softmax_is_torchs_within_1e_6(temperature):
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((400, 10)) * rng.choice([0.1, 3.0, 30.0], (400, 1))).astype(
        np.float32
    )
    got = softmax(logits, temperature)
    want = F.softmax(torch.from_numpy(logits) / temperature, dim=1).numpy()
    assert got.dtype == np.float32 and got.shape == (400, 10)
    assert np.abs(got - want).max() <= 1e-6
    assert np.abs(got.sum(axis=1) - 1).max() <= 1e-6
    assert np.array_equal(got.argmax(1), want.argmax(1))


def test_onnx_graph_holds_the_checkpoints_fields_and_its_logits(exported):
    pt, onnx_path = exported
    graph, model = open_onnx(onnx_path), load(pt)
    assert isinstance(graph, OnnxGraph)
    assert graph.classes == model.classes and graph.classes[3] == "3 - three"
    assert (graph.mean, graph.std, graph.input_size) == (model.mean, model.std, [1, 28, 28])
    assert (graph.preparation, graph.model_name) == (model.preparation, "tutorial")
    assert (graph.temperature, graph.calibrated, graph.precision) == (1.0, False, "fp32")
    assert graph.checkpoint.dataset == "mnist" and graph.checkpoint.state_dict == {}
    assert graph.metadata["format"] == "mnistcnn.export" and graph.path == onnx_path
    x = np.random.default_rng(1).random((5, 1, 28, 28))  # float64: converted to float32
    logits = graph.logits(x)
    assert logits.dtype == np.float32 and logits.shape == (5, 10)
    with torch.inference_mode():
        want = model(torch.from_numpy(x).float()).numpy()
    assert np.abs(logits - want).max() <= 1e-4
    assert "model.onnx" in repr(graph) and "tutorial" in repr(graph)


def test_open_onnx_names_a_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nothere\.onnx: no such file"):
        open_onnx(tmp_path / "nothere.onnx")


def test_predictor_of_an_onnx_on_the_cpu_runs_the_graph_and_makes_its_module_on_demand(exported):
    _, onnx_path = exported
    p = Predictor.from_checkpoint(onnx_path)
    assert isinstance(p.graph, OnnxGraph) and p._model is None  # no torch module yet
    assert p.checkpoint is p.graph.checkpoint and p.device == torch.device("cpu")
    images = np.random.default_rng(2).integers(0, 256, (70, 28, 28), dtype=np.uint8)
    fast = p.probabilities(images)  # the numpy route
    model = p.model  # built now, over the same session
    assert isinstance(model, OnnxModel) and model.graph is p.graph and p.model is model
    assert p.graph is not None  # still predicting with the graph
    with torch.inference_mode():
        x = torch.from_numpy(images).float()[:, None] / 255  # (70, 1, 28, 28)
        want = F.softmax(model(x), dim=1).numpy()
    assert np.abs(fast - want).max() <= 1e-6
    p.model = load(onnx_path)  # another model: used from now on, through torch
    assert p.graph is None and np.abs(p.probabilities(images) - fast).max() <= 1e-6


def test_the_torch_route_and_the_graph_route_give_the_same_verdicts(exported):
    pt, onnx_path = exported
    light = Predictor.from_checkpoint(onnx_path, device="cpu", top_k=5)
    torch_route = Predictor.from_checkpoint(onnx_path, device="auto", top_k=5)  # cpu here
    from_pt = Predictor.from_checkpoint(pt, top_k=5)
    assert light.graph is not None and torch_route.graph is None
    assert isinstance(torch_route.model, OnnxModel)
    pictures = [d.image for d in make_digits(8, seed=4)]
    a, b, c = (q.predict(pictures) for q in (light, torch_route, from_pt))
    for x, y, z in zip(a, b, c):
        assert np.array_equal(x.input, y.input) and np.array_equal(x.input, z.input)
        assert [k for k, _ in x.topk] == [k for k, _ in y.topk] == [k for k, _ in z.topk]
        assert np.abs(x.probabilities - y.probabilities).max() <= 1e-6
        assert np.abs(x.probabilities - z.probabilities).max() <= 1e-5


def test_a_graph_runs_on_the_cpu_only(exported):
    _, onnx_path = exported
    with pytest.raises(ValueError, match="an OnnxGraph runs on the CPU, not 'cuda'"):
        Predictor(open_onnx(onnx_path), device="cuda")


def test_evaluate_says_an_onnx_graph_runs_in_float32(exported, mnist_root):
    """ONNX Runtime computes the graph in float32 whatever the training precision:
    evaluate says so instead of "as trained", and refuses --precision bf16."""
    from click.testing import CliRunner

    from mnistcnn.cli import main

    _, onnx = exported
    args = ["evaluate", str(onnx), "--data-root", str(mnist_root)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "(precision fp32, ONNX Runtime)" in result.output
    refused = CliRunner().invoke(main, [*args, "--precision", "bf16"])
    assert refused.exit_code == 2
    assert "computes in float32" in refused.output and "--precision bf16" in refused.output
