"""MNIST-C's corruptions that no library provides, vectorized over a batch.

Each function takes uint8 (n, 28, 28) images (0..255) and a NumPy generator and
returns float (n, 28, 28) in 0..255, as the functions of MNIST-C's
``corruptions.py`` (https://github.com/google-research/mnist-c; Mu & Gilmer
2019, arXiv:1906.02337) do for one image; the parameters are those functions'
defaults. They are registered in :data:`mnistcnn.data.corruptions.CORRUPTIONS`.

* glass blur: scikit-image's Gaussian blur, MNIST-C's local pixel shuffle, blur again;
* motion blur: ImageMagick's ``MotionBlurImage`` kernel (MNIST-C calls ImageMagick
  through Wand; Wand/ImageMagick is not a Python dependency here);
* fog: the diamond-square plasma fractal MNIST-C adapts from
  https://github.com/FLHerne/mapgen/blob/master/diamondsquare.py;
* spatter: scikit-image's Gaussian blur of thresholded noise;
* dotted line, zigzag: MNIST-C's ``line_from_points`` drawings.

(The ``imagecorruptions`` package, 1.1.2, has fog and motion blur, but needs
OpenCV and does not import with NumPy 2: it uses ``np.float_``.)
"""

from __future__ import annotations

import math

import numpy as np

SIDE = 28
_COLS = np.arange(SIDE, dtype=np.float64)[None, None, :]  # (1, 1, 28)
_ROWS = np.arange(SIDE, dtype=np.float64)[None, :, None]  # (1, 28, 1)


def _vertical_gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """skimage ``gaussian`` along the rows axis only, of (n, 28, 28) floats.

    MNIST-C calls ``gaussian(image, sigma, multichannel=True)`` on a 2-D image;
    scikit-image < 0.19 then took the last axis for colour channels and
    blurred along the first (vertical) axis only. We keep that.
    """
    from skimage.filters import gaussian

    return np.asarray(gaussian(x, sigma=(0.0, sigma, 0.0)))


def glass_blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, shuffle pixels locally, blur again (severity 1: sigma 0.7, shift 1, 2 iterations).

    The shuffle visits rows and columns 27..2 (from the bottom right), twice;
    at each pixel, with probability 1/2, it swaps the pixel with the one at
    (+dy, +dx), dx and dy drawn from {-1, 0} (``randint(-1, 1)``), as MNIST-C does.
    """
    sigma, delta, iterations = 0.7, 1, 2
    y = (_vertical_gaussian(x / 255.0, sigma) * 255).astype(np.uint8)  # truncates, as MNIST-C
    n = len(y)
    positions = range(SIDE - delta, delta, -1)  # 27 .. 2
    size = (iterations, len(positions), len(positions), n)
    swap = rng.random(size) < 0.5
    shifts = rng.integers(-delta, delta, size=(*size, 2))  # (dx, dy) in [-delta, delta)
    for it in range(iterations):
        for i, h in enumerate(positions):
            for j, w in enumerate(positions):
                idx = np.flatnonzero(swap[it, i, j])
                hp = h + shifts[it, i, j, idx, 1]
                wp = w + shifts[it, i, j, idx, 0]
                here = y[idx, h, w].copy()
                y[idx, h, w] = y[idx, hp, wp]
                y[idx, hp, wp] = here
    return np.clip(_vertical_gaussian(y / 255.0, sigma), 0, 1) * 255


def motion_taps(
    angle: np.ndarray, radius: float = 10, sigma: float = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ImageMagick's motion-blur kernel (``MotionBlurImage`` in MagickCore/effect.c).

    ``width = 2 ceil(radius) + 1`` taps; tap ``i`` weighs ``exp(-i^2 / (2 sigma^2))``
    (normalized to sum 1) and reads the pixel at column offset
    ``ceil(i cos(angle) - 0.5)`` and row offset ``ceil(i sin(angle) - 0.5)``:
    a one-sided Gaussian smear. (kornia's ``motion_blur`` is a centred, uniform
    line: another kernel.)

    Args:
        angle: (n,) angles in degrees.

    Returns:
        weights (width,), column offsets (n, width), row offsets (n, width), ints.
    """
    width = 2 * math.ceil(radius) + 1
    i = np.arange(width, dtype=np.float64)
    weights = np.exp(-(i**2) / (2 * sigma**2))
    rad = np.deg2rad(np.asarray(angle, dtype=np.float64))[:, None]  # (n, 1)
    dcol = np.ceil(i * np.cos(rad) - 0.5).astype(np.int64)
    drow = np.ceil(i * np.sin(rad) - 0.5).astype(np.int64)
    return weights / weights.sum(), dcol, drow


def motion_blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Motion blur (severity 1: radius 10, sigma 3), angle uniform in [-45, 45] degrees.

    Pixels outside the image repeat the edge (ImageMagick's default virtual pixels).
    """
    angle = rng.uniform(-45, 45, size=len(x))
    weights, dcol, drow = motion_taps(angle)
    pad = len(weights) - 1
    padded = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    n = np.arange(len(x))[:, None, None]
    out = np.zeros(x.shape)
    for t, weight in enumerate(weights):
        rows = pad + _ROWS.astype(np.int64) + drow[:, t, None, None]  # (n, 28, 1)
        cols = pad + _COLS.astype(np.int64) + dcol[:, t, None, None]  # (n, 1, 28)
        out += weight * padded[n, rows, cols]
    return out


def plasma_fractal(
    rng: np.random.Generator,
    count: int,
    mapsize: int = 256,
    wibbledecay: float = 3.0,
    crop: int | None = None,
) -> np.ndarray:
    """``count`` diamond-square height maps, each scaled to 0..1 by its own min and max.

    MNIST-C's ``plasma_fractal``, over a batch: the random offset at a step is
    ``wibble * uniform(-wibble, wibble)`` (wibble starts at 100 and is divided
    by ``wibbledecay`` after each step); neighbours wrap around. Computed in
    float32 (3-4 times faster than float64 here; the offsets are ~1e4, the
    rounding ~1e-3).

    Returns:
        float64 (count, crop, crop): the top-left ``crop`` x ``crop`` of each
        map (default: the whole ``mapsize`` x ``mapsize``).

    Raises:
        ValueError: ``mapsize`` is not a power of two.
    """
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of two, got {mapsize}")
    maps = np.empty((count, mapsize, mapsize), np.float32)
    maps[:, 0, 0] = 0.0
    step, wibble = mapsize, 100.0
    while step >= 2:
        half = step // 2

        def wibbled_mean(total: np.ndarray, w: float = wibble) -> np.ndarray:
            noise = rng.random(total.shape, dtype=np.float32)  # w * uniform(-w, w), in place
            noise *= 2 * w * w
            noise -= w * w
            total *= 0.25
            total += noise
            return total

        corners = maps[:, 0:mapsize:step, 0:mapsize:step]
        square = corners + np.roll(corners, -1, axis=1)
        square += np.roll(square, -1, axis=2)
        maps[:, half:mapsize:step, half:mapsize:step] = wibbled_mean(square)
        centres = maps[:, half:mapsize:step, half:mapsize:step]
        corners = maps[:, 0:mapsize:step, 0:mapsize:step]
        left = centres + np.roll(centres, 1, axis=1)
        left += corners
        left += np.roll(corners, -1, axis=2)
        maps[:, 0:mapsize:step, half:mapsize:step] = wibbled_mean(left)
        top = centres + np.roll(centres, 1, axis=2)
        top += corners
        top += np.roll(corners, -1, axis=1)
        maps[:, half:mapsize:step, 0:mapsize:step] = wibbled_mean(top)
        step //= 2
        wibble /= wibbledecay
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    side = mapsize if crop is None else crop
    return ((maps[:, :side, :side] - low) / (high - low)).astype(np.float64)


def fog(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add 3.0 times the top-left 28x28 of a 256x256 plasma fractal (decay 1.4), then rescale
    by ``max / (max + 3.0)`` (severity 5); fractals are made 8 at a time (cache-sized)."""
    strength, decay = 3.0, 1.4
    y = x / 255.0
    peak = y.max(axis=(1, 2), keepdims=True)
    plasma = np.concatenate(
        [
            plasma_fractal(rng, len(x[i : i + 8]), wibbledecay=decay, crop=SIDE)
            for i in range(0, len(x), 8)
        ]
    )
    return np.clip((y + strength * plasma) * peak / (peak + strength), 0, 1) * 255


def spatter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mud blots: normal(0.65, 0.3) noise blurred (sigma 1), kept above 0.65, its mask blurred
    (sigma 1.5) and kept from 0.8, blended in as grey 63 (severity 4)."""
    from skimage.filters import gaussian

    liquid = np.asarray(gaussian(rng.normal(0.65, 0.3, size=x.shape), sigma=(0.0, 1.0, 1.0)))
    liquid[liquid < 0.65] = 0
    mask = np.asarray(gaussian((liquid > 0.65).astype(np.float32), sigma=(0.0, 1.5, 1.5)))
    mask[mask < 0.8] = 0
    return np.clip(x / 255.0 * (1 - mask) + 63 / 255.0 * mask, 0, 1) * 255


def line_from_points(c0: np.ndarray, r0: np.ndarray, c1: np.ndarray, r1: np.ndarray) -> np.ndarray:
    """MNIST-C's ``line_from_points`` for n lines: float64 (n, 28, 28) in 0..1.

    Intensity ``log(1 - d / 2.3) + 1`` (clipped to 0..1) at vertical distance
    ``d`` from the line through (c0, r0) and (c1, r1) (column, row), for
    columns from ``floor(c0)`` to ``ceil(c1) - 1``; nothing for a vertical line.
    """
    c0, r0, c1, r1 = (np.asarray(v, dtype=np.float64)[:, None, None] for v in (c0, r0, c1, r1))
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (r1 - r0) / (c1 - c0)
        dist = np.clip(np.abs(_ROWS - (slope * (_COLS - c0) + r0)), 0, 2.3 - 1e-10)
    line = np.clip(np.log(1 - dist / 2.3) + 1, 0, 1)
    left, right = np.floor(c0), np.ceil(c1)
    outside = (left > _COLS) | (right <= _COLS) | (c1 == c0)  # columns outside [left, right)
    return np.where(outside, 0.0, line)


def dotted_line(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A line from (0, r0) to (27, r1), r0 and r1 uniform in 0..26, drawn in 2-px dashes
    (columns 2-3, 6-7, ..., 26-27), added to the image."""
    n = len(x)
    rows = rng.integers(0, 27, size=(n, 2))
    line = line_from_points(np.zeros(n), rows[:, 0], np.full(n, 27.0), rows[:, 1])
    line[:, :, (np.arange(SIDE) // 2) % 2 == 0] = 0  # the gaps: columns 0-1, 4-5, ...
    return np.clip(x / 255.0 + line, 0, 1) * 255


def zigzag_points(slope_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Corner points (columns, rows relative to r0) of MNIST-C's zigzag from column 2 to 25
    whose end is ``slope_rows`` rows below its start: 2-px steps of height +-2, rotated."""
    a = b = 2.0
    c0, c1 = 2, 25
    theta = math.atan(slope_rows / (c1 - c0))
    d = (c1 - c0) / math.cos(theta)
    points = [(0.0, 0.0)]
    r_i = 0.0
    for i in range(int((d - a) // (2 * a)) + 1):
        r_i = (-1) ** i * b
        points.append(((2 * i + 1) * a, r_i))
    max_c = (2 * a) * (d // (2 * a))
    if d != max_c:
        points.append((d, r_i / (2 * (d - max_c))))  # MNIST-C's last point, as written
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    cs, rs = rot @ np.array(points).T
    return cs + c0, rs


def zigzag(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A zigzag from (2, r0) to about (25, r0 + k), r0 uniform in 0..26, k in -5..4, added."""
    n = len(x)
    r0 = rng.integers(0, 27, size=n)
    k = rng.integers(-5, 5, size=n)
    y = x / 255.0
    for slope_rows in np.unique(k):
        idx = np.flatnonzero(k == slope_rows)
        cs, rs = zigzag_points(int(slope_rows))
        start = r0[idx].astype(np.float64)
        for s in range(len(cs) - 1):
            ones = np.ones(len(idx))
            seg = line_from_points(cs[s] * ones, rs[s] + start, cs[s + 1] * ones, rs[s + 1] + start)
            y[idx] = np.clip(y[idx] + seg, 0, 1)
    return y * 255
