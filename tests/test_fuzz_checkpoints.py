"""Hostile checkpoints: each is loaded or refused with a CheckpointError, nothing else.

A pickle that would run code must be refused *without* running it (a marker
file it would create must not appear). Example counts come from the hypothesis
profile (``tests/fuzzing.py``).
"""

from __future__ import annotations

import gzip
import os
import pickle
import resource
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fuzzing  # noqa: F401  (registers and loads the hypothesis profile)
from ckpt_files import write_v1_checkpoint
from mnistcnn.artifact import (
    CheckpointError,
    load_checkpoint,
    load_model,
)
from mnistcnn.config import recipe_config
from mnistcnn.models import create_model, list_models

FEW = max(1, settings.default.max_examples // 4)  # torch.load takes milliseconds


def payload(net: torch.nn.Module | None = None, **changes: Any) -> dict[str, Any]:
    """What training writes (weights, model description, classes, normalization...)."""
    torch.manual_seed(0)
    net = net or create_model("tutorial")
    base = {
        "model": {"name": "tutorial", "kwargs": {"num_classes": 10, "in_chans": 1}},
        "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "classes": [str(i) for i in range(10)],
        "normalization": {"mean": [0.0], "std": [1.0]},
        "input_size": [1, 28, 28],
        "dataset": "mnist",
        "epoch": 1,
        "step": 10,
        "config": recipe_config("tutorial").to_dict(),
        "history": [{"epoch": 1, "test_accuracy": 0.5}],
    }
    return {**base, **changes}


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_v1_checkpoint(tmp_path_factory.mktemp("ckpt") / "good.pt", payload())


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-ckpt")


class _Touch:
    """Unpickling this creates ``marker`` (by calling ``open(marker, "w")``)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


class _System:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _evil_files(folder: Path, marker: Path) -> dict[str, Path]:
    m = str(marker)
    files = {
        "zip, code beside the weights": {"format": "mnistcnn.checkpoint", "x": _Touch(m)},
        "zip, code as the state_dict": payload(state_dict=_System(m)),
        "zip, code inside the model dict": payload(model={"name": _Touch(m)}),
    }
    out = {}
    for i, (name, obj) in enumerate(files.items()):
        out[name] = folder / f"evil{i}.pt"
        torch.save(obj, out[name])
    out["legacy torch format"] = folder / "legacy.pt"
    torch.save(payload(extra=_System(m)), out["legacy torch format"],
               _use_new_zipfile_serialization=False)  # fmt: skip
    out["a bare pickle"] = folder / "bare.pkl"
    out["a bare pickle"].write_bytes(pickle.dumps(_System(m)))
    return out


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the bare pickle
def test_code_executing_pickles_are_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    for name, path in _evil_files(tmp_path, marker).items():
        for load in (load_checkpoint, load_model):
            with pytest.raises(CheckpointError, match="refused") as err:
                load(path)
            assert str(path) in str(err.value), name
            assert not marker.exists(), f"{name}: code ran during {load.__name__}"
    pickle.loads((tmp_path / "bare.pkl").read_bytes())  # control: the payload does run
    assert marker.exists()


def test_resume_from_a_code_executing_pickle_is_refused(tmp_path):
    from mnistcnn.engine import train

    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "pwned"
    torch.save(payload(optimizer=_System(str(marker))), run / "last.pt")
    with pytest.raises(CheckpointError, match="refused"):
        train(recipe_config("tutorial"), resume=run, handle_signals=False)
    assert not marker.exists()


def test_another_architecture_is_refused_with_the_reason(work):
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    write_v1_checkpoint(work / "other.pt", payload(state_dict=other.state_dict()))
    with pytest.raises(CheckpointError, match=r"do not fit architecture 'tutorial'.*Missing key"):
        load_model(work / "other.pt")
    write_v1_checkpoint(work / "unknown.pt", payload(model={"name": "resnet9000", "kwargs": {}}))
    with pytest.raises(CheckpointError, match="resnet9000") as err:
        load_model(work / "unknown.pt")
    assert all(name in str(err.value) for name in list_models()), "lists the valid models"
    wrong = payload(model={"name": "tutorial", "kwargs": {"num_classes": 47, "in_chans": 1}})
    write_v1_checkpoint(work / "classes.pt", wrong)
    with pytest.raises(CheckpointError, match=r"size mismatch for net\.fc3\.weight"):
        load_model(work / "classes.pt")


def test_lying_model_arguments_never_allocate_their_claim(work):
    """num_classes of 5e9 (a 2 TB head) or a 10**6 x 10**6 input: refused, checked on meta."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    liar = payload(model={"name": "tutorial", "kwargs": {"num_classes": 5 * 10**9}})
    write_v1_checkpoint(work / "liar.pt", liar)
    with pytest.raises(CheckpointError, match=r"size mismatch for net\.fc3\.weight"):
        load_model(work / "liar.pt")
    write_v1_checkpoint(work / "wide.pt", payload(input_size=[1, 10**6, 10**6]))
    with pytest.raises(CheckpointError, match="cannot take the checkpoint's input size"):
        load_model(work / "wide.pt")
    write_v1_checkpoint(work / "nameless.pt", payload(classes=None, model=liar["model"]))
    with pytest.raises(CheckpointError, match="no 'classes'"):
        load_model(work / "nameless.pt")
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 512 * 1024, f"peak memory grew by {grown} KiB"


def test_missing_and_extra_state_dict_keys_are_named(work):
    weights = payload()["state_dict"]
    missing = {k: v for k, v in weights.items() if k != "conv1.bias"}
    write_v1_checkpoint(work / "missing.pt", payload(state_dict=missing))
    with pytest.raises(
        CheckpointError, match=r'Missing key\(s\) in state_dict: "net\.conv1\.bias"'
    ):
        load_model(work / "missing.pt")
    write_v1_checkpoint(work / "extra.pt", payload(state_dict={**weights, "head.w": torch.ones(2)}))
    with pytest.raises(CheckpointError, match=r'Unexpected key\(s\) in state_dict: "net\.head\.w"'):
        load_model(work / "extra.pt")


def test_future_or_missing_format_version_is_refused(work):
    for version, message in [(3, "newer"), (99, "newer"), ("1", "version"), (None, "version")]:
        write_v1_checkpoint(work / "v.pt", payload())
        raw = torch.load(work / "v.pt", weights_only=True)
        raw["format_version"] = version
        torch.save(raw, work / "v.pt")
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(work / "v.pt")


def test_checkpoint_saved_on_cuda_loads_on_cpu(work, monkeypatch):
    """Simulated: torch.save records every storage's device as "cuda:0"."""
    original = payload()
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        write_v1_checkpoint(work / "gpu.pt", original)
    model, ckpt = load_model(work / "gpu.pt")  # map_location="cpu" is the default
    assert all(t.device.type == "cpu" for t in ckpt.state_dict.values())
    for k, v in original["state_dict"].items():
        assert torch.equal(model.state_dict()[f"net.{k}"], v)
    model, _ = load_model(work / "gpu.pt", map_location=torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(CheckpointError, match=r"CUDA.*map_location"):
            load_checkpoint(work / "gpu.pt", map_location=None)  # type: ignore[arg-type]


@settings(max_examples=FEW)
@given(cut=st.floats(0.0, 0.9999))
def test_truncated_anywhere_is_refused(good, work, cut):
    data = good.read_bytes()
    (work / "cut.pt").write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError):
        load_model(work / "cut.pt")


@settings(max_examples=FEW)
@given(data=st.data())
def test_flipped_bytes_load_or_are_refused(good, work, data):
    blob = bytearray(good.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    (work / "flip.pt").write_bytes(bytes(blob))
    try:
        model, _ = load_model(work / "flip.pt")
    except CheckpointError:
        return
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.just(torch.zeros(2)),
)
FIELDS = ["model", "state_dict", "classes", "normalization", "input_size", "epoch", "step",
          "dataset", "config", "history", "optimizer", "rng", "extra", "position", "best",
          "metrics", "versions", "calibration", "model.name", "model.kwargs",
          "model.kwargs.num_classes", "normalization.mean", "state_dict.conv1.weight",
          "precision", "preparation"]  # fmt: skip


@settings(max_examples=FEW)
@given(field=st.sampled_from(FIELDS), value=JUNK)
def test_malformed_fields_load_or_are_refused(work, field, value):
    raw = payload()
    *parents, leaf = field.split(".", 1) if field.startswith("state_dict") else field.split(".")
    target = raw
    for p in parents:
        target = target[p]
    target[leaf] = value
    write_v1_checkpoint(work / "field.pt", raw)
    try:
        model, ckpt = load_model(work / "field.pt")
    except CheckpointError as exc:
        assert str(work / "field.pt") in str(exc)
        return
    assert model(torch.zeros(1, *ckpt.input_size)).shape[0] == 1
    assert len(ckpt.mean) == len(ckpt.std) >= 1


def _png_bytes() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (28, 28)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("empty.pt", b"", "an empty file (0 bytes)"),
        ("digit.png", _png_bytes(), "a PNG image"),
        ("photo.pt", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "a JPEG image"),
        ("config.json", b'{\n  "lr": 0.01,\n  "epochs": 10\n}\n', "JSON text"),
        ("notes.txt", b"best run: 98.75%\n", "a text file"),
        ("page.pt", b"<!DOCTYPE html><html><body>404</body></html>", "an HTML page"),
        ("t10k.gz", gzip.compress(b"\0\0\x08\x03"), "a gzip file"),
    ],
)
def test_other_kinds_of_file_are_named_not_torch_errors(tmp_path, name, content, kind):
    """Our own message: the file, what it looks like, and what was expected."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {kind}")
    assert "not an mnistcnn checkpoint" in message and "written by `mnistcnn train`" in message
    assert "weights_only" not in message and "WeightsUnpickler" not in message
