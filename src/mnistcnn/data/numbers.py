"""Seeded pictures of written numbers built from MNIST digits: what ``mnistcnn read`` is tried on.

A number is a row (or two) of real handwritten digits taken from a set of 28x28
digit images (the benchmark passes MNIST's *test* split, never the training
split), each cut to its ink, scaled to the line's height and written in dark pen
on a page (:func:`mnistcnn.data.page_clutter.ink_on_paper`). :data:`KINDS`:

==================  ========================================================
``separated``       4 digits, ink gaps 12-45 % of the digit height
``touching``        4 digits, each neighbouring pair touching (ink overlaps
                    by 1-3 px on the closest row)
``overlapping``     4 digits, each pair overlapping by 6-15 % of the height
``lengths``         1-10 digits, separated
``uneven``          4-8 digits, each gap drawn from touching to 60 %
``slant``           4-6 digits, all sheared by 0.2-0.45 either way
``sizes``           4-6 digits, heights +-25 %, baseline drifting up to
                    +-12 % of the height over the number, +-6 % jitter
``two-lines``       two lines of 2-5 digits, one under the other
``separators``      groups of digits with a space, dash, dot or slash
                    between them (``12-34``, ``3.14``, ``12/05/24``, ``123 456``)
``specks``          4 digits and 3-6 specks of ink (0.02-0.05 of the height)
``clutter``         4 digits and one clutter kind of
                    :data:`~mnistcnn.data.page_clutter.CLUTTER_KINDS`, in turn
==================  ========================================================

Every picture is drawn from ``numpy.random.default_rng([seed, kind, index])``:
the same arguments give the same picture on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from mnistcnn.data.page_clutter import CLUTTER_KINDS, add_clutter, ink_on_paper

KINDS = (
    "separated",
    "touching",
    "overlapping",
    "lengths",
    "uneven",
    "slant",
    "sizes",
    "two-lines",
    "separators",
    "specks",
    "clutter",
)
SEPARATORS = (" ", "-", ".", "/")
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class WrittenNumber:
    """One generated picture of a number.

    Attributes:
        picture: mode ``L``, dark ink on light paper.
        text: what is written: digits, separators (``" -./"``) and, between
            lines, ``"\\n"``.
        boxes: each digit's ink box ``(left, top, right, bottom)`` in pixels
            (right/bottom exclusive), in the order of the digits in ``text``.
        kind: one of :data:`KINDS`.
        clutter: the clutter kind (``kind == "clutter"``), else None.
        indices: the index of each digit in the image set it was taken from.
    """

    picture: Image.Image
    text: str
    boxes: tuple[Box, ...]
    kind: str
    clutter: str | None = None
    indices: tuple[int, ...] = field(default=())


@dataclass
class _Placed:
    ink: np.ndarray  # float32 (h, w) in [0, 1]
    x: int
    y: int
    digit: bool = True


def digit_ink(image: np.ndarray, height: int, shear: float = 0.0) -> np.ndarray:
    """A 28x28 digit cut to its ink, scaled to ``height`` px (aspect kept), sheared.

    Args:
        image: uint8 (28, 28), 0 background .. 255 ink (MNIST's format).
        height: the ink's height in px after scaling (>= 4).
        shear: horizontal shift per row, upwards to the right when positive (a
            right-leaning slant), as a fraction: x' = x + shear * (h - 1 - y).

    Returns:
        float32 (h, w) in [0, 1], cut to its ink.
    """
    rows, cols = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
    if rows.size == 0:
        return np.zeros((height, 1), np.float32)
    crop = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32) / 255
    f = height / crop.shape[0]
    size = (max(1, round(crop.shape[1] * f)), height)
    big = np.asarray(Image.fromarray(crop, "F").resize(size, Image.Resampling.BICUBIC), np.float32)
    big = np.clip(big, 0, 1)
    if shear:
        h, w = big.shape
        extra = int(np.ceil(abs(shear) * (h - 1)))
        c = -shear * (h - 1) if shear > 0 else 0.0
        img = Image.fromarray(np.ascontiguousarray(big), "F")
        out = img.transform(
            (w + extra, h),
            Image.Transform.AFFINE,
            (1, shear, c, 0, 1, 0),
            Image.Resampling.BILINEAR,
        )
        big = np.clip(np.asarray(out, np.float32), 0, 1)
    return _trim(big)


def _trim(ink: np.ndarray, level: float = 0.05) -> np.ndarray:
    mask = ink > level
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return ink
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _next_x(placed: list[_Placed], ink: np.ndarray, y: int, gap: float) -> int:
    """x of ``ink`` (top row ``y``) so that its ink is ``gap`` px right of the ink placed.

    The gap is measured row by row where both have ink (so slanted digits are
    as far apart as the number says), on the ink above half strength; ``gap`` <= 0
    makes them touch (0) or overlap. Without a common row: box to box.
    """
    worst = None
    b = ink > 0.5
    for prev in placed:
        a = prev.ink > 0.5
        top, bottom = max(prev.y, y), min(prev.y + a.shape[0], y + b.shape[0])
        for row in range(top, bottom):
            ra, rb = a[row - prev.y], b[row - y]
            if ra.any() and rb.any():
                need = prev.x + int(np.flatnonzero(ra)[-1]) - int(np.flatnonzero(rb)[0])
                worst = need if worst is None else max(worst, need)
    if worst is None:
        worst = max(p.x + p.ink.shape[1] for p in placed) - 1
    return int(round(worst + 1 + gap))


def _separator(sep: str, height: int, stroke: float, rng: np.random.Generator) -> _Placed:
    """A separator's ink and its top relative to the line's top (``y``)."""
    t = max(2, round(stroke))
    if sep == "-":
        w = round(height * rng.uniform(0.25, 0.45))
        return _Placed(
            np.ones((t, w), np.float32), 0, round(height * rng.uniform(0.42, 0.55)), False
        )
    if sep == ".":
        d = max(3, round(height * rng.uniform(0.12, 0.18)))
        yy, xx = np.mgrid[0:d, 0:d]
        disc = ((yy - (d - 1) / 2) ** 2 + (xx - (d - 1) / 2) ** 2 <= (d / 2) ** 2).astype(
            np.float32
        )
        return _Placed(disc, 0, height - d, False)
    if sep == "/":
        h = round(height * rng.uniform(1.12, 1.3))  # a slash reaches above and below digits
        w = round(h * rng.uniform(0.45, 0.6))
        ink = np.zeros((h, w + t), np.float32)
        for row in range(h):
            x = round((w) * (1 - row / max(h - 1, 1)))
            ink[row, x : x + t] = 1.0
        return _Placed(ink, 0, -round((h - height) / 2), False)
    raise ValueError(f"unknown separator {sep!r}")


@dataclass(frozen=True)
class _Style:
    """How one line is written: digit height (px), gaps, slant, size and baseline variation."""

    height: int
    gap: tuple[float, float] = (0.12, 0.45)  # ink gap, fraction of the height
    shear: float = 0.0
    shear_jitter: float = 0.08
    size_jitter: float = 0.05
    drift: float = 0.0  # baseline rise over the number, fraction of the height
    jitter: float = 0.02  # baseline jitter, fraction of the height


def _line(
    text: str, images: np.ndarray, pick: list[int], style: _Style, rng: np.random.Generator
) -> list[_Placed]:
    """Place the characters of one line of ``text``; ``pick`` is each digit's image index."""
    hh = style.height
    stroke = 0.12 * hh
    placed: list[_Placed] = []
    digits = iter(pick)
    space = False
    n = max(len(text), 1)
    for i, ch in enumerate(text):
        if ch == " ":
            space = True
            continue
        base = hh * (1 + style.drift * i / n + rng.uniform(-1, 1) * style.jitter)
        if ch.isdigit():
            h = max(8, round(hh * (1 + rng.uniform(-1, 1) * style.size_jitter)))
            shear = style.shear + rng.uniform(-1, 1) * style.shear_jitter
            item = _Placed(digit_ink(images[next(digits)], h, shear), 0, 0)
            item.y = round(base) - item.ink.shape[0]
        else:
            item = _separator(ch, hh, stroke, rng)
            item.y += round(base) - hh
        if placed:
            lo, hi = style.gap
            gap = hh * (rng.uniform(0.9, 1.4) if space else rng.uniform(lo, hi))
            if not item.digit or not placed[-1].digit:  # a separator: box to box
                item.x = max(p.x + p.ink.shape[1] for p in placed) + round(
                    hh * rng.uniform(0.1, 0.25)
                )
            else:
                item.x = _next_x(placed[-2:], item.ink, item.y, gap)
        placed.append(item)
        space = False
    return placed


def _canvas(lines: list[list[_Placed]], margin: tuple[int, int]) -> tuple[np.ndarray, list[Box]]:
    """The ink of every line on one canvas with ``margin`` (x, y) px; each digit's box."""
    items = [p for line in lines for p in line]
    left = min(p.x for p in items)
    top = min(p.y for p in items)
    right = max(p.x + p.ink.shape[1] for p in items)
    bottom = max(p.y + p.ink.shape[0] for p in items)
    mx, my = margin
    ink = np.zeros((bottom - top + 2 * my, right - left + 2 * mx), np.float32)
    boxes = []
    for p in items:
        x, y = p.x - left + mx, p.y - top + my
        h, w = p.ink.shape
        ink[y : y + h, x : x + w] = np.maximum(ink[y : y + h, x : x + w], p.ink)
        if p.digit:
            m = p.ink > 0.25
            rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            boxes.append(
                (x + int(cols[0]), y + int(rows[0]), x + int(cols[-1]) + 1, y + int(rows[-1]) + 1)
            )
    return ink, boxes


def _specks(ink: np.ndarray, boxes: list[Box], height: int, rng: np.random.Generator) -> None:
    """3-6 specks (discs of 0.02-0.05 of the height) away from the digits' boxes."""
    h, w = ink.shape
    for _ in range(int(rng.integers(3, 7))):
        for _try in range(20):
            d = max(1.0, height * rng.uniform(0.02, 0.05))
            cx, cy = rng.uniform(d, w - d), rng.uniform(d, h - d)
            if all(not (b[0] - d <= cx <= b[2] + d and b[1] - d <= cy <= b[3] + d) for b in boxes):
                yy, xx = np.mgrid[0:h, 0:w]
                ink[(yy - cy) ** 2 + (xx - cx) ** 2 <= (d / 2) ** 2] = 1.0
                break


def _text(kind: str, rng: np.random.Generator) -> str:
    """The number written for ``kind``: digits, separators, "\\n" between lines."""

    def digits(n: int) -> str:
        return "".join(str(d) for d in rng.integers(0, 10, n))

    if kind == "lengths":
        return digits(int(rng.integers(1, 11)))
    if kind == "uneven":
        return digits(int(rng.integers(4, 9)))
    if kind in ("slant", "sizes"):
        return digits(int(rng.integers(4, 7)))
    if kind == "two-lines":
        return digits(int(rng.integers(2, 6))) + "\n" + digits(int(rng.integers(2, 6)))
    if kind == "separators":
        sep = SEPARATORS[int(rng.integers(len(SEPARATORS)))]
        groups = int(rng.integers(2, 4))
        return sep.join(digits(int(rng.integers(1, 4))) for _ in range(groups))
    return digits(4)


def _style(kind: str, height: int, rng: np.random.Generator) -> _Style:
    if kind == "touching":
        return _Style(height, gap=(-3 / height, -1 / height))
    if kind == "overlapping":
        return _Style(height, gap=(-0.15, -0.06))
    if kind == "uneven":
        return _Style(height, gap=(-1 / height, 0.6))
    if kind == "slant":
        sign = 1 if rng.random() < 0.5 else -1
        return _Style(height, shear=sign * float(rng.uniform(0.2, 0.45)))
    if kind == "sizes":
        drift = float(rng.uniform(-0.12, 0.12))
        return _Style(height, size_jitter=0.25, drift=drift, jitter=0.06)
    return _Style(height)


def written_number(
    images: np.ndarray, labels: np.ndarray, kind: str, seed: int = 0, index: int = 0
) -> WrittenNumber:
    """Picture ``index`` of ``kind`` (one of :data:`KINDS`), deterministic for ``seed``.

    Args:
        images: uint8 (N, 28, 28) digit images, 0 background .. 255 ink (pass
            MNIST's test split: the benchmark never shows training digits).
        labels: int (N,) their digits 0-9; every digit must occur.
        kind: what is written (see the module docstring).
        seed, index: which picture (``numpy.random.default_rng([seed, kind, index])``).

    Returns:
        :class:`WrittenNumber`, digit heights 40-100 px.

    Raises:
        ValueError: an unknown ``kind`` (the message lists :data:`KINDS`), or a
            digit missing from ``labels``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind of number {kind!r}; known: {', '.join(KINDS)}")
    rng = np.random.default_rng([seed, KINDS.index(kind), index])
    by_label = [np.flatnonzero(labels == d) for d in range(10)]
    if any(len(b) == 0 for b in by_label):
        raise ValueError("labels must hold every digit 0-9")
    text = _text(kind, rng)
    height = int(rng.integers(40, 101))
    style = _style(kind, height, rng)
    lines: list[list[_Placed]] = []
    picks: list[int] = []
    y = 0
    for row in text.split("\n"):
        pick = [
            int(by_label[int(c)][rng.integers(len(by_label[int(c)]))]) for c in row if c.isdigit()
        ]
        placed = _line(row, images, pick, style, rng)
        for p in placed:
            p.y += y
        if lines:
            shift = round(height * rng.uniform(-0.3, 0.3))
            for p in placed:
                p.x += shift
        lines.append(placed)
        picks += pick
        y += round(height * rng.uniform(1.35, 1.7))
    clutter = CLUTTER_KINDS[index % len(CLUTTER_KINDS)] if kind == "clutter" else None
    wide = clutter is not None
    margin = (
        round(height * rng.uniform(0.8, 1.5) if wide else height * rng.uniform(0.3, 0.8)),
        round(height * rng.uniform(0.7, 1.1) if wide else height * rng.uniform(0.25, 0.6)),
    )
    ink, boxes = _canvas(lines, margin)
    if kind == "specks":
        _specks(ink, boxes, height, rng)
    picture = ink_on_paper(ink, rng)
    if clutter is not None:
        number = (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )
        picture = add_clutter(picture, clutter, number, number[3], rng)
    return WrittenNumber(picture, text, tuple(boxes), kind, clutter, tuple(picks))


def number_page(
    images: list[np.ndarray],
    height: int,
    gap: int,
    size: tuple[int, int],
    paper: float = 235.0,
    seed: int = 0,
) -> Image.Image:
    """Digits side by side, centred on a page of ``size`` (width, height) px.

    Each 28x28 uint8 image of ``images`` is cut to its ink and scaled to
    ``height`` px; their boxes are ``gap`` px apart; even paper grey ``paper``
    (0-255), dark pen, a little sensor noise (``seed``). Raises ValueError when
    the digits do not fit.
    """
    rng = np.random.default_rng(seed)
    inks = [digit_ink(im, height) for im in images]
    width = sum(i.shape[1] for i in inks) + gap * (len(inks) - 1)
    w, h = size
    if width > w or height > h:
        raise ValueError(
            f"{len(inks)} digits of {height} px need {width}x{height} px; page is {w}x{h}"
        )
    ink = np.zeros((h, w), np.float32)
    x, y = (w - width) // 2, (h - height) // 2
    for i in inks:
        ink[y : y + i.shape[0], x : x + i.shape[1]] = i
        x += i.shape[1] + gap
    return ink_on_paper(ink, rng, paper=paper, noise=2.0, gradient=0.0)
