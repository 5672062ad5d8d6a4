"""The preparation package: torch-free, a Preparation object bound to the model, one path.

A picture given to ``Predictor.predict`` is decoded by ``_io`` and made the
model's input by ``prepare/`` (the model's ``Preparation``), then judged.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from digits_synth import make_digit
from mnistcnn.artifact import TrainedModel
from mnistcnn.models import create_model
from mnistcnn.predict import Predictor
from mnistcnn.prepare import (
    METHODS,
    MNIST_RECORD,
    PREPARATIONS,
    Preparation,
    PreparationSettings,
    ink_page,
    locate_ink,
    to_grayscale,
)

SRC = Path(__file__).resolve().parents[1] / "src"


def test_importing_and_running_prepare_loads_no_torch_torchvision_or_matplotlib():
    code = (
        "import sys\n"
        "from PIL import Image, ImageDraw\n"
        "import mnistcnn.prepare as p\n"
        "im = Image.new('L', (120, 90), 255)\n"
        "ImageDraw.Draw(im).line([(60, 15), (60, 75)], fill=0, width=8)\n"
        "r = p.Preparation()(im)\n"
        "assert r.array.shape == (1, 28, 28) and r.ink_found\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'matplotlib') if m in sys.modules))\n"
    )
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_picture_already_in_the_format_is_judged_without_scipy():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from PIL import Image\n"
        "import mnistcnn.prepare as p\n"
        "a = np.zeros((28, 28), np.uint8)\n"
        "a[5:20, 12:15] = 255\n"
        "assert p.Preparation()(Image.fromarray(a)).as_given\n"
        "print(sorted(m for m in ('scipy.ndimage', 'skimage', 'torch') if m in sys.modules))\n"
    )
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("method", sorted(PREPARATIONS))
def test_records_round_trip_and_name_their_method(method):
    record = dict(PREPARATIONS[method])
    prep = Preparation.from_record(record)
    assert prep.method == method and prep.to_record() == record
    assert Preparation(method).to_record() == record  # the method's own record by default
    assert prep.steps is METHODS[method]


def test_unknown_method_and_invert_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="'resize' is unknown.*known: emnist, fashion-mnist"):
        Preparation.from_record({"method": "resize", "canvas": 28})
    with pytest.raises(ValueError, match="invert must be one of auto, yes, no"):
        Preparation(invert="maybe")  # type: ignore[arg-type]
    assert (
        Preparation().to_record()
        == dict(MNIST_RECORD)
        == {"method": "mnist", "box": 20, "canvas": 28}
    )


def test_prepared_picture_array_and_tensor_are_the_image_over_255():
    pic = make_digit(0, 3).image
    r = Preparation()(pic)
    assert r.image.dtype == np.uint8 and r.image.shape == (28, 28) and r.ink_found
    assert r.array.dtype == np.float32 and r.array.shape == (1, 28, 28)
    np.testing.assert_allclose(r.array[0] * 255, r.image, rtol=0, atol=1e-4)
    assert r.array.min() >= 0.0 and r.array.max() == 1.0
    t = r.tensor
    assert t.dtype == torch.float32 and torch.equal(t, torch.from_numpy(r.array))
    left, top, right, bottom = r.bbox
    assert 0 <= left < right <= r.size[0] and 0 <= top < bottom <= r.size[1]
    assert r.ink is not None and r.ink.dtype == np.float32 and r.ink.max() <= 1.0


def test_the_two_steps_called_alone_give_what_the_preparation_gives():
    pic = make_digit(0, 7).image
    prep = Preparation()
    gray = to_grayscale(pic)
    found = prep.find(gray)
    assert found.crop is not None
    whole = prep(pic)
    assert np.array_equal(prep.fit(found.crop), whole.image) and found.box == whole.bbox
    # the ink step alone is locate_ink with the model's settings; the page step keeps every mark
    assert locate_ink(gray, "auto", PreparationSettings()).box == found.box
    page = ink_page(gray)
    assert page.ink.strength.dtype == np.float32 and page.scale >= 1.0
    assert page.ink.strength.max() == 1.0 and page.ink.strength.min() == 0.0


def test_a_picture_in_the_dataset_format_is_used_as_given_and_arrays_are_read_too():
    a = np.zeros((28, 28), np.uint8)
    a[6:22, 12:16] = 255
    prep = Preparation()
    from_array = prep(a)
    from_picture = prep(Image.fromarray(a))
    assert from_array.as_given and from_picture.as_given
    assert np.array_equal(from_array.image, a) and np.array_equal(from_picture.image, a)
    assert not prep.apply(Image.fromarray(a)).as_given  # apply always runs the steps
    assert Preparation(invert="yes").given(a) is None


def _photo() -> Image.Image:
    """A digit on uneven paper with noise, saved as JPEG: a photo-like picture."""
    return make_digit(3, 14).image


def test_predict_reaches_the_model_with_exactly_model_prepare_of_the_picture(tmp_path, monkeypatch):
    import mnistcnn._io.pictures as pictures

    decodes: list[int] = []
    prepares: list[int] = []
    decode, call = pictures._decode, Preparation.__call__
    monkeypatch.setattr(pictures, "_decode", lambda *a, **k: decodes.append(1) or decode(*a, **k))
    monkeypatch.setattr(
        Preparation, "__call__", lambda self, *a, **k: prepares.append(1) or call(self, *a, **k)
    )
    torch.manual_seed(0)
    model = TrainedModel(create_model("tutorial", num_classes=10), [0.1307], [0.3081])
    seen: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    predictor = Predictor(model)
    pic = _photo()
    buf = io.BytesIO()
    pic.convert("RGB").save(buf, "JPEG", quality=80)
    path = tmp_path / "photo.jpg"
    path.write_bytes(buf.getvalue())
    for given in (pic, path, buf.getvalue()):
        seen.clear(), decodes.clear(), prepares.clear()
        (pred,) = predictor.predict([given])
        assert pred.error is None and not pred.blank
        # decoded by _io once (a Pillow image: not at all), prepared once, in that order
        assert decodes == ([] if isinstance(given, Image.Image) else [1]) and prepares == [1]
        decoded = given if isinstance(given, Image.Image) else Image.open(path)
        want = model.prepare(decoded)
        assert not want.as_given and want.ink_found
        assert len(seen) == 1 and seen[0].shape == (1, 1, 28, 28)
        assert torch.equal(seen[0][0], want.tensor)  # bit for bit
        assert np.array_equal(pred.input, want.image)
        assert pred.inverted == want.inverted
