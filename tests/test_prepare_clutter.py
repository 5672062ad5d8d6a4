"""Picture preparation among clutter: each kind of mnistcnn.data.page_clutter, one test each.

For every kind (frame, box around the digit, narrow and wide table edge,
shadow, ruled lines, punch holes, page corner, stray marks) six seeded pages
are prepared with and without the clutter. The crop must stay on the digit
(inside its ink box, widened by 8 % of the digit's size for blur and line
stubs) and the 28x28 result must be close to the clean page's.
"""

from __future__ import annotations

import numpy as np
import pytest

from clutter_synth import make_clutter
from mnistcnn.data.page_clutter import CLUTTER_KINDS
from mnistcnn.prepare import Preparation, PreparationSettings
from mnistcnn.prepare.clutter import ClutterSettings, isolate, remove_lines

N_PAGES = 6
#: mean absolute difference (grey levels, 0..255) to the clean page's 28x28, over the pages:
#: removing ruled lines leaves small gaps and stubs where they crossed the strokes.
MAX_DIFF = {kind: 6.0 for kind in CLUTTER_KINDS} | {"ruled-lines": 12.0}


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def inside(box, digit, slack: float = 0.08) -> bool:
    """``box`` (left, top, right, bottom) lies within ``digit`` widened by ``slack`` of its size."""
    size = max(digit[2] - digit[0], digit[3] - digit[1])
    m = slack * size
    return (
        box[0] >= digit[0] - m
        and box[1] >= digit[1] - m
        and box[2] <= digit[2] + m
        and box[3] <= digit[3] + m
    )


@pytest.mark.parametrize("kind", CLUTTER_KINDS)
def test_clutter_is_left_out(kind):
    diffs = []
    for i in range(N_PAGES):
        page = make_clutter(kind, seed=0, index=i)
        got, clean = Preparation().apply(page.picture), Preparation().apply(page.clean)
        assert got.ink_found and got.inverted, (kind, i)
        assert got.bbox is not None and inside(got.bbox, page.digit_box), (kind, i, got.bbox)
        diffs.append(diff(got.image, clean.image))
    assert np.mean(diffs) <= MAX_DIFF[kind], (kind, diffs)


@pytest.mark.parametrize("kind", ["frame", "strip-narrow", "page-corner", "marks"])
def test_without_clutter_removal_the_clutter_is_kept(kind):
    """The same pages with ``clutter=None`` (all ink kept): the crop takes in the clutter."""
    keep_all = PreparationSettings(clutter=None)
    outside = 0
    for i in range(N_PAGES):
        page = make_clutter(kind, seed=0, index=i)
        got = Preparation(settings=keep_all).apply(page.picture)
        outside += got.bbox is None or not inside(got.bbox, page.digit_box)
    assert outside >= N_PAGES - 1, (kind, outside)


def test_generated_clutter_is_deterministic_and_differs_from_the_clean_page():
    for kind in CLUTTER_KINDS:
        a, b = make_clutter(kind, 3, 1), make_clutter(kind, 3, 1)
        assert a.picture.tobytes() == b.picture.tobytes() and a.label == 1
        changed = diff(np.asarray(a.picture), np.asarray(a.clean))
        assert changed > 0.3, (kind, changed)
    with pytest.raises(ValueError, match="unknown clutter kind"):
        make_clutter("coffee-stain")


def test_ruled_lines_are_removed_and_crossing_strokes_bridged():
    """A 1-px line across a picture goes; where it crossed a vertical stroke, the stroke stays."""
    ink = np.zeros((60, 80), np.float32)
    ink[30, :] = 0.6  # a ruled line from edge to edge
    ink[15:45, 38:42] = 1.0  # a stroke crossing it
    out = remove_lines(ink, ClutterSettings())
    assert out[30, :30].max() == 0 and out[30, 50:].max() == 0
    assert (out[15:45, 38:42] == 1.0).all()


def test_a_tightly_cropped_one_is_not_taken_for_a_line():
    ink = np.zeros((40, 12), np.float32)
    ink[:, 5:7] = 1.0  # a "1" from edge to edge: all the ink is the "line"
    assert np.array_equal(isolate(ink), ink)


def test_a_frame_is_dropped_but_a_zero_is_not():
    ink = np.zeros((100, 100), np.float32)
    ink[5:95, 5:8] = ink[5:95, 92:95] = ink[5:8, 5:95] = ink[92:95, 5:95] = 1.0  # a frame
    ink[35:65, 40:43] = ink[35:65, 57:60] = ink[35:38, 40:60] = ink[62:65, 40:60] = 1.0  # a "0"
    out = isolate(ink)
    assert out[:20].max() == 0 and out[80:].max() == 0  # the frame is gone
    assert np.array_equal(out[30:70, 35:65], ink[30:70, 35:65])  # the 0 and its hole are kept
