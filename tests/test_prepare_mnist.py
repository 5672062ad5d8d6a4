"""MNIST's preparation of pictures: modes, polarity, crop, centring, stroke width."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digits_synth import diff, digit, make_digits
from mnistcnn.prepare import Preparation, center_of_mass, to_grayscale
from mnistcnn.prepare.stroke import stroke_width


def test_dark_on_light_is_inverted_and_light_on_dark_is_not():
    dark = Preparation().apply(digit(ink=0, paper=255))
    light = Preparation().apply(digit(ink=255, paper=0))
    assert dark.inverted and not light.inverted
    assert dark.ink_found and light.ink_found
    # the same digit either way: MNIST polarity (ink bright, background exactly 0)
    assert diff(dark.image, light.image) < 2.0
    assert dark.image.max() == 255
    assert (dark.image[:, :2] == 0).all() and (dark.image[:2] == 0).all()


def test_invert_can_be_forced():
    img = digit(ink=0, paper=255)
    assert Preparation(invert="yes").apply(img).inverted
    wrong = Preparation(invert="no").apply(img)  # looks for light ink: there is none
    assert not wrong.inverted and not wrong.ink_found
    with pytest.raises(ValueError, match="invert must be one of"):
        Preparation(invert="maybe").apply(img)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ink", "paper"), [(0, 255), (60, 200), (255, 0), (200, 40)], ids=["black", "grey", "w", "lg"]
)
def test_polarity_for_several_contrasts(ink, paper):
    r = Preparation().apply(digit(ink=ink, paper=paper))
    assert r.inverted == (ink < paper)


def test_crop_finds_the_digit_in_a_large_picture():
    img = digit(size=(1200, 900), at=(700, 500), font_size=120)
    ink_box = Image.eval(img, lambda v: 255 - v).getbbox()  # where the drawn ink really is
    r = Preparation().apply(img)
    assert r.bbox is not None
    for got, want in zip(r.bbox, ink_box):
        assert abs(got - want) <= 4, (r.bbox, ink_box)
    assert r.size == (1200, 900)


def test_fit_into_20_pixels_and_centre_of_mass_within_1px_on_synthetic_digits():
    """MNIST: the digit fits a 20x20 box (aspect kept), its centre of mass at (14, 14)."""
    for d in make_digits(40, seed=3):
        r = Preparation().apply(d.image)
        assert r.ink_found, d.description
        com = center_of_mass(r.image)
        assert com is not None
        assert abs(com[0] - 14.0) <= 1.0 and abs(com[1] - 14.0) <= 1.0, (com, d.description)
        rows, cols = np.flatnonzero(r.image.any(1)), np.flatnonzero(r.image.any(0))
        longest = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
        assert 17 <= longest <= 20, (longest, d.description)


def test_blank_pictures_have_no_ink():
    rng = np.random.default_rng(0)
    noisy = np.clip(rng.normal(200, 8, (120, 90)), 0, 255).astype(np.uint8)
    ramp = np.linspace(80, 250, 200)[None].repeat(150, 0).astype(np.uint8)
    for img in (Image.new("L", (64, 64), 255), Image.fromarray(noisy), Image.fromarray(ramp)):
        r = Preparation().apply(img)
        assert not r.ink_found and r.bbox is None and r.center_of_mass is None
        assert r.image.shape == (28, 28) and r.image.dtype == np.uint8 and not r.image.any()


def test_alpha_is_composited_onto_white_and_light_ink_onto_black():
    base = Preparation().apply(digit()).image
    ink = np.asarray(digit()) < 128
    rgba = np.zeros((*ink.shape, 4), np.uint8)  # transparent black, as a cleared canvas
    rgba[..., 3] = np.where(ink, 255, 0)
    dark = Preparation().apply(Image.fromarray(rgba, "RGBA"))
    assert dark.inverted and diff(dark.image, base) < 2.0
    rgba[..., :3] = 255  # white chalk on a transparent canvas
    light = Preparation().apply(Image.fromarray(rgba, "RGBA"))
    assert not light.inverted and diff(light.image, base) < 2.0
    la = Image.fromarray(rgba[..., 3], "L").convert("LA")  # grey + alpha: black ink
    la.putalpha(Image.fromarray(rgba[..., 3]))
    assert Preparation().apply(la).ink_found


def test_sixteen_bit_gives_the_same_digit_as_eight_bit():
    img8 = digit(ink=30, paper=220)
    img16 = Image.fromarray(np.asarray(img8).astype(np.uint16) * 257)  # I;16
    buf = io.BytesIO()
    img16.save(buf, "PNG")
    reread = Image.open(io.BytesIO(buf.getvalue()))
    assert reread.mode.startswith("I")
    gray = to_grayscale(reread)
    assert np.abs(gray - np.asarray(img8, np.float32) / 255).max() < 1e-6
    assert diff(Preparation().apply(reread).image, Preparation().apply(img8).image) == 0.0


def test_cmyk_is_converted():
    rgb = Image.merge("RGB", [digit(ink=20, paper=240)] * 3)
    buf = io.BytesIO()
    rgb.convert("CMYK").save(buf, "TIFF")
    cmyk = Image.open(io.BytesIO(buf.getvalue()))
    assert cmyk.mode == "CMYK"
    assert diff(Preparation().apply(cmyk).image, Preparation().apply(rgb).image) < 2.0


def test_palette_with_transparency():
    """A GIF/PNG palette image whose background index is transparent."""
    ink = np.asarray(digit()) < 128
    pal = Image.fromarray(np.where(ink, 1, 0).astype(np.uint8), "P")
    pal.putpalette([0, 0, 0, 20, 20, 20] + [0] * 762)  # index 0 black but transparent
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=0)
    reread = Image.open(io.BytesIO(buf.getvalue()))
    assert reread.mode == "P" and "transparency" in reread.info
    r = Preparation().apply(reread)
    assert r.inverted and diff(r.image, Preparation().apply(digit()).image) < 8.0


def test_exif_orientation_is_applied():
    upright = Image.merge("RGB", [digit("7", size=(120, 160))] * 3)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a phone stores a portrait shot
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    photo = Image.open(io.BytesIO(buf.getvalue()))
    assert photo.size == (160, 120)
    r = Preparation().apply(photo)
    assert r.size == (120, 160)
    assert diff(r.image, Preparation().apply(upright).image) < 2.0  # 45 if EXIF were ignored


def test_bold_strokes_are_thinned_towards_mnist_width():
    bold = Image.new("L", (160, 160), 255)
    ImageDraw.Draw(bold).line([(40, 30), (120, 30), (70, 140)], fill=0, width=26)
    r = Preparation().apply(bold)
    width = stroke_width(r.image / 255.0)
    assert 1.5 <= width <= 4.0, width  # MNIST: 1.7-3.9 px (5th-95th percentile)


def test_mnist_digits_change_little(mnist_root):
    """An MNIST test digit is already what preprocessing makes: it comes back close to itself."""
    from mnistcnn.data.idx import read_idx

    images = read_idx(mnist_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte")[:100]
    diffs = [diff(Preparation().apply(Image.fromarray(a)).image, a) for a in images]
    assert np.mean(diffs) < 12.0, np.mean(diffs)
    assert all(not Preparation().apply(Image.fromarray(a)).inverted for a in images[:10])


def test_generated_digits_are_deterministic_and_varied():
    """tests/digits_synth.py: the same bytes for the same seed, and every kind of look used."""
    import digits_synth as ds

    a, b = make_digits(120, seed=0), make_digits(120, seed=0)
    assert [x.data for x in a] == [y.data for y in b]
    assert [x.data for x in make_digits(5, seed=1)] != [x.data for x in a[:5]]
    assert [x.label for x in a] == [i % 10 for i in range(120)]
    text = " ".join(x.description for x in a)
    assert sum(font in text for font in ds.FONTS) >= 15
    assert all(f"{kind} bg" in text for kind in ds.BACKGROUNDS)
    assert {x.fmt for x in a} == {"png", "jpeg", "bmp", "webp", "tiff", "gif"}
    assert "light ink" in text and "dark ink" in text and " gray" in text
    modes = {x.image.mode for x in a}
    assert {"RGB", "RGBA", "L", "P"} <= modes, modes
    heights = [x.image.height for x in a]
    assert min(heights) < 80 and max(heights) > 250
