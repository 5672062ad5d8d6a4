"""Pictures given as arrays: every documented dtype and shape, and the value-range rule
(issue 13.2 and 13.3; the rule is in docs/predict.md)."""

from __future__ import annotations

import numpy as np
import pytest

from digits_synth import digit
from mnistcnn.predict import Predictor
from mnistcnn.prepare import array_range, array_to_image, dataset_format
from test_predict_predictor import make_checkpoint


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    return Predictor.from_checkpoint(make_checkpoint(tmp_path_factory.mktemp("a") / "m.pt"))


def unit() -> np.ndarray:
    """A 7, dark ink on white, float64 in [0, 1], 100x100."""
    return np.asarray(digit("7", size=(100, 100)), np.float64) / 255


def variants() -> dict[str, np.ndarray]:
    g = unit()
    u8 = np.round(g * 255).astype(np.uint8)
    gray = {
        "uint8": u8,
        "uint16": np.round(g * 65535).astype(np.uint16),
        "uint32 0..65535": np.round(g * 65535).astype(np.uint32),
        "uint32 0..255": u8.astype(np.uint32),
        "int64 0..255": u8.astype(np.int64),
        "int16 0..255": u8.astype(np.int16),
        "int32 0..65535": np.round(g * 65535).astype(np.int32),
        "float32 0..1": g.astype(np.float32),
        "float64 0..255": g * 255,
        "float16 0..1": g.astype(np.float16),
        "bool": g > 0.5,
    }
    out = dict(gray)
    for name, a in gray.items():
        out[f"{name} (H, W, 1)"] = a[:, :, None]
        out[f"{name} (1, H, W)"] = a[None]
        out[f"{name} RGB"] = np.stack([a] * 3, -1)
        alpha = np.full(a.shape, a.max() if a.dtype != bool else True, a.dtype)
        out[f"{name} RGBA"] = np.stack([a] * 3 + [alpha], -1)
    return out


def test_uint16_full_white_is_a_blank_picture_not_an_error(predictor: Predictor) -> None:
    """The issue's reproduction: Pillow no longer takes fromarray(a, "I;16")."""
    (p,) = predictor.predict([np.full((100, 100), 65535, np.uint16)])
    assert p.error is None and p.blank and p.unsure


@pytest.mark.parametrize("name", sorted(variants()))
def test_every_documented_dtype_and_shape_gives_the_same_prediction(
    predictor: Predictor, name: str
) -> None:
    g = unit()
    same = (g > 0.5).astype(np.uint8) * 255 if name.startswith("bool") else np.round(g * 255)
    (want,) = predictor.predict([same.astype(np.uint8)])
    (got,) = predictor.predict([variants()[name]])
    assert got.error is None, got.error
    assert not got.blank and got.inverted
    assert np.abs(got.input.astype(int) - want.input.astype(int)).mean() < 1, name


def test_float_range_rule_and_its_errors(predictor: Predictor) -> None:
    """Float arrays: 0..1 unless a value is above 1, then 0..255; out of range says so."""
    g = unit()
    assert array_range(g) == 1.0 and array_range(g * 255) == 255.0
    assert array_range(np.array([[0, 1]], np.float32)) == 1.0
    assert array_range(np.array([[0, 300]], np.int64)) == 65535.0
    (from255,) = predictor.predict([(g * 255).astype(np.float32)])  # was "unsure (no ink)"
    (from1,) = predictor.predict([g.astype(np.float32)])
    assert not from255.blank and np.array_equal(from255.input, from1.input)
    bad = {
        "negative": g - 1,
        "above 255": g * 300,
        "nan": np.full((50, 50), np.nan),
        "int above 65535": np.full((50, 50), 70_000, np.int64),
        "negative int": np.full((50, 50), -3, np.int8),
    }
    preds = predictor.predict(list(bad.values()))
    for (what, _), p in zip(bad.items(), preds):
        assert p.error is not None, what
    assert "values span -1..0; expected 0..1 or 0..255" in preds[0].error
    assert "values span 0..300; expected 0..1 or 0..255" in preds[1].error
    assert "NaN" in preds[2].error
    assert "values span 70000..70000; expected 0..255 or 0..65535" in preds[3].error
    with pytest.raises(ValueError, match="dtype complex128"):
        array_to_image(np.zeros((20, 20), complex))
    with pytest.raises(ValueError, match=r"\(H, W\), \(H, W, 3\) or \(H, W, 4\)"):
        array_to_image(np.zeros((20, 20, 2)))


def test_dataset_format_takes_every_range_of_an_mnist_image() -> None:
    img = np.zeros((28, 28), np.uint8)
    img[5:23, 12:16] = 255
    for a in (img, img / 255, img.astype(np.float32), img.astype(np.int64), img[None]):
        got = dataset_format(a)
        assert got is not None and np.array_equal(got, img), a.dtype
    assert dataset_format(img.astype(np.float64) - 10) is None  # out of range: a picture
