"""Every picture mode Pillow opens, in every command that reads or shows pictures (issue 13.1).

A grayscale+alpha PNG (mode ``LA``) once made ``predict --show-input`` fail in
the plotting code and lose every row. Here each mode (1, L, LA, P with
transparency, I;16, I, F, RGB, RGBA, CMYK, YCbCr), as PNG and TIFF where the
format holds it, goes through the predictor, ``predict --show-input``, the
previews, ``explain conv/activations --image`` and the server, and must give
the same 28x28 input as the plain grayscale picture.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

from digits_synth import digit
from mnistcnn._io import decode_picture as decode_image
from mnistcnn.cli import main
from mnistcnn.predict import Predictor
from mnistcnn.prepare import Preparation, preview_copy
from test_predict_predictor import make_checkpoint

MODES = ("1", "L", "LA", "P", "I;16", "I", "F", "RGB", "RGBA", "CMYK", "YCbCr")


def in_mode(mode: str) -> Image.Image:
    """A 7 drawn on a 120x120 white picture, in ``mode``."""
    base = digit("7", size=(120, 120))
    if mode == "P":  # a palette with a transparent entry that nothing uses
        img = base.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
        img.info["transparency"] = 7
        return img
    if mode == "I;16":
        return Image.fromarray(np.asarray(base).astype(np.uint16) * 257)
    return base.convert(mode)


def encoded_modes() -> dict[str, bytes]:
    """``"<mode>.<png|tif>"`` -> file bytes, for each format that can store the mode."""
    out: dict[str, bytes] = {}
    for mode in MODES:
        img = in_mode(mode)
        for fmt, ext in (("PNG", "png"), ("TIFF", "tif")):
            buf = io.BytesIO()
            extra = {"transparency": 7} if mode == "P" and fmt == "PNG" else {}
            try:
                img.save(buf, fmt, **extra)
            except (OSError, ValueError, KeyError):
                continue  # PNG cannot hold I, F, CMYK, YCbCr
            out[f"{mode.replace(';', '_')}.{ext}"] = buf.getvalue()
    return out


FILES = encoded_modes()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("modes") / "model.pt")


@pytest.fixture(scope="module")
def mode_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pictures")
    for name, data in FILES.items():
        (d / name).write_bytes(data)
    return d


def test_every_mode_is_stored_in_some_format() -> None:
    stored = {Image.open(io.BytesIO(data)).mode for data in FILES.values()}
    assert stored >= set(MODES), set(MODES) - stored
    assert {"LA.png", "LA.tif"} <= set(FILES)


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_mode_decodes_prepares_and_previews(name: str) -> None:
    reference = Preparation().apply(digit("7", size=(120, 120))).image
    with decode_image(FILES[name]) as img:
        result = Preparation().apply(img)
        preview = preview_copy(img)
    assert result.ink_found and result.inverted
    diff = np.abs(result.image.astype(int) - reference.astype(int)).mean()
    assert diff < 4, (name, diff)  # the same 7 (1-bit and palette round a little)
    assert preview.mode in ("L", "RGB", "RGBA"), (name, preview.mode)
    assert np.asarray(preview).ndim in (2, 3) and np.asarray(preview).shape[-1] != 2


def test_predict_show_input_la_png_keeps_every_row(ckpt: Path, mode_dir: Path, tmp_path: Path):
    """The issue's reproduction: a good PNG and an LA PNG and TIFF, with --show-input."""
    good = tmp_path / "good.png"
    digit("3").save(good)
    files = [str(good), str(mode_dir / "LA.png"), str(mode_dir / "LA.tif")]
    shown = tmp_path / "shown"
    r = CliRunner().invoke(main, ["predict", str(ckpt), *files, "--show-input", str(shown)])
    assert r.exit_code == 0, r.output
    assert "Invalid shape" not in r.output and "Traceback" not in r.output
    assert len(r.stdout.splitlines()) == 4  # header + one row per file
    assert len(list(shown.glob("*.png"))) == 6  # two pictures per input
    r = CliRunner().invoke(
        main, ["predict", str(ckpt), *files, "--json", "--show-input", str(shown)]
    )
    assert [p["path"] for p in json.loads(r.stdout)] == files


def test_predict_show_input_every_mode(ckpt: Path, mode_dir: Path, tmp_path: Path) -> None:
    shown = tmp_path / "shown"
    r = CliRunner().invoke(
        main, ["predict", str(ckpt), str(mode_dir), "--show-input", str(shown), "--json"]
    )
    assert r.exit_code == 0, r.output
    preds = json.loads(r.stdout)
    assert len(preds) == len(FILES) and all(p["error"] is None for p in preds)
    assert len(list(shown.glob("*.input.png"))) == len(FILES)
    assert len(list(shown.glob("*.png"))) == 2 * len(FILES)


def test_a_failing_show_input_picture_is_reported_on_its_row(
    ckpt: Path, mode_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever breaks while drawing one picture, the other rows are still printed."""
    import mnistcnn.evaluation.plots

    real = mnistcnn.evaluation.plots.plot_predict_input

    def flaky(original, pixels, *args, **kwargs):  # type: ignore[no-untyped-def]
        if original is not None and original.mode == "RGBA":
            raise TypeError("cannot draw this one")
        return real(original, pixels, *args, **kwargs)

    monkeypatch.setattr(mnistcnn.evaluation.plots, "plot_predict_input", flaky)
    files = [str(mode_dir / n) for n in ("L.png", "RGBA.png", "RGB.png")]
    r = CliRunner().invoke(
        main, ["predict", str(ckpt), *files, "--show-input", str(tmp_path / "s")]
    )
    assert r.exit_code == 0, r.output
    rows = [line for line in r.stdout.splitlines() if "mode" not in line and ".png" in line]
    assert len(rows) == 3
    assert "--show-input pictures not written: TypeError: cannot draw this one" in rows[1]
    assert "not written" not in rows[0] + rows[2]
    assert f"warning: {files[1]}: --show-input pictures not written" in r.stderr


def test_explain_reads_every_mode(ckpt: Path, mode_dir: Path, tmp_path: Path) -> None:
    from mnistcnn.explain.conv_pictures import load_image_matrix
    from mnistcnn.explain.samples import load_image_file

    want = np.asarray(load_image_matrix(mode_dir / "L.png"))
    for name in FILES:
        got = np.asarray(load_image_matrix(mode_dir / name))
        assert np.abs(got - want).mean() < 4, name
        raw = np.asarray(load_image_matrix(mode_dir / name, preprocess=False, size=28))
        assert raw.shape == (28, 28), name
        pixels, how = load_image_file(mode_dir / name)
        assert pixels.shape == (28, 28) and "inverted" in how, name
    la = str(mode_dir / "LA.png")
    r = CliRunner().invoke(
        main, ["explain", "conv", "--image", la, "--save", str(tmp_path / "c.png")]
    )
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        main, ["explain", "activations", str(ckpt), la, "--out", str(tmp_path / "act")]
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "act" / "input.png").is_file()


def test_serve_answers_every_mode(ckpt: Path) -> None:
    from mnistcnn.serve import ServeSettings, create_app

    predictor = Predictor.from_checkpoint(ckpt)
    app = create_app(predictor, ServeSettings(), {"name": "tutorial"})
    with TestClient(app) as client:
        want = None
        for name, data in sorted(FILES.items()):
            kind = "image/png" if name.endswith("png") else "image/tiff"
            r = client.post("/v1/predict?return_input=true", files={"file": (name, data, kind)})
            assert r.status_code == 200, (name, r.text)
            (pred,) = r.json()["predictions"]
            assert pred["error"] is None, (name, pred["error"])
            seen = np.array(pred["input"])
            (direct,) = predictor.predict([data])
            assert np.array_equal(seen, direct.input), name
            want = seen if want is None else want
            assert np.abs(seen - want).mean() < 4, name
