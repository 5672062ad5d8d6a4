"""Finding the characters of a written number in an ink map (mnistcnn.prepare.segment, .split)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnistcnn.data.numbers import KINDS, digit_ink, number_page, written_number
from mnistcnn.prepare.segment import find_characters
from mnistcnn.prepare.split import deslant, split_glyph


def ink_of(draw_fn, size=(400, 200)) -> np.ndarray:
    """float32 ink map (1 = ink) of what ``draw_fn(draw)`` draws in white on black."""
    img = Image.new("L", size, 0)
    draw_fn(ImageDraw.Draw(img))
    return np.asarray(img, np.float32) / 255


def zero(d, x, y, h=60):
    d.ellipse((x, y, x + 0.6 * h, y + h), outline=255, width=7)


def one(d, x, y, h=60):
    d.line((x + 10, y, x + 10, y + h), fill=255, width=7)


def five(d, x, y, h=60, bar=True):
    """A 5 whose bar is a separate stroke (drawn apart from the body) when ``bar``."""
    d.line((x + 4, y + 8, x + 4, y + 0.45 * h), fill=255, width=7)
    d.arc((x, y + 0.3 * h, x + 0.65 * h, y + h), 220, 140, fill=255, width=7)
    if bar:
        d.line((x + 2, y, x + 0.6 * h, y), fill=255, width=7)


def kinds(line):
    return [g.kind for g in line.glyphs]


def test_two_lines_are_read_top_to_bottom_left_to_right():
    def draw(d):
        for i, x in enumerate((40, 75, 130)):
            (zero if i % 2 else one)(d, x, 20)
        for x in (60, 110):
            zero(d, x, 120)

    lines = find_characters(ink_of(draw, (400, 200)))
    assert [len(line.glyphs) for line in lines] == [3, 2]
    assert [g.box[0] for g in lines[0].glyphs] == sorted(g.box[0] for g in lines[0].glyphs)
    assert lines[0].bottom < lines[1].top


def test_a_separate_bar_joins_its_digit():
    lines = find_characters(ink_of(lambda d: (five(d, 50, 60), zero(d, 110, 60))))
    assert len(lines) == 1 and kinds(lines[0]) == ["digit", "digit"]
    five_glyph = lines[0].glyphs[0]
    assert five_glyph.box[1] <= 60 and five_glyph.box[3] >= 115  # the bar and the body


def test_separators_are_kept_and_specks_dropped():
    def draw(d):
        one(d, 20, 50)
        d.line((60, 80, 85, 80), fill=255, width=6)  # dash, mid-height
        zero(d, 100, 50)
        d.ellipse((150, 102, 159, 111), fill=255)  # dot on the baseline
        one(d, 170, 50)
        d.line((215, 118, 250, 42), fill=255, width=6)  # slash, taller than the digits
        zero(d, 260, 50)
        zero(d, 350, 50)  # after a space
        d.ellipse((70, 150, 72, 152), fill=255)  # specks
        d.point((300, 20), fill=255)

    lines = find_characters(ink_of(draw, (420, 180)))
    assert len(lines) == 1
    assert kinds(lines[0]) == ["digit", "-", "digit", ".", "digit", "/", "digit", " ", "digit"]


def test_a_slanted_one_is_no_slash():
    def draw(d):
        zero(d, 20, 50)
        d.line((95, 110, 112, 50), fill=255, width=7)  # a 1 leaning 16 degrees
        zero(d, 130, 50)

    assert kinds(find_characters(ink_of(draw, (220, 170)))[0]) == ["digit"] * 3


def test_deslant_moves_rows_by_the_slant():
    ink = np.zeros((5, 3), np.float32)
    ink[:, 1] = 1  # a vertical stroke
    out, offset = deslant(ink, 1.0)  # tops were 1 px per row to the right
    assert list(offset) == [0, 1, 2, 3, 4]
    assert [int(np.flatnonzero(r)[0]) for r in out] == [1, 2, 3, 4, 5]


def test_split_chooses_the_cuts_the_classifier_reads_best():
    """Two touching zeros: the classifier likes pieces about one digit wide."""
    ink = ink_of(lambda d: (zero(d, 10, 10), zero(d, 43, 10)), (100, 80))[:, :90]
    height = 61.0

    def classify(crops):
        out = []
        for c in crops:
            cols = np.flatnonzero(c.any(0))
            width = cols[-1] - cols[0] + 1
            good = abs(width - 0.62 * height) < 0.15 * height
            out.append([0.95, 0.05] if good else [0.5, 0.5])
        return np.array(out, np.float32)

    masks, probs = split_glyph(ink, 0.0, height, classify)
    assert len(masks) == 2 and probs.shape == (2, 2)
    left, right = (np.flatnonzero(m.any(0)) for m in masks)
    assert left[0] < 15 and 36 <= left[-1] <= 50 and 30 <= right[0] <= 50 and right[-1] > 75


@pytest.fixture(scope="module")
def digits():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 2, (40, 28, 28), dtype=np.uint8) * 255
    images[:, :4], images[:, -4:], images[:, :, :4], images[:, :, -4:] = 0, 0, 0, 0
    return images, np.arange(40) % 10


@pytest.mark.parametrize("kind", KINDS)
def test_written_numbers_are_seeded(kind, digits):
    a = written_number(*digits, kind, seed=3, index=2)
    b = written_number(*digits, kind, seed=3, index=2)
    assert a.text == b.text and np.array_equal(np.asarray(a.picture), np.asarray(b.picture))
    assert len(a.boxes) == sum(c.isdigit() for c in a.text)
    w, h = a.picture.size
    assert all(0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h for x0, y0, x1, y1 in a.boxes)
    assert written_number(*digits, kind, seed=4, index=2).text != a.text or kind == "clutter"


def test_number_page_places_digits_apart(digits):
    page = number_page([digits[0][i] for i in range(4)], 90, 20, (480, 200))
    assert page.size == (480, 200) and page.mode == "L"
    assert np.asarray(page)[:5].mean() == pytest.approx(235, abs=3)
    assert digit_ink(digits[0][0], 90).shape[0] == 90
