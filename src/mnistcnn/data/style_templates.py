"""Stroke templates of handwritten digits, one family per way of writing a digit.

A template is a list of strokes; a stroke is a list of control points in a
unit box (x to the right, y down, the digit about 1 high) that a Catmull-Rom
spline passes through (:mod:`mnistcnn.data.styles` draws them), a point
marked as a corner (:func:`_c`) breaking the curve there. A :class:`Family`
is one way of writing one digit (MNIST's plain ``4``, the open-topped
``4-open`` ...) with a few *variants*, shapes that differ more than the
drawing's jitter does; some variants are kept for evaluation only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Point = tuple[float, ...]  # (x, y) or (x, y, 1): a corner
Stroke = list[Point]
Template = list[Stroke]


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int) -> Stroke:
    """``n`` points on an ellipse from angle ``a0`` to ``a1`` (degrees; 0: right, 90: down)."""
    angles = np.radians(np.linspace(a0, a1, n))
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


def _c(x: float, y: float) -> Point:
    """A corner: the spline breaks there."""
    return (x, y, 1.0)


# -- the templates: one function per shape, its argument the variant --------------------------


def _zero(v: int) -> Template:
    rx, start = [(0.36, -90), (0.44, -100), (0.30, -80), (0.40, -60)][v]
    return [_arc(0.5, 0.5, rx, 0.5, start, start + 370, 13)]


def _zero_slash(v: int) -> Template:
    slash = [
        [(0.85, 0.02), (0.15, 0.98)],
        [(0.72, 0.18), (0.28, 0.82)],
        [(1.0, -0.08), (0.0, 1.08)],
        [(0.78, 0.08), (0.22, 0.92)],
    ][v]
    rx = [0.38, 0.34, 0.32, 0.42][v]
    return [_arc(0.5, 0.5, rx, 0.5, -90, 275, 13), list(slash)]


def _one(v: int) -> Template:
    top, foot = [(0.5, 0.5), (0.55, 0.45), (0.45, 0.5)][v]
    return [[(top, 0.0), (foot, 1.0)]]


def _one_flag(v: int) -> Template:
    # a long up-stroke from the lower left to the top, then the stem; no base
    fx, fy, mid = [
        (0.15, 0.35, None),
        (0.05, 0.50, None),
        (0.25, 0.25, (0.38, 0.12)),
        (0.0, 0.60, (0.30, 0.28)),
        (0.10, 0.42, (0.35, 0.18)),
    ][v]
    up: Stroke = [(fx, fy)] + ([mid] if mid else []) + [_c(0.62, 0.0), (0.62, 1.0)]
    return [up]


def _one_base(v: int) -> Template:
    fx, fy, half = [(0.2, 0.3, 0.28), (0.1, 0.45, 0.35), (0.25, 0.2, 0.22), (0.05, 0.5, 0.4)][v]
    return [[(fx, fy), _c(0.55, 0.0), (0.55, 1.0)], [(0.55 - half, 1.0), (0.55 + half, 1.0)]]


def _two(v: int) -> Template:
    bottom = [(0.1, 0.98), (0.05, 1.0), (0.15, 0.95)][v]
    return [
        [
            (0.12, 0.28),
            (0.32, 0.04),
            (0.62, 0.02),
            (0.85, 0.22),
            (0.75, 0.5),
            (0.42, 0.78),
            _c(*bottom),
            (0.92, 0.98),
        ]
    ]


def _two_loop(v: int) -> Template:
    # the diagonal curls into a loop at the lower left before the base
    size, x0 = [(1.0, 0.0), (0.7, 0.05), (1.3, 0.0), (0.85, 0.08)][v]

    def p(x: float, y: float) -> Point:  # the loop's points, scaled about (0.2, 0.88)
        return (x0 + 0.2 + size * (x - 0.2), 0.88 + size * (y - 0.88))

    return [
        [
            (0.12, 0.28),
            (0.32, 0.04),
            (0.62, 0.02),
            (0.85, 0.22),
            (0.75, 0.5),
            (0.45, 0.74),
            p(0.24, 0.88),
            p(0.12, 0.98),
            p(0.05, 0.9),
            p(0.14, 0.8),
            p(0.28, 0.88),
            p(0.45, 0.98),
            (0.92, 0.96),
        ]
    ]


def _three(v: int) -> Template:
    if v == 1:  # a flat top (a z-like 3)
        return [
            [(0.15, 0.02), _c(0.85, 0.02), _c(0.42, 0.42), (0.8, 0.6), (0.85, 0.85), (0.5, 1.0),
             (0.12, 0.88)]
        ]  # fmt: skip
    mid = {0: (0.45, 0.48), 2: (0.5, 0.45)}[v]
    return [
        [(0.15, 0.12), (0.5, 0.0), (0.8, 0.15), (0.75, 0.38), _c(*mid), (0.82, 0.62),
         (0.85, 0.85), (0.5, 1.0), (0.12, 0.88)]
    ]  # fmt: skip


def _four(v: int) -> Template:
    # closed at the top (MNIST's): stem up, diagonal down-left, bar
    cx = [0.65, 0.6, 0.7][v]
    return [[(cx, 1.0), _c(cx, 0.0), _c(0.05, 0.68), (0.95, 0.68)]]


def _four_open(v: int) -> Template:
    # open at the top; 0-1: two strokes / one sharp stroke; 2-4: one rounded stroke (a Cyrillic
    # che); 5-6: one rounded stroke whose arm and stem lean together (almost a 9's loop)
    if v >= 5:
        gap, low = [(0.34, 0.62), (0.42, 0.7)][v - 5]
        left, right = 0.5 - gap / 2, 0.5 + gap / 2
        return [
            [(left, 0.05), (0.18, 0.3), (0.28, low), (0.6, low), _c(0.8, low - 0.15),
             _c(right, 0.03), (0.78, 1.0)]
        ]  # fmt: skip
    if v == 0:
        return [[(0.28, 0.0), _c(0.1, 0.62), (0.95, 0.62)], [(0.7, 0.08), (0.7, 1.0)]]
    if v == 1:
        return [[(0.25, 0.0), _c(0.12, 0.6), _c(0.78, 0.6), _c(0.76, 0.02), (0.74, 1.0)]]
    drop, slope = [(0.45, 0.0), (0.35, 0.12), (0.5, -0.08)][v - 2]
    return [
        [(0.2 + slope, 0.0), (0.15, drop), (0.3, drop + 0.17), (0.55, drop + 0.17),
         _c(0.8, drop + 0.1), _c(0.82, 0.02), (0.8, 1.0)]
    ]  # fmt: skip


def _five(v: int) -> Template:
    body: Stroke = [(0.55, 0.38), (0.85, 0.6), (0.8, 0.88), (0.45, 1.0), (0.12, 0.88)]
    if v == 1:  # the flag as a second stroke
        return [[(0.25, 0.02), _c(0.2, 0.45), *body], [(0.25, 0.02), (0.85, 0.0)]]
    top = [0.8, 0.9][v // 2]
    return [[(top, 0.02), _c(0.25, 0.02), _c(0.2, 0.45), *body]]


def _six(v: int) -> Template:
    x0 = [0.75, 0.85, 0.6][v]
    return [
        [(x0, 0.02), (0.4, 0.22), (0.15, 0.6), (0.25, 0.92), (0.55, 1.0), (0.82, 0.8), (0.7, 0.55),
         (0.4, 0.52), (0.18, 0.68)]
    ]  # fmt: skip


def _seven(v: int) -> Template:
    foot = [(0.4, 1.0), (0.3, 1.0), (0.5, 1.0)][v]
    return [[(0.05, 0.05), _c(0.95, 0.05), foot]]


def _seven_bar(v: int) -> Template:
    # a crossbar through the stem; 2-3 also a hook down at the left of the top bar
    foot, bar, hook = [
        ((0.4, 1.0), 0.5, False),
        ((0.3, 1.0), 0.55, False),
        ((0.45, 1.0), 0.5, True),
        ((0.35, 1.0), 0.45, True),
    ][v]
    stem = [(0.95 + (foot[0] - 0.95) * t, 0.05 + 0.95 * t) for t in (bar,)]
    sx = stem[0][0]
    top: Stroke = ([(0.05, 0.22), _c(0.07, 0.04)] if hook else [(0.05, 0.05)]) + [
        _c(0.95, 0.05),
        foot,
    ]
    return [top, [(sx - 0.3, bar), (sx + 0.3, bar)]]


def _eight(v: int) -> Template:
    if v == 1:  # two loops
        return [
            _arc(0.5, 0.25, 0.28, 0.25, -90, 272, 10),
            _arc(0.5, 0.73, 0.36, 0.27, -90, 272, 10),
        ]
    w = [0.0, 0.0, 0.08][v]
    return [
        [(0.8 + w, 0.12), (0.5, 0.0), (0.2 - w, 0.15), (0.3, 0.38), (0.7, 0.6), (0.82 + w, 0.85),
         (0.5, 1.0), (0.18 - w, 0.85), (0.3, 0.6), (0.7, 0.4), (0.78, 0.16), (0.52, 0.0)]
    ]  # fmt: skip


def _nine_loop(rx: float = 0.33, ry: float = 0.26) -> Stroke:
    """The 9's loop, counter-clockwise from its right, ending there with a corner."""
    return [*_arc(0.5, ry, rx, ry, 0, -350, 10)[:-1], _c(0.5 + rx, ry)]


def _nine(v: int) -> Template:
    # MNIST's: a slanted straight tail
    foot = [(0.6, 1.0), (0.5, 1.0), (0.7, 1.0)][v]
    return [[*_nine_loop(), foot]]


def _nine_straight(v: int) -> Template:
    rx, ry = [(0.33, 0.26), (0.38, 0.3), (0.28, 0.22), (0.35, 0.33)][v]
    return [[*_nine_loop(rx, ry), (0.5 + rx, 1.0)]]


def _nine_curved(v: int) -> Template:
    # the tail curls to the left at the bottom (as a g)
    end, depth = [((0.15, 0.85), 0.95), ((0.25, 0.9), 1.0), ((0.1, 0.75), 0.9), ((0.2, 0.8), 1.0)][
        v
    ]
    return [[*_nine_loop(), (0.8, 0.65), (0.6, depth), (0.35, depth), end]]


@dataclass(frozen=True)
class Family:
    """The shapes of one digit written one way.

    Attributes:
        label: the digit, 0-9.
        draw: the template of variant ``v`` (an index below ``variants``).
        variants: how many variants ``draw`` knows.
        evaluation: the variants only evaluation draws (never training).
    """

    label: int
    draw: Callable[[int], Template]
    variants: int
    evaluation: tuple[int, ...]

    def split(self, split: str) -> list[int]:
        """The variants of ``split`` (``train`` or ``eval``)."""
        ev = set(self.evaluation)
        return [v for v in range(self.variants) if (v in ev) == (split == "eval")]


#: Every shape family by name: the plain ones (as MNIST's writers), then the other styles.
FAMILIES: dict[str, Family] = {
    "0": Family(0, _zero, 4, (3,)),
    "1": Family(1, _one, 3, (2,)),
    "2": Family(2, _two, 3, (2,)),
    "3": Family(3, _three, 3, (2,)),
    "4": Family(4, _four, 3, (2,)),
    "5": Family(5, _five, 3, (2,)),
    "6": Family(6, _six, 3, (2,)),
    "7": Family(7, _seven, 3, (2,)),
    "8": Family(8, _eight, 3, (2,)),
    "9": Family(9, _nine, 3, (2,)),
    "0-slash": Family(0, _zero_slash, 4, (1, 2)),
    "1-flag": Family(1, _one_flag, 5, (3, 4)),
    "1-base": Family(1, _one_base, 4, (2, 3)),
    "2-loop": Family(2, _two_loop, 4, (2, 3)),
    "4-open": Family(4, _four_open, 7, (3, 4, 5, 6)),
    "7-crossbar": Family(7, _seven_bar, 4, (1, 3)),
    "9-straight": Family(9, _nine_straight, 4, (2, 3)),
    "9-curved": Family(9, _nine_curved, 4, (2, 3)),
}
PLAIN = tuple(str(d) for d in range(10))

#: A continental European hand, one family per digit 0-9.
WRITER = ("0-slash", "1-flag", "2-loop", "3", "4-open", "5", "6", "7-crossbar", "8", "9-curved")
