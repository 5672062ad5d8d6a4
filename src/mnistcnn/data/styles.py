"""Digits as people in other countries write them, drawn from stroke templates.

MNIST's writers were American census employees and students: their 1 is a bar,
their 7 has no crossbar, their 4 is closed at the top. Many writers elsewhere
learned other shapes at school. This module draws those shapes, and plain
digits with thin and thick pens, as 28x28 pictures in MNIST's geometry, for
two uses:

* **training** (:func:`style_digits` with ``split="train"``, mixed into the
  MNIST batches by :class:`StyleMixSource`): the *training variants* of every
  template, with any seed;
* **evaluation** (:func:`styles_set`): the *evaluation variants*, shapes that
  training never draws (another flag length, another tail, another loop, a
  hooked 7, a rounded one-stroke 4 ...), drawn with seeds of their own, grouped
  by style (:data:`STYLES`), so that an accuracy on this set measures whether
  a model learned the style, not the template.

A template is a list of strokes; a stroke is a list of control points in a
unit box (x to the right, y down, the digit about 1 high), passed through by a
Catmull-Rom spline (Catmull & Rom 1974, the centripetal form's uniform
special case), a point marked as a corner breaking the curve there. Each
picture is drawn with its own randomness (numpy ``default_rng([seed, i])``):

1. every control point moves by N(0, ``JITTER``) (a hand never repeats a shape);
2. the whole digit gets a slant (horizontal shear, tangent ~ U(+-0.35)), a
   rotation ~ U(+-8) degrees and a width change ~ U(0.8, 1.2);
3. a pen width in pixels of the final 28x28 picture (thin U(0.9, 1.4),
   normal U(1.5, 2.6), thick U(3.0, 4.2); the normal pen matches MNIST's ink area);
4. as MNIST was made (LeCun et al. 1998): the digit (stroke outline included)
   fitted into a 20x20 box, aspect kept, its centre of mass moved to pixel
   (14, 14) (sub-pixel here);
5. rendered anti-aliased: the ink of a pixel is its distance to the pen's
   centre line turned into coverage (``clip(r - d + 0.5, 0, 1)``) at twice
   the resolution, then 2x2 area averaging, with an ink level ~ U(0.8, 1).

Pictures are uint8 (N, 28, 28), light ink on black, as MNIST's IDX files.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from mnistcnn.data.loaders import Augment, Batch, BatchSource
from mnistcnn.data.style_templates import FAMILIES, PLAIN, WRITER, Stroke, Template

#: Standard deviation of the control points' jitter, in units of the digit's height.
JITTER = 0.025
#: Pen widths in pixels of the 28x28 picture: (low, high) of the uniform draw.
PENS = {"thin": (0.9, 1.4), "normal": (1.5, 2.6), "thick": (3.0, 4.2)}
#: Seeds of training pools are ``TRAIN_SEED + run seed``; the evaluation set uses its own.
TRAIN_SEED = 2_000_003
EVAL_SEED = 7


#: The styles of the evaluation set: name -> (families, pen). A style of one family
#: holds digits of one class; ``pen-thin``, ``pen-thick`` and ``plain`` hold all ten.
STYLES: dict[str, tuple[tuple[str, ...], str]] = {
    "1-flag": (("1-flag",), "normal"),
    "1-base": (("1-base",), "normal"),
    "7-crossbar": (("7-crossbar",), "normal"),
    "4-open": (("4-open",), "normal"),
    "9-straight": (("9-straight",), "normal"),
    "9-curved": (("9-curved",), "normal"),
    "2-loop": (("2-loop",), "normal"),
    "0-slash": (("0-slash",), "normal"),
    "pen-thin": (PLAIN, "thin"),
    "pen-thick": (PLAIN, "thick"),
    "plain": (PLAIN, "normal"),
}
#: Training draws a style family with this probability, a plain digit otherwise.
STYLE_SHARE = 0.6
#: Training pens: thin, normal, thick with these probabilities.
PEN_SHARES = {"thin": 0.25, "normal": 0.5, "thick": 0.25}


def _spline(points: np.ndarray, steps: int = 10) -> np.ndarray:
    """Uniform Catmull-Rom curve through float (K, 2) points -> float (M, 2) polyline."""
    if len(points) < 3:
        return points
    padded = np.concatenate([2 * points[:1] - points[1:2], points, 2 * points[-1:] - points[-2:-1]])
    t = np.linspace(0, 1, steps, endpoint=False)[:, None]  # (S, 1)
    out = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1], padded[i], padded[i + 1], padded[i + 2]
        out.append(
            0.5
            * (
                2 * p1
                + (p2 - p0) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (3 * p1 - p0 - 3 * p2 + p3) * t**3
            )
        )
    out.append(points[-1:])
    return np.concatenate(out)


def _polyline(stroke: Stroke, moved: np.ndarray) -> np.ndarray:
    """A stroke's control points ``moved`` (K, 2) -> its polyline, broken at corners."""
    cuts = [i for i, p in enumerate(stroke) if len(p) > 2 and 0 < i < len(stroke) - 1]
    pieces, start = [], 0
    for cut in [*cuts, len(stroke) - 1]:
        pieces.append(_spline(moved[start : cut + 1]))
        start = cut
    return np.concatenate(pieces)


#: Rendering resolution: the centre line is rasterised at this many times 28x28.
_UP = 4


def _dense(line: np.ndarray) -> np.ndarray:
    """A polyline float (M, 2) resampled every 0.2 px of the 4x canvas -> float (K, 2)."""
    if len(line) < 2:
        return line
    seg = np.diff(line, axis=0)
    steps = np.maximum(1, np.ceil(np.hypot(seg[:, 0], seg[:, 1]) * _UP / 0.2)).astype(int)
    t = np.concatenate([np.arange(n) / n for n in steps])
    starts = np.repeat(line[:-1], steps, 0)
    return np.concatenate([starts + np.repeat(seg, steps, 0) * t[:, None], line[-1:]])


def _render(lines: list[np.ndarray], pen: float, level: float) -> np.ndarray:
    """Polylines in 28x28 pixel units -> float (28, 28) ink in [0, 1] (anti-aliased).

    The centre line is rasterised on a 112x112 canvas, its Euclidean distance
    transform (scipy) gives every sub-pixel's distance ``d`` to it, the pen's
    coverage is ``clip(r - d + 0.5, 0, 1)`` (``r`` the half width), and 4x4
    area averaging brings it to 28x28.
    """
    size = 28 * _UP
    centre = np.ones((size, size), bool)
    for line in lines:
        pts = np.floor(_dense(line) * _UP).astype(int)
        keep = ((pts >= 0) & (pts < size)).all(1)
        centre[pts[keep, 1], pts[keep, 0]] = False
    d = ndimage.distance_transform_edt(centre)  # (112, 112), sub-pixels
    ink = np.clip(pen / 2 * _UP - d + 0.5, 0, 1)
    return ink.reshape(28, _UP, 28, _UP).mean((1, 3)) * level


def draw(template: Template, rng: np.random.Generator, pen: float) -> np.ndarray:
    """One template drawn as a handwritten digit -> uint8 (28, 28), light on black.

    Args:
        template: strokes of control points in the unit box (module docstring).
        rng: the picture's randomness (jitter, slant, rotation, width, ink level).
        pen: pen width in pixels of the 28x28 picture (> 0).
    """
    moved = [np.asarray([p[:2] for p in s], np.float64) for s in template]
    moved = [m + rng.normal(0, JITTER, m.shape) for m in moved]
    slant = rng.uniform(-0.35, 0.35)
    angle = math.radians(rng.uniform(-8, 8))
    width = rng.uniform(0.8, 1.2)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shape = rot @ np.array([[1.0, slant], [0.0, 1.0]]) @ np.diag([width, 1.0])
    lines = [_polyline(s, (m - 0.5) @ shape.T) for s, m in zip(template, moved, strict=True)]
    every = np.concatenate(lines)
    lo, hi = every.min(0), every.max(0)
    scale = (20.0 - pen) / max(float((hi - lo).max()), 1e-6)  # outline inside the 20 px box
    lines = [(line - (lo + hi) / 2) * scale + 14.0 for line in lines]
    level = rng.uniform(0.9, 1.0)
    ink = _render(lines, pen, level)
    total = ink.sum()
    idx = np.arange(28)
    shift = np.array([14.0 - ink.sum(0) @ idx / total, 14.0 - ink.sum(1) @ idx / total])
    ink = _render([line + shift for line in lines], pen, level)  # centre of mass at (14, 14)
    return np.round(ink.clip(0, 1) * 255).astype(np.uint8)


def _pen(rng: np.random.Generator, kind: str) -> float:
    low, high = PENS[kind]
    return float(rng.uniform(low, high))


def style_digits(count: int, seed: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` generated digits of ``split``'s variants: (uint8 (N, 28, 28), int64 (N,) labels).

    Picture ``i`` is a style family with probability :data:`STYLE_SHARE` (each
    family equally likely), a plain digit otherwise (each digit equally likely),
    one of the family's ``split`` variants, a pen from :data:`PEN_SHARES`, all
    drawn from ``default_rng([seed, i])``: the same ``(seed, i)`` always gives the
    same picture, whatever ``count``.

    Raises:
        ValueError: ``split`` is not ``train`` or ``eval``, or ``count`` < 0.
    """
    if split not in ("train", "eval") or count < 0:
        raise ValueError(f"style_digits needs split train or eval and count >= 0, got {split!r}")
    styled = [n for n in FAMILIES if n not in PLAIN]
    pens, shares = list(PEN_SHARES), list(PEN_SHARES.values())
    images = np.zeros((count, 28, 28), np.uint8)
    labels = np.zeros(count, np.int64)
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        names = styled if rng.random() < STYLE_SHARE else list(PLAIN)
        family = FAMILIES[names[rng.integers(len(names))]]
        variants = family.split(split)
        template = family.draw(variants[rng.integers(len(variants))])
        pen = _pen(rng, pens[rng.choice(len(pens), p=shares)])
        images[i], labels[i] = draw(template, rng, pen), family.label
    return torch.from_numpy(images), torch.from_numpy(labels)


@dataclass(frozen=True)
class StyleSet:
    """The held-out styles set: pictures, labels and the style of each.

    Attributes:
        images: uint8 (N, 28, 28), light ink on black.
        labels: int64 (N,) digits.
        styles: int64 (N,) index into ``names``.
        names: the style names (:data:`STYLES`' keys, in its order).
    """

    images: torch.Tensor
    labels: torch.Tensor
    styles: torch.Tensor
    names: list[str]

    def groups(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(style name, bool (N,) mask of its pictures) for every style."""
        for k, name in enumerate(self.names):
            yield name, self.styles == k


@functools.lru_cache(maxsize=2)
def styles_set(per_style: int = 200, seed: int = EVAL_SEED) -> StyleSet:
    """The evaluation set: ``per_style`` pictures of every style in :data:`STYLES`.

    Only the families' evaluation variants are drawn, with
    ``default_rng([seed, 1000 + style index, i])`` (training pools use
    ``[TRAIN_SEED + run seed, i]``); a style of several families (the pens,
    ``plain``) cycles through the ten digits. About 2 ms per picture.

    Raises:
        ValueError: ``per_style`` < 1.
    """
    if per_style < 1:
        raise ValueError(f"per_style must be >= 1, got {per_style}")
    n = per_style * len(STYLES)
    images, labels = np.zeros((n, 28, 28), np.uint8), np.zeros(n, np.int64)
    styles = np.repeat(np.arange(len(STYLES)), per_style)
    for k, (families, pen) in enumerate(STYLES.values()):
        for i in range(per_style):
            rng = np.random.default_rng([seed, 1000 + k, i])
            family = FAMILIES[families[i % len(families)]]
            variants = family.split("eval")
            template = family.draw(variants[rng.integers(len(variants))])
            j = k * per_style + i
            images[j], labels[j] = draw(template, rng, _pen(rng, pen)), family.label
    return StyleSet(
        torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(styles), list(STYLES)
    )


def writer_digits(
    per_class: int, seed: int, families: Sequence[str] | None = None, pen: str = "normal"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One writer's hand: ``per_class`` pictures of each digit in one fixed set of shapes.

    ``families`` names one family per digit 0-9 (default :data:`WRITER`, a
    continental European hand: slashed 0, flagged 1, looped 2, open 4, crossed
    7, curved 9), each drawn with its *evaluation* variants and ``pen``, picture
    ``i`` of digit ``d`` from ``default_rng([seed, 5000 + d, i])``.

    Returns:
        uint8 (10 * per_class, 28, 28) and int64 (10 * per_class,) labels, digit by digit.
    """
    names = list(families or WRITER)
    images = np.zeros((10 * per_class, 28, 28), np.uint8)
    labels = np.repeat(np.arange(10), per_class)
    for d, name in enumerate(names):
        family = FAMILIES[name]
        variants = family.split("eval")
        for i in range(per_class):
            rng = np.random.default_rng([seed, 5000 + d, i])
            template = family.draw(variants[rng.integers(len(variants))])
            images[d * per_class + i] = draw(template, rng, _pen(rng, pen))
    return torch.from_numpy(images), torch.from_numpy(labels)


@functools.lru_cache(maxsize=2)
def style_pool(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A run's training pool: :func:`style_digits` of ``TRAIN_SEED + seed`` (cached per process)."""
    return style_digits(count, TRAIN_SEED + seed, "train")


class StyleMixSource:
    """A training source whose batches also hold generated digits of other styles.

    Each batch is ``(cat(images, generated), cat(labels, their labels))``: float32
    (B + K, C, 28, 28) on 0..1 and int64 (B + K,), ``K = ceil(fraction * batch_size
    / world_size)`` drawn uniformly from the pool and augmented with the run's own
    augmentation, from a CPU generator seeded by ``(seed, epoch, batch index,
    rank)``: a resumed run replays the same digits. They are labelled digits like
    MNIST's, so they count in the loss (and in the training accuracy) as MNIST's do.

    Args:
        base: the digit training source (its ``len``, ``num_samples`` and epochs are kept).
        images: uint8 (N, 28, 28) pool; labels: int64 (N,); moved to ``device``.
        per_batch: generated digits per global batch (>= 1).
    """

    def __init__(
        self,
        base: BatchSource,
        images: torch.Tensor,
        labels: torch.Tensor,
        per_batch: int,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
        augment: Augment | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if len(images) == 0 or per_batch < 1:
            raise ValueError("a style pool must be non-empty and per_batch >= 1")
        self.base, self.augment = base, augment
        self.device = torch.device(device)
        self.images = images.to(self.device)[:, None]  # (N, 1, 28, 28) uint8
        self.labels = labels.to(self.device)
        self.count = math.ceil(per_batch / world_size)
        self.seed, self.rank, self.epoch = seed, rank, 0
        self.num_samples = base.num_samples

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.base.set_epoch(epoch)

    def generated(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 (K, 1, 28, 28) on 0..1 and int64 (K,): the generated digits of ``batch``."""
        gen = torch.Generator().manual_seed(
            (((self.seed * 1_000_003 + self.epoch) * 100_003 + batch) * 131 + self.rank + 0x57)
            % 2**63
        )
        pick = torch.randint(len(self.images), (self.count,), generator=gen).to(self.device)
        x = self.images[pick].float().div_(255.0)
        return (self.augment(x, gen) if self.augment is not None else x), self.labels[pick]

    def __iter__(self) -> Iterator[Batch]:
        for i, (images, labels) in enumerate(self.base):
            extra, extra_labels = self.generated(i)
            yield (
                torch.cat([images, extra.to(images.dtype)]),
                torch.cat([labels, extra_labels.to(labels.device, labels.dtype)]),
            )
