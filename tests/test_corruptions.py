"""MNIST-C's 15 corruptions (``mnistcnn.data.corruptions``): each on a few synthetic images.

Every corruption is deterministic for a seed and returns uint8 (N, 28, 28);
each test below checks the effect MNIST-C's ``corruptions.py`` defines
(https://github.com/google-research/mnist-c) with exact or tight values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mnistcnn.data import corruption_filters as cf
from mnistcnn.data import corruptions as mc
from mnistcnn.data.corruptions import CORRUPTIONS, corrupt, parse_corruptions
from mnistcnn.errors import SettingError

CENTRE = 13.5


def blobs(n: int = 6, seed: int = 0) -> np.ndarray:
    """uint8 (n, 28, 28): a 4x4 white square at a different place in each image, away from
    the border, on black."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        r, c = rng.integers(6, 18, size=2)
        x[i, r : r + 4, c : c + 4] = 255
    return x


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(column, row) of the intensity's centre of mass."""
    w = image.astype(np.float64)
    rows, cols = np.indices(w.shape)
    return float((w * cols).sum() / w.sum()), float((w * rows).sum() / w.sum())


def test_there_are_mnist_c_s_15_corruptions_in_the_paper_s_order():
    assert list(CORRUPTIONS) == [
        "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "scale", "rotate",
        "brightness", "translate", "stripe", "fog", "spatter", "dotted_line", "zigzag",
        "canny_edges",
    ]  # fmt: skip
    assert all(c.library and c.setting for c in CORRUPTIONS.values())


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_seeded_uint8_and_changes_the_images(name):
    x = blobs()
    a = corrupt(x, name, seed=3)
    assert a.dtype == np.uint8 and a.shape == x.shape
    assert np.array_equal(a, corrupt(x, name, seed=3))  # the same seed, the same images
    assert not np.array_equal(a, x)
    deterministic = {"scale", "stripe", "canny_edges", "brightness"}
    if name not in deterministic:
        assert not np.array_equal(a, corrupt(x, name, seed=4))


@pytest.mark.parametrize("name", ["fog", "glass_blur", "impulse_noise", "zigzag"])
def test_the_first_chunks_do_not_depend_on_how_many_images_follow(monkeypatch, name):
    monkeypatch.setattr(mc, "CHUNK", 4)
    x = blobs(10)
    assert np.array_equal(corrupt(x[:8], name, seed=1), corrupt(x, name, seed=1)[:8])


def test_stripe_inverts_exactly_columns_0_to_6_and_21_to_27():
    x = blobs(3)
    y = corrupt(x, "stripe").astype(int)
    assert np.array_equal(y[:, :, :7], 255 - x[:, :, :7])
    assert np.array_equal(y[:, :, 21:], 255 - x[:, :, 21:])
    assert np.array_equal(y[:, :, 7:21], x[:, :, 7:21])


def test_translate_moves_the_centre_of_mass_3_px_along_each_axis():
    x = blobs(8)
    y = corrupt(x, "translate", seed=0)
    moves = set()
    for before, after in zip(x, y):
        (c0, r0), (c1, r1) = centre_of_mass(before), centre_of_mass(after)
        assert abs(abs(c1 - c0) - 3) < 1e-9 and abs(abs(r1 - r0) - 3) < 1e-9
        moves.add((round(c1 - c0), round(r1 - r0)))
    assert len(moves) > 1  # the directions are drawn


def test_rotate_turns_about_the_centre_by_0_4_rad_either_way():
    x = np.zeros((6, 28, 28), np.uint8)
    x[:, 12:16, 21:25] = 255  # right of the centre: at angle 0
    y = corrupt(x, "rotate", seed=0)
    angles = []
    for image in y:
        c, r = centre_of_mass(image)
        angles.append(math.atan2(r - CENTRE, c - CENTRE))
    assert all(abs(abs(a) - 0.4) < 0.02 for a in angles), angles
    assert {a > 0 for a in angles} == {True, False}


def test_scale_shrinks_towards_the_centre_to_0_7():
    x = np.zeros((1, 28, 28), np.uint8)
    x[0, 12:16, 20:24] = 255
    (c0, _), (c1, _) = centre_of_mass(x[0]), centre_of_mass(corrupt(x, "scale")[0])
    assert (c1 - CENTRE) / (c0 - CENTRE) == pytest.approx(0.7, abs=0.01)


def test_shear_shifts_rows_sideways_by_sin_0_4_per_row_from_the_centre():
    x = np.zeros((6, 28, 28), np.uint8)
    x[:, 4:8, 12:16] = 255  # above the centre
    for image in corrupt(x, "shear", seed=0):
        c, r = centre_of_mass(image)
        assert abs(c - CENTRE) == pytest.approx(math.sin(0.4) * abs(r - CENTRE), abs=0.15)
        assert r - CENTRE == pytest.approx((5.5 - CENTRE) / math.cos(0.4), abs=0.15)


def test_brightness_adds_half_the_range_to_a_grey_image():
    x = np.arange(256, dtype=np.uint8)[:196].reshape(1, 14, 14).repeat(2, 1).repeat(2, 2)
    y = corrupt(x, "brightness").astype(int)
    assert np.abs(y - np.minimum(255, x.astype(int) + 127.5)).max() <= 1


def test_shot_noise_leaves_thirds_of_the_range():
    y = corrupt(np.full((4, 28, 28), 128, np.uint8), "shot_noise", seed=0)
    assert set(np.unique(y)) <= {0, 85, 170, 255}
    lam = 3 * 128 / 255  # E[min(P / 3, 1)] for P ~ Poisson(lam)
    pmf = [math.exp(-lam) * lam**k / math.factorial(k) for k in range(3)]
    expected = 255 * (pmf[1] / 3 + 2 * pmf[2] / 3 + 1 - sum(pmf))
    assert y.mean() == pytest.approx(expected, rel=0.02)


def test_impulse_noise_sets_17_percent_of_the_pixels_to_black_or_white():
    y = corrupt(np.full((20, 28, 28), 128, np.uint8), "impulse_noise", seed=0)
    changed = y != 128
    assert changed.mean() == pytest.approx(0.17, abs=0.01)
    assert set(np.unique(y[changed])) == {0, 255}


def test_glass_blur_keeps_the_ink_and_blurs_vertically_only():
    x = blobs(4)
    y = corrupt(x, "glass_blur", seed=0)
    assert y.astype(float).sum() == pytest.approx(x.astype(float).sum(), rel=0.05)
    dot = np.zeros((1, 28, 28))
    dot[0, 14, 14] = 1.0
    blurred = cf._vertical_gaussian(dot, 0.7)[0]
    assert blurred[:, 14].sum() == pytest.approx(1.0) and blurred[14, 13] == 0.0


def test_motion_blur_is_imagemagick_s_one_sided_gaussian_smear():
    weights, dcol, drow = cf.motion_taps(np.array([0.0, 45.0]))
    assert len(weights) == 21 and weights.sum() == pytest.approx(1.0)
    assert np.all(np.diff(weights) < 0)  # exp(-i^2 / 18), largest at the pixel itself
    assert dcol[0].tolist() == list(range(21)) and not drow[0].any()
    assert np.array_equal(dcol[1], drow[1]) and dcol[1, -1] == 14  # ceil(20 cos 45 - 0.5)
    x = np.zeros((5, 28, 28), np.uint8)
    x[:, 14, 24] = 255
    y = corrupt(x, "motion_blur", seed=0)
    for image in y:
        assert image.astype(float).sum() == pytest.approx(255, abs=12)  # the ink, smeared
        assert not image[:, 25:].any()  # the smear trails to the left: cos(angle) >= 0.7


def test_fog_is_a_plasma_fractal_blended_in_and_rescaled():
    maps = cf.plasma_fractal(np.random.default_rng(0), 3, mapsize=64, wibbledecay=1.4)
    assert maps.shape == (3, 64, 64)
    assert np.allclose(maps.min(axis=(1, 2)), 0) and np.allclose(maps.max(axis=(1, 2)), 1)
    x = blobs(4)
    y = corrupt(x, "fog", seed=0).astype(float)
    ink, paper = x == 255, x == 0
    assert y[ink].min() >= 63 and y[paper].max() <= 192  # (x + 3 p) / 4 with p in 0..1
    assert y[paper].std() > 5  # a textured background
    assert not corrupt(np.zeros((1, 28, 28), np.uint8), "fog").any()  # max 0: stays black


def test_spatter_blots_are_grey_63_blended_with_weight_0_8_to_1():
    y = corrupt(np.zeros((20, 28, 28), np.uint8), "spatter", seed=0)
    values = set(np.unique(y).tolist())
    assert values - {0} and min(values - {0}) >= 50 and max(values) <= 63


def test_dotted_line_is_drawn_in_2_px_dashes():
    y = corrupt(np.zeros((10, 28, 28), np.uint8), "dotted_line", seed=0)
    gaps = (np.arange(28) // 2) % 2 == 0
    assert not y[:, :, gaps].any()
    assert all(image.any() for image in y)


def test_zigzag_goes_from_column_2_to_25():
    y = corrupt(np.zeros((10, 28, 28), np.uint8), "zigzag", seed=0)
    assert all(image.any() for image in y)
    assert not y[:, :, :2].any() and not y[:, :, 26:].any()
    assert zigzag_rows_alternate()


def zigzag_rows_alternate() -> bool:
    """A level zigzag's corners are at rows +-2 alternately, every 2 columns."""
    cols, rows = cf.zigzag_points(0)
    return cols[:4].tolist() == [2, 4, 8, 12] and rows[1:4].tolist() == [2, -2, 2]


def test_canny_edges_outline_a_square():
    x = np.zeros((1, 28, 28), np.uint8)
    x[0, 8:20, 8:20] = 255
    y = corrupt(x, "canny_edges")[0]
    assert set(np.unique(y)) == {0, 255}
    assert not y[10:18, 10:18].any() and y[8:20, 7:9].any()  # the inside is empty, the side is not


def test_names_are_parsed_and_checked():
    assert parse_corruptions(None) == list(CORRUPTIONS) == parse_corruptions("all")
    assert parse_corruptions("fog, shot-noise,fog") == ["fog", "shot_noise"]
    with pytest.raises(SettingError, match="'snow': no such corruption; known: all, shot_") as info:
        parse_corruptions("fog,snow")
    assert info.value.setting == "corruptions"


def test_bad_images_and_seeds_are_refused():
    with pytest.raises(SettingError, match="uint8 \\(N, 28, 28\\)"):
        corrupt(np.zeros((2, 32, 32), np.uint8), "fog")
    with pytest.raises(SettingError, match="float32"):
        corrupt(np.zeros((2, 28, 28), np.float32), "fog")
    with pytest.raises(SettingError, match="corruption_seed"):
        corrupt(blobs(1), "fog", seed=-1)
