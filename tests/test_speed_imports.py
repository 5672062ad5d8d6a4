"""Commands import only what they use: a fast training run prints its result before any
plotting library or torchvision is loaded, and never loads torch._dynamo.

Importing torchvision (which loads torch._dynamo through torchvision.ops), matplotlib or
torch._dynamo costs seconds on a small CPU, more than the ``fast`` recipe's whole epoch
budget (benchmarks/README.md, "Start-up"). Each test runs the real command in a fresh
interpreter through ``tests/import_probe.py`` and reads the modules loaded when the
result line was printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("import_probe.py")
HEAVY = (
    "torchvision",
    "matplotlib",
    "torch._dynamo",
    "torch._inductor",
    "torchmetrics",
    "scipy",
    "skimage",
)


def loaded_at(line_prefix: str, args: list[str], tmp_path: Path) -> dict[str, list[str]]:
    """Run ``python -m mnistcnn ARGS``; the modules loaded at the first line starting with
    ``line_prefix`` (``"at_line"``) and at exit (``"exit"``)."""
    out = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, str(PROBE), str(out), line_prefix, "--", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen: dict[str, list[str]] = json.loads(out.read_text())
    assert "at_line" in seen, f"no line starting with {line_prefix!r}:\n{proc.stdout}"
    return seen


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]


def test_fast_training_prints_its_result_before_loading_plots_or_torchvision(mnist_root, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--recipe", "fast", "--max-steps", "2", "--train-subset", "512"]
    args += ["--no-progress", "--data-root", str(mnist_root), "--out", str(run)]
    seen = loaded_at("final test accuracy", args, tmp_path)
    assert "torch" in seen["at_line"] and "mnistcnn.engine.loop" in seen["at_line"]
    assert heavy(seen["at_line"]) == []
    assert heavy(seen["exit"]) == []  # the fast recipe writes its report on demand
    assert {p.name for p in run.iterdir()} >= {"best.pt", "last.pt", "metrics.csv", "config.json"}
    assert not (run / "report.html").exists()


def test_the_probe_sees_what_a_command_loads(tmp_path):
    """The probe itself: ``models`` builds the torchvision networks, and is seen doing so."""
    seen = loaded_at("resnet18 ", ["models"], tmp_path)
    assert "torchvision.models" in seen["at_line"] and "torch._dynamo" in seen["at_line"]


def test_predicting_one_picture_with_a_checkpoint_loads_only_torch(tmp_path):
    """``predict CKPT.pt one.png``: torch, Pillow and the preparation (SciPy for a drawn
    picture); no torch._dynamo (loading once ran a forward pass on the meta device, whose
    reference kernels import it), no torchvision, matplotlib or torchmetrics."""
    from digits_synth import digit
    from test_predict_inputs import encoded
    from test_predict_predictor import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "model.pt")
    picture = tmp_path / "one.png"
    picture.write_bytes(encoded(digit("3")))
    seen = loaded_at("1 picture", ["predict", str(ckpt), str(picture)], tmp_path)
    assert "torch" in seen["exit"] and "mnistcnn.predict.predictor" in seen["exit"]
    assert [m for m in heavy(seen["exit"]) if not m.startswith(("scipy", "skimage"))] == []


@pytest.fixture(scope="module")
def onnx_inputs(tmp_path_factory: pytest.TempPathFactory, mnist_root: Path) -> dict[str, Path]:
    """An exported model.onnx and pictures: ``mnist.png`` (MNIST test image 0, already in the
    dataset's 28x28 format), ``drawn.png`` (a digit drawn on white paper), a folder of
    28x28 pictures and an IDX file of 20 MNIST test images."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from PIL import Image

    from conftest import idx_bytes
    from digits_synth import digit
    from mnistcnn.artifact.export import export_model
    from mnistcnn.data import load_arrays
    from test_predict_inputs import encoded
    from test_predict_predictor import make_checkpoint

    folder = tmp_path_factory.mktemp("onnx-imports")
    ckpt = make_checkpoint(folder / "model.pt")
    onnx = export_model(ckpt, "onnx", parity_images=8, data_root=mnist_root).path
    images = load_arrays("mnist", train=False, root=mnist_root)[0][:20].numpy()
    (folder / "pics").mkdir()
    for i in range(3):
        Image.fromarray(images[i]).save(folder / "pics" / f"{i}.png")
    Image.fromarray(images[0]).save(folder / "mnist.png")
    (folder / "drawn.png").write_bytes(encoded(digit("3")))
    (folder / "t20.idx").write_bytes(idx_bytes(images))
    return {"model": onnx, "folder": folder}


@pytest.mark.parametrize(
    "args,line",
    [
        (["mnist.png"], "1 picture"),
        (["mnist.png", "--json"], "["),
        (["pics", "--csv", "--top-k", "11"], "note: --top-k 11"),  # the CSV is not echoed
        (["t20.idx", "--invert", "no", "--threshold", "0.9", "--json"], "["),
    ],
)
def test_predicting_with_an_onnx_never_imports_torch(onnx_inputs, tmp_path, args, line):
    """``predict model.onnx``: ONNX Runtime, Pillow, NumPy and the preparation; no torch.
    Pictures already in the dataset's format (and IDX images) load no SciPy either."""
    folder = onnx_inputs["folder"]
    inputs = [str(folder / a) if (folder / a).exists() else a for a in args]
    seen = loaded_at(line, ["predict", str(onnx_inputs["model"]), *inputs], tmp_path)
    assert "onnxruntime" in seen["exit"] and "mnistcnn.artifact.onnx_graph" in seen["exit"]
    assert "torch" not in seen["exit"] and "mnistcnn.artifact.trained" not in seen["exit"]
    assert heavy(seen["exit"]) == []


def test_predicting_a_drawn_picture_with_an_onnx_never_imports_torch(onnx_inputs, tmp_path):
    """A picture to find the ink in loads SciPy (and scikit-image), still no torch."""
    folder = onnx_inputs["folder"]
    args = ["predict", str(onnx_inputs["model"]), str(folder / "drawn.png")]
    seen = loaded_at("1 picture", args, tmp_path)
    assert "torch" not in seen["exit"] and "onnxruntime" in seen["exit"]
    assert [m for m in heavy(seen["exit"]) if not m.startswith(("scipy", "skimage"))] == []
