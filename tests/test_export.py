"""``mnistcnn export``: every registered model in every format, parity-checked, metadata inside.

Each registered model is saved as a checkpoint (seeded weights, BatchNorm
statistics made non-trivial) and exported as ONNX, TorchScript and an
ExportedProgram; the export's own parity check runs at batch sizes 1, 7 and 64
(72 images; models over 5 M parameters: 1 and 7, to keep the test fast), and
the written file is loaded back here, independently, and compared with the
eager model at those batch sizes. Refusals (parity, destination, missing
packages) leave no file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import mnistcnn
from ckpt_files import write_checkpoint
from mnistcnn.artifact import CheckpointError, TrainedModel, load
from mnistcnn.artifact import export as export_module
from mnistcnn.artifact.export import FORMATS, ExportError, default_out, export_model
from mnistcnn.artifact.export_meta import read_export_metadata
from mnistcnn.artifact.parity import (
    ParityError,
    batch_sizes,
    check_parity,
    load_parity_images,
)
from mnistcnn.models import classifier_name, create_model, list_models

BIG = 5_000_000  # parameters above which a model is checked at batch sizes 1 and 7 only
MEAN, STD = (0.1307,), (0.3081,)

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def _checkpoint(folder: Path, name: str) -> Path:
    torch.manual_seed(0)
    net = create_model(name).eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    with torch.no_grad():  # logits of a trained model's size (|logit| <= 10), not a random
        # deep net's hundreds, so the 1e-4 bound measures float error, not the logits' scale
        scale = net(torch.rand(8, 1, 28, 28)).abs().max().item() / 10
        if scale > 1:
            head = dict(net.named_modules())[classifier_name(name)]
            head.weight /= scale
            head.bias /= scale
    path = folder / f"{name}.pt"
    return write_checkpoint(path, net, mean=MEAN, std=STD, model_name=name, dataset="")


def _run_file(path: Path, fmt: str) -> nn.Module | object:
    """The written file, loaded the way a user of that format loads it."""
    if fmt == "onnx":
        return load(path)  # ONNX Runtime, through mnistcnn.load
    if fmt == "torchscript":
        with pytest.warns(FutureWarning):  # torch.jit.load is deprecated
            return torch.jit.load(str(path))
    return torch.export.load(str(path)).module()


def _cases() -> list[tuple[str, str]]:
    """Every model in ONNX (what predict and serve run); the other two formats for the
    models under BIG parameters (the big ones take a minute each per format on 2 cores)."""
    small = {
        n for n in list_models() if sum(p.numel() for p in create_model(n).parameters()) <= BIG
    }
    return [(n, f) for n in list_models() for f in FORMATS if f == "onnx" or n in small]


@pytest.mark.parametrize(("name", "fmt"), _cases())
def test_every_model_exports_with_parity_and_metadata(name, fmt, tmp_path):
    ckpt = _checkpoint(tmp_path, name)
    model = load(ckpt)
    big = sum(p.numel() for p in model.parameters()) > BIG
    n = 8 if big else 72
    report = export_model(ckpt, fmt, parity_images=n)
    sizes = [1, 7] if big else [1, 7, 64]
    assert report.path == default_out(ckpt, fmt) and report.path.stat().st_size == report.size_bytes
    p = report.parity
    assert p.passed and p.images == n and p.batch_sizes == sizes and p.top1_agreement == 1.0
    assert 0 <= p.max_abs_logit_difference <= 1e-4
    assert p.source.startswith(f"{n} random pictures") and "names no dataset" in p.source

    meta = read_export_metadata(report.path)
    assert meta["exported_as"] == fmt and meta["format"] == "mnistcnn.export"
    assert meta["model"] == {"name": name, "kwargs": {"num_classes": 10, "in_chans": 1}}
    assert meta["classes"] == [str(d) for d in range(10)]
    assert meta["normalization"] == {"mean": pytest.approx(MEAN), "std": pytest.approx(STD)}
    assert meta["input"]["normalized_in_graph"] is True and meta["input"]["shape"][0] == "batch"
    assert meta["input_size"] == [1, 28, 28] and meta["temperature"] == 1.0
    assert meta["preparation"]["method"] == "mnist" and meta["source"] == ckpt.name
    assert meta["exported_with"]["torch"] == torch.__version__
    assert meta["exported_with"]["mnistcnn"] == mnistcnn.__version__
    assert ("onnxruntime" in meta["exported_with"]) == (fmt == "onnx")
    assert meta["parity"]["batch_sizes"] == sizes and meta["parity"]["passed"] is True
    assert meta["parameters"] == sum(p.numel() for p in model.parameters())
    assert meta.get("onnx") == ({"opset": 20, "ir_version": 9} if fmt == "onnx" else None)

    exported = _run_file(report.path, fmt)
    gen = torch.Generator().manual_seed(5)
    with torch.inference_mode():
        for size in sizes:
            x = torch.rand(size, 1, 28, 28, generator=gen)
            diff = (exported(x) - model(x)).abs().max().item()  # type: ignore[operator]
            assert diff <= 1e-4, (name, fmt, size, diff)


def test_batch_sizes_cover_every_image():
    assert batch_sizes(1) == [1]
    assert batch_sizes(5) == [1, 4]
    assert batch_sizes(72) == [1, 7, 64]
    assert batch_sizes(1000) == [1, 7] + [64] * 15 + [32]
    assert sum(batch_sizes(12345)) == 12345


def test_parity_measures_the_largest_difference_and_top1_agreement():
    images = torch.rand(10, 1, 28, 28)
    logits = torch.zeros(10, 3)
    logits[:, 0] = 1.0

    def ref(x):
        return logits[: len(x)] if len(x) == 1 else logits[1 : 1 + len(x)]

    off = torch.zeros(10, 3)
    off[3, 1] = 2.0  # image 3: class 1 wins, by 1.0

    def shifted(x):
        return ref(x) + (off[: len(x)] if len(x) == 1 else off[1 : 1 + len(x)])

    p = check_parity(ref, ref, images, "test")
    assert (p.max_abs_logit_difference, p.top1_agreement, p.passed) == (0.0, 1.0, True)
    p = check_parity(ref, shifted, images, "test")
    assert p.max_abs_logit_difference == 2.0 and p.top1_agreement == 0.9 and not p.passed
    p = check_parity(ref, lambda x: ref(x) + 5e-5, images, "test")
    assert p.max_abs_logit_difference == pytest.approx(5e-5) and p.passed
    p = check_parity(ref, lambda x: ref(x) * float("nan"), images, "test")
    assert p.max_abs_logit_difference == float("inf") and not p.passed
    with pytest.raises(ParityError, match=r"logits \(1, 2\) for a batch of 1"):
        check_parity(ref, lambda x: ref(x)[:, :2], images, "test")


def test_a_graph_that_differs_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    ckpt = _checkpoint(tmp_path, "tutorial")
    exporter = export_module._EXPORTERS["torchscript"]
    real = exporter.load

    def drifting(blob):
        run = real(blob)
        return lambda x: run(x) + 3e-4  # 3 times the tolerance

    monkeypatch.setattr(exporter, "load", staticmethod(drifting))
    refused = r"refused to write .*tutorial\.torchscript.*difference\| 3\.0e-04"
    with pytest.raises(ParityError, match=refused):
        export_model(ckpt, "torchscript", parity_images=8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tutorial.pt"]  # no file, no temp file


def test_parity_images_come_from_the_checkpoints_test_split(mnist_root):
    from mnistcnn.data import load_arrays

    x, source = load_parity_images("mnist", 100, data_root=mnist_root)
    images, _ = load_arrays("mnist", train=False, root=mnist_root)
    assert source == "mnist test split (first 100 images)"
    assert x.shape == (100, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(x, images[:100, None].float() / 255.0)


def test_parity_falls_back_to_random_pictures_saying_why(monkeypatch, caplog):
    import mnistcnn.data
    from mnistcnn.data import SourceError

    def offline(*args, **kwargs):
        raise SourceError("mnist: every source failed (offline)")

    monkeypatch.setattr(mnistcnn.data, "load_arrays", offline)
    x, source = load_parity_images("mnist", 20)
    assert x.shape == (20, 1, 28, 28) and x.min() >= 0 and x.max() < 1
    assert source == (
        "20 random pictures (seed 0): the mnist test split is not available "
        "(mnist: every source failed (offline))"
    )
    assert "parity checked on 20 random pictures" in caplog.text
    assert torch.equal(load_parity_images("mnist", 20)[0], x)  # seeded


def test_destination_and_argument_errors(tmp_path):
    ckpt = _checkpoint(tmp_path, "tutorial")
    with pytest.raises(ExportError, match="format 'tflite' is not one of onnx, torchscript"):
        export_model(ckpt, "tflite")
    with pytest.raises(ExportError, match="parity_images 0 must be >= 1"):
        export_model(ckpt, "onnx", parity_images=0)
    with pytest.raises(ExportError, match="is the checkpoint itself") as info:
        export_model(ckpt, "torchscript", ckpt)
    assert info.value.setting == "out"
    (tmp_path / "taken.pt2").write_text("mine")
    with pytest.raises(ExportError, match=r"taken\.pt2 exists; pass overwrite"):
        export_model(ckpt, "exported-program", tmp_path / "taken.pt2", parity_images=1)
    assert (tmp_path / "taken.pt2").read_text() == "mine"
    report = export_model(
        ckpt, "exported-program", tmp_path / "taken.pt2", parity_images=1, overwrite=True
    )
    assert report.path.stat().st_size > 10_000
    with pytest.raises(ExportError, match="give the file to write a model object to"):
        export_model(load(ckpt), "onnx")


def test_a_model_object_exports_without_being_changed(tmp_path):
    model = load(_checkpoint(tmp_path, "tutorial"))
    model.calibration = {"temperature": 1.5}
    report = export_model(model, "torchscript", tmp_path / "m.torchscript", parity_images=8)
    meta = read_export_metadata(report.path)
    assert meta["temperature"] == 1.5 and meta["source"] == ""
    assert isinstance(model, TrainedModel) and next(model.parameters()).device.type == "cpu"


def test_missing_onnx_packages_name_the_extra(tmp_path, monkeypatch):
    ckpt = _checkpoint(tmp_path, "tutorial")
    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "onnxscript", None)  # import fails
        with pytest.raises(
            ExportError, match=r"ONNX export needs onnxscript: pip install 'mnistcnn\[onnx\]'"
        ):
            export_model(ckpt, "onnx")
    report = export_model(ckpt, "onnx", parity_images=1)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(
        CheckpointError, match=r"needs ONNX Runtime: pip install 'mnistcnn\[onnx\]'"
    ):
        load(report.path)


def test_foreign_and_broken_onnx_files_are_named(tmp_path):
    import onnx

    ckpt = _checkpoint(tmp_path, "tutorial")
    report = export_model(ckpt, "onnx", parity_images=1)
    proto = onnx.load(str(report.path))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "plain.onnx"))
    with pytest.raises(
        CheckpointError, match=r"plain\.onnx: an ONNX model without mnistcnn metadata"
    ):
        load(tmp_path / "plain.onnx")
    proto.metadata_props.add(
        key="mnistcnn", value=json.dumps({"format": "mnistcnn.export", "format_version": 9})
    )
    onnx.save(proto, str(tmp_path / "future.onnx"))
    with pytest.raises(CheckpointError, match="export format version 9 is newer"):
        load(tmp_path / "future.onnx")
    (tmp_path / "cut.onnx").write_bytes(report.path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"cut\.onnx: ONNX Runtime cannot load it"):
        load(tmp_path / "cut.onnx")
    with pytest.raises(CheckpointError, match=r"a zip archive without mnistcnn export metadata"):
        read_export_metadata(ckpt)


@pytest.mark.parametrize(
    ("fmt", "named"),
    [
        ("torchscript", "a TorchScript archive"),
        ("exported-program", r"an ExportedProgram \(torch.export\)"),
    ],
)
def test_an_exported_file_given_as_a_checkpoint_is_named(fmt, named, tmp_path):
    """predict/calibrate/--init read .pt checkpoints: an export is named, not 'corrupted'."""
    report = export_model(_checkpoint(tmp_path, "fastcnn"), fmt, parity_images=8)
    with pytest.raises(CheckpointError, match=f"{named} written by `mnistcnn export`"):
        load(report.path)


def test_an_out_name_of_another_format_is_refused(tmp_path):
    """--out x.torchscript with the ONNX format would write a file every reader misreads."""
    ckpt = _checkpoint(tmp_path, "fastcnn")
    with pytest.raises(ExportError, match=r"named like a torchscript file but the format is onnx"):
        export_model(ckpt, "onnx", out=tmp_path / "m.torchscript", parity_images=8)
    assert not (tmp_path / "m.torchscript").exists()
    report = export_model(ckpt, "onnx", out=tmp_path / "m.model", parity_images=8)  # free names ok
    assert report.path.is_file()


# --- the ONNX opset, and files too new for the ONNX Runtime here -------------------------------


def test_cli_export_opset_is_written_recorded_and_parity_checked(tmp_path):
    """NudeNet#156 kind: an export only an ONNX Runtime of 2024 or later can read."""
    from click.testing import CliRunner

    from mnistcnn.artifact.onnx_model import onnx_versions
    from mnistcnn.cli import main

    ckpt = _checkpoint(tmp_path, "tutorial")
    out = tmp_path / "m18.onnx"
    args = ["export", str(ckpt), "--out", str(out), "--parity-images", "8"]
    result = CliRunner().invoke(main, [*args, "--opset", "18"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"wrote {out} (onnx, opset 18, IR version 8, ")
    assert "top-1 agreement 100.00% (8/8)" in result.stdout
    assert onnx_versions(out) == (8, 18)  # the file itself, read back
    meta = read_export_metadata(out)
    assert meta["onnx"] == {"opset": 18, "ir_version": 8} and meta["parity"]["passed"] is True
    x = torch.rand(3, 1, 28, 28)
    with torch.inference_mode():
        assert (load(out)(x) - load(ckpt)(x)).abs().max().item() <= 1e-4
    default = export_model(ckpt, "onnx", tmp_path / "m.onnx", parity_images=1)
    assert default.metadata["onnx"] == {"opset": 20, "ir_version": 9}

    low = CliRunner().invoke(main, [*args, "--opset", "13", "--overwrite"])
    assert low.exit_code == 1
    assert low.stderr.strip() == (
        "error: --opset 13: PyTorch's ONNX exporter could not convert model 'tutorial' down to "
        "it (it wrote opset 18); choose an opset from 18 to 23"
    )
    assert onnx_versions(out) == (8, 18)  # the refused export left the file alone
    other = CliRunner().invoke(main, [*args, "--opset", "18", "--format", "torchscript"])
    assert other.exit_code == 1 and "only an ONNX export has an opset" in other.stderr
    assert CliRunner().invoke(main, [*args, "--opset", "30"]).exit_code == 2  # click's range


def test_runtime_needed_by_ir_version_and_opset():
    from mnistcnn.artifact.onnx_model import runtime_needed

    assert runtime_needed(8, 18) == "1.14"
    assert runtime_needed(9, 20) == "1.17"  # the default export
    assert runtime_needed(10, 21) == "1.18"
    assert runtime_needed(10, 17) == "1.18"  # the IR version decides
    assert runtime_needed(11, 23) is None  # newer than the table: "a newer ONNX Runtime"


def test_a_too_new_onnx_file_says_which_runtime_it_needs(tmp_path, monkeypatch):
    import onnx
    import onnxruntime

    ckpt = _checkpoint(tmp_path, "tutorial")
    report = export_model(ckpt, "onnx", parity_images=1)
    proto = onnx.load(str(report.path))
    proto.ir_version = 99  # no ONNX Runtime reads it
    onnx.save(proto, str(tmp_path / "future.onnx"))
    with pytest.raises(CheckpointError) as info:
        load(tmp_path / "future.onnx")
    message = str(info.value)
    assert "future.onnx: ONNX Runtime cannot load it: " in message
    assert message.endswith(
        f". The file is ONNX IR version 99, opset 20: it needs a newer ONNX Runtime (this is "
        f"{onnxruntime.__version__}); upgrade onnxruntime, or export the checkpoint again for "
        "an older runtime with `mnistcnn export --opset N` (opset 18: ONNX Runtime 1.14 or newer)"
    )

    def old_runtime(*args, **kwargs):  # what ONNX Runtime 1.16 says of the default export
        raise RuntimeError("Unsupported model IR version: 9, max supported IR version: 8")

    monkeypatch.setattr(onnxruntime, "__version__", "1.16.3")
    monkeypatch.setattr(onnxruntime, "InferenceSession", old_runtime)
    with pytest.raises(
        CheckpointError, match=r"needs ONNX Runtime 1\.17 or newer \(this is 1\.16\.3\)"
    ):
        load(report.path)
