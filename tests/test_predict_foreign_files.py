"""Files that are not quite pictures or not quite checkpoints (issue 13.10 and 13.11).

A HEIC photo named ``.jpg``, a two-page TIFF, a little-endian IDX file; a
checkpoint saved from ``nn.DataParallel`` and a bare ``state_dict``.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

import mnistcnn
from digits_synth import digit
from mnistcnn.cli import main
from mnistcnn.errors import CheckpointError
from mnistcnn.predict import Predictor
from test_predict_predictor import make_checkpoint

HEIC = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 200


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    return make_checkpoint(tmp_path / "model.pt")


def two_page_tiff() -> bytes:
    """A blank cover page, then a 7."""
    buf = io.BytesIO()
    blank = Image.new("L", (120, 120), 255)
    blank.save(buf, "TIFF", save_all=True, append_images=[digit("7", size=(120, 120))])
    return buf.getvalue()


def little_endian_idx() -> bytes:
    images = np.zeros((2, 28, 28), np.uint8)
    images[1, 5:22, 12:16] = 255
    return struct.pack("<4I", 0x00000803, 2, 28, 28) + images.tobytes()


def predict_json(*args: str) -> list[dict]:
    r = CliRunner().invoke(main, ["predict", *args, "--json"])
    return json.loads(r.stdout)


def test_heic_named_jpg_is_named_with_what_to_do(ckpt: Path, tmp_path: Path) -> None:
    photo = tmp_path / "IMG_0001.jpg"
    photo.write_bytes(HEIC)
    (p,) = predict_json(str(ckpt), str(photo))
    assert p["error"].startswith("a HEIC/HEIF image")
    assert "convert it to JPEG or PNG" in p["error"] and "heif-convert" in p["error"]


def test_every_page_of_a_multi_page_tiff_is_predicted(ckpt: Path, tmp_path: Path) -> None:
    scan = tmp_path / "scan.tif"
    scan.write_bytes(two_page_tiff())
    preds = predict_json(str(ckpt), str(scan))
    assert [p["path"] for p in preds] == [f"{scan}#page1", f"{scan}#page2"]
    assert preds[0]["unsure"] and preds[0]["topk"] == []  # the blank cover page
    assert preds[1]["error"] is None and len(preds[1]["topk"]) == 3
    # the 7 on page 2 is what the model sees, as if it were a file of its own
    alone = tmp_path / "seven.png"
    digit("7", size=(120, 120)).save(alone)
    predictor = Predictor.from_checkpoint(ckpt)
    page2, seven = predictor.predict([scan])[1], predictor.predict([alone])[0]
    assert np.array_equal(page2.input, seven.input)
    # a folder expands the pages too; bytes stay one picture (page 1)
    folder_preds = predict_json(str(ckpt), str(tmp_path))
    assert [Path(p["path"]).name for p in folder_preds] == [
        "scan.tif#page1",
        "scan.tif#page2",
        "seven.png",
    ]
    (as_bytes,) = predictor.predict([scan.read_bytes()])
    assert as_bytes.blank


def test_show_input_names_the_pages(ckpt: Path, tmp_path: Path) -> None:
    scan = tmp_path / "scan.tif"
    scan.write_bytes(two_page_tiff())
    shown = tmp_path / "shown"
    r = CliRunner().invoke(main, ["predict", str(ckpt), str(scan), "--show-input", str(shown)])
    assert r.exit_code == 0, r.output
    assert len(list(shown.glob("*.input.png"))) == 2


def test_little_endian_idx_is_named_byte_swapped(ckpt: Path, tmp_path: Path) -> None:
    import gzip

    idx = tmp_path / "le-images-idx3-ubyte"
    idx.write_bytes(little_endian_idx())
    gz = tmp_path / "le-images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(little_endian_idx()))
    for p in predict_json(str(ckpt), str(idx), str(gz)):
        assert "byte-swapped (little-endian: magic bytes 03 08 00 00)" in p["error"], p
        assert "the IDX format is big-endian (00 00 08 03)" in p["error"]


def test_server_names_heic_and_refuses_multi_page_tiff(ckpt: Path) -> None:
    from mnistcnn.serve import ServeSettings, create_app

    app = create_app(Predictor.from_checkpoint(ckpt), ServeSettings(), {"name": "tutorial"})
    with TestClient(app) as client:
        r = client.post("/v1/predict", files={"file": ("IMG_0001.jpg", HEIC, "image/jpeg")})
        assert r.status_code == 422
        assert "HEIC/HEIF" in r.json()["detail"] and "convert it to JPEG" in r.json()["detail"]
        b64 = base64.b64encode(two_page_tiff()).decode()
        r = client.post("/v1/predict", json={"image_base64": b64})
        assert r.status_code == 422 and "a TIFF of 2 pages" in r.json()["detail"]


# --- checkpoints from other tools ---------------------------------------------------------


def data_parallel_copy(ckpt: Path, out: Path, prefix: str = "module.") -> Path:
    """``ckpt`` with every weight's name prefixed, as ``nn.DataParallel`` saves them."""
    raw = torch.load(ckpt, weights_only=True)
    raw["state_dict"] = {f"{prefix}{k}": v for k, v in raw["state_dict"].items()}
    torch.save(raw, out)
    return out


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
def test_data_parallel_checkpoint_is_accepted(ckpt: Path, tmp_path: Path, prefix: str) -> None:
    dp = data_parallel_copy(ckpt, tmp_path / "dp.pt", prefix)
    want = Predictor.from_checkpoint(ckpt).predict([digit("3")])[0]
    got = Predictor.from_checkpoint(dp).predict([digit("3")])[0]
    assert np.array_equal(got.probabilities, want.probabilities)
    model = mnistcnn.load(dp)
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in model.state_dict())


def test_data_parallel_checkpoint_evaluates(ckpt: Path, tmp_path: Path, mnist_root: Path) -> None:
    dp = data_parallel_copy(ckpt, tmp_path / "dp.pt")
    r = CliRunner().invoke(
        main,
        ["evaluate", str(dp), "--data-root", str(mnist_root), "--out", str(tmp_path / "ev")],
    )
    assert r.exit_code == 0, r.output
    assert "module." not in r.output


def test_bare_state_dict_is_named_with_what_to_do(ckpt: Path, tmp_path: Path) -> None:
    raw = torch.load(ckpt, weights_only=True)
    bare = tmp_path / "bare.pt"
    torch.save({k[4:]: v for k, v in raw["state_dict"].items() if k.startswith("net.")}, bare)
    want = f"{bare}: a bare state_dict (e.g. from torch.save(model.state_dict())), not an mnistcnn"
    with pytest.raises(CheckpointError) as info:
        Predictor.from_checkpoint(bare)
    assert str(info.value).startswith(want) and "TrainedModel(" in str(info.value)
    for cmd in (["predict", str(bare), "x.png"], ["evaluate", str(bare)]):
        r = CliRunner().invoke(main, cmd)
        assert r.exit_code == 1 and f"error: {want}" in r.output, r.output
        assert "Traceback" not in r.output
    other = tmp_path / "other.pt"  # another trainer's dict holding a state_dict
    torch.save({"epoch": 3, "model_state_dict": torch.load(bare)}, other)
    r = CliRunner().invoke(main, ["predict", str(other), "x.png"])
    assert r.exit_code == 1 and "another tool's checkpoint holding a state_dict" in r.output
