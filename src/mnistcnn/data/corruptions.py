"""The 15 corruptions of MNIST-C, applied to batches of 28x28 grayscale images.

Source: N. Mu and J. Gilmer, "MNIST-C: A Robustness Benchmark for Computer
Vision", ICML 2019 Workshop on Uncertainty and Robustness in Deep Learning,
arXiv:1906.02337; the reference code is ``corruptions.py`` of
https://github.com/google-research/mnist-c. Each corruption here uses the
parameters of that file's function at the severity it defaults to (MNIST-C
uses one fixed severity per corruption); the parameters are quoted beside
each function and in :data:`CORRUPTIONS`.

The image operations come from scikit-image (``random_noise``, ``gaussian``,
``warp``, ``rgb2hsv``, ``canny``) and NumPy; what has no library function
(ImageMagick's motion blur, the plasma fractal of fog, the line drawings, the
local pixel shuffle of glass blur) is in :mod:`mnistcnn.data.corruption_filters`.
``docs/robustness.md`` lists each corruption and where it departs from MNIST-C.

Randomness: :func:`corrupt` works through the images in chunks of
:data:`CHUNK` images, each with its own NumPy generator seeded from
``(seed, the corruption's name, the chunk's index)``, so the corrupted copy is
the same on every machine for a seed, and its first ``k * CHUNK`` images do
not depend on how many images follow.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from mnistcnn.data import corruption_filters as cf
from mnistcnn.errors import SettingError

#: Images per seeded chunk (see the module's docstring).
CHUNK = 500
SIDE = 28
Apply = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Corruption:
    """One corruption of MNIST-C.

    Attributes:
        name: MNIST-C's name (``shot_noise``...).
        apply: ``(uint8 (n, 28, 28), generator) -> float (n, 28, 28)`` in 0..255.
        library: what does the work.
        setting: MNIST-C's parameters, in words.
    """

    name: str
    apply: Apply
    library: str
    setting: str


def _skimage() -> None:
    """Raise a clear error when scikit-image is missing."""
    try:
        import skimage  # noqa: F401
    except ImportError:  # pragma: no cover - the robustness extra installs it
        raise SettingError(
            "the corruptions need scikit-image: pip install 'mnistcnn[robustness]'",
            setting="corruptions",
        ) from None


def shot_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson noise: ``poisson(3 * x) / 3`` on pixels in [0, 1] (severity 5: c = 3)."""
    c = 3.0
    return np.clip(rng.poisson(x / 255.0 * c) / c, 0, 1) * 255


def impulse_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise on 17 % of the pixels (severity 4: amount 0.17), skimage."""
    from skimage.util import random_noise

    return np.clip(random_noise(x / 255.0, mode="s&p", amount=0.17, rng=rng), 0, 1) * 255


def brightness(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """+0.5 on the HSV value channel (severity 5), through skimage's colour conversions.

    On a grey image this acts on each pixel by its value alone, so skimage's
    gray2rgb -> rgb2hsv -> V + 0.5 -> hsv2rgb -> rgb2gray runs once on the 256
    grey levels and is applied as a lookup table (the same numbers, 1000 times faster).
    """
    from skimage import color

    levels = np.arange(256, dtype=np.float64).reshape(1, 256) / 255.0
    hsv = color.rgb2hsv(color.gray2rgb(levels))  # (1, 256, 3)
    hsv[..., 2] = np.clip(hsv[..., 2] + 0.5, 0, 1)
    table = np.clip(color.rgb2gray(color.hsv2rgb(hsv)), 0, 1)[0] * 255  # (256,)
    return table[x]


def _centred(linear: np.ndarray) -> np.ndarray:
    """(n, 2, 2) linear maps -> (n, 3, 3) affine maps that keep the centre (13.5, 13.5) fixed."""
    centre = (SIDE - 1) / 2
    out = np.zeros((len(linear), 3, 3))
    out[:, :2, :2] = linear
    out[:, :2, 2] = centre * (1 - linear.sum(axis=2))  # t = c - A c, c = (13.5, 13.5)
    out[:, 2, 2] = 1.0
    return out


def _warp(x: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """skimage ``warp(image, inverse_map=AffineTransform(matrix))`` of each image (bilinear,
    zeros outside), as MNIST-C's ``shear``/``rotate``/``scale``/``translate`` do."""
    from skimage.transform import AffineTransform, warp

    out = np.empty(x.shape)
    for i in range(len(x)):
        out[i] = warp(x[i] / 255.0, inverse_map=AffineTransform(matrix=matrices[i]))
    return np.clip(out, 0, 1) * 255


def _signs(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(np.array([-1.0, 1.0]), size=n)


def shear(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shear by 0.4 rad (severity 2), to either side at random, about the centre.

    The matrix is the one scikit-image < 0.19's ``AffineTransform(shear=c)``
    made, ``[[1, -sin c], [0, cos c]]``, written out because newer versions
    define shear differently (``[[1, -tan c], [0, 1]]``).
    """
    c = 0.4 * _signs(rng, len(x))
    linear = np.zeros((len(x), 2, 2))
    linear[:, 0, 0], linear[:, 0, 1], linear[:, 1, 1] = 1.0, -np.sin(c), np.cos(c)
    return _warp(x, _centred(linear))


def rotate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotate by 0.4 rad (about 23 degrees, severity 2), either way at random, about the centre."""
    c = 0.4 * _signs(rng, len(x))
    cos, sin = np.cos(c), np.sin(c)
    linear = np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1)  # (n, 2, 2)
    return _warp(x, _centred(linear))


def scale(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shrink to 0.7 of the size about the centre (severity 3: inverse map scale 1/0.7)."""
    linear = np.broadcast_to(np.eye(2) / 0.7, (len(x), 2, 2))
    return _warp(x, _centred(linear))


def translate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Move by 3 pixels along each axis, each direction at random (severity 3).

    The inverse map adds (dx, dy) = (+-3, +-3), so the digit moves by (-dx, -dy).
    """
    matrices = np.broadcast_to(np.eye(3), (len(x), 3, 3)).copy()
    matrices[:, 0, 2] = 3.0 * _signs(rng, len(x))
    matrices[:, 1, 2] = 3.0 * _signs(rng, len(x))
    return _warp(x, matrices)


def stripe(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Invert columns 0-6 and 21-27 (``255 - x``); no randomness."""
    y = x.astype(np.float64)
    y[:, :, :7] = 255.0 - y[:, :, :7]
    y[:, :, 21:] = 255.0 - y[:, :, 21:]
    return y


def canny_edges(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """skimage's Canny edge map (its defaults: sigma 1, thresholds 0.1 and 0.2), 0 or 255."""
    from skimage.feature import canny

    return np.stack([canny(image / 255.0) for image in x]).astype(np.float64) * 255


def _entry(name: str, fn: Apply, library: str, setting: str) -> tuple[str, Corruption]:
    return name, Corruption(name, fn, library, setting)


#: MNIST-C's 15 corruptions, in the paper's order.
CORRUPTIONS: dict[str, Corruption] = dict(
    [
        _entry("shot_noise", shot_noise, "numpy (Poisson)", "severity 5: poisson(3x)/3"),
        _entry(
            "impulse_noise",
            impulse_noise,
            "scikit-image random_noise",
            "severity 4: salt and pepper, amount 0.17",
        ),
        _entry(
            "glass_blur",
            cf.glass_blur,
            "scikit-image gaussian + numpy",
            "severity 1: sigma 0.7, max shift 1 px, 2 iterations",
        ),
        _entry(
            "motion_blur",
            cf.motion_blur,
            "numpy (ImageMagick's kernel)",
            "severity 1: radius 10, sigma 3, angle uniform in [-45, 45] degrees",
        ),
        _entry("shear", shear, "scikit-image warp", "severity 2: 0.4 rad, random side"),
        _entry("scale", scale, "scikit-image warp", "severity 3: 0.7 times the size"),
        _entry("rotate", rotate, "scikit-image warp", "severity 2: 0.4 rad, random way"),
        _entry("brightness", brightness, "scikit-image color", "severity 5: HSV value +0.5"),
        _entry("translate", translate, "scikit-image warp", "severity 3: 3 px along each axis"),
        _entry("stripe", stripe, "numpy", "columns 0-6 and 21-27 inverted"),
        _entry(
            "fog",
            cf.fog,
            "numpy (plasma fractal)",
            "severity 5: strength 3.0, fractal decay 1.4",
        ),
        _entry(
            "spatter",
            cf.spatter,
            "scikit-image gaussian",
            "severity 4: liquid (0.65, 0.3), blur 1 and 1.5, thresholds 0.65 and 0.8",
        ),
        _entry("dotted_line", cf.dotted_line, "numpy", "a dashed line across the image"),
        _entry("zigzag", cf.zigzag, "numpy", "a zigzag line, 2 px steps"),
        _entry("canny_edges", canny_edges, "scikit-image canny", "defaults (sigma 1)"),
    ]
)


def parse_corruptions(text: str | None) -> list[str]:
    """``"all"``, ``None`` or ``""`` -> all 15 names; ``"fog,stripe"`` -> those, checked.

    Raises:
        SettingError: an unknown name (``setting="corruptions"``), listing the known ones.
    """
    if text is None or text.strip() in ("", "all"):
        return list(CORRUPTIONS)
    names = list(dict.fromkeys(n.strip().replace("-", "_") for n in text.split(",") if n.strip()))
    for name in names:
        if name not in CORRUPTIONS:
            raise SettingError(
                f"corruptions {name!r}: no such corruption; known: all, {', '.join(CORRUPTIONS)}",
                setting="corruptions",
            )
    return names


def chunk_generator(name: str, seed: int, chunk: int) -> np.random.Generator:
    """The generator of one chunk: seeded from ``(seed, crc32(name), chunk)`` (NumPy PCG64)."""
    sequence = np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()), chunk))
    return np.random.default_rng(sequence)


def corrupt(images: np.ndarray | torch.Tensor, name: str, *, seed: int = 0) -> np.ndarray:
    """A corrupted copy of ``images``: MNIST-C's corruption ``name``, seeded.

    Args:
        images: uint8 (N, 28, 28), 0..255, white digit on black (MNIST's form);
            a tensor or an array.
        name: one of :data:`CORRUPTIONS`.
        seed: any integer >= 0; the same seed gives the same images.

    Returns:
        uint8 (N, 28, 28): the corruption's float result rounded to the nearest
        integer and clipped to 0..255. Image ``i`` depends on the seed, its own
        pixels and its chunk (``i // CHUNK``) only.

    Raises:
        SettingError: an unknown ``name``, a negative seed, or images that are
            not uint8 (N, 28, 28); scikit-image missing.
    """
    if name not in CORRUPTIONS:
        parse_corruptions(name)  # raises, naming the known ones
    if seed < 0:
        raise SettingError(f"corruption_seed must be >= 0, got {seed}", setting="corruption_seed")
    x = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (SIDE, SIDE):
        raise SettingError(
            f"corruptions take uint8 (N, 28, 28) images, got {x.dtype} {tuple(x.shape)}",
            setting="images",
        )
    _skimage()
    spec = CORRUPTIONS[name]
    out = np.empty_like(x)
    for index in range(math.ceil(len(x) / CHUNK)):
        part = slice(index * CHUNK, (index + 1) * CHUNK)
        result = spec.apply(x[part], chunk_generator(name, seed, index))
        out[part] = np.clip(np.rint(result), 0, 255).astype(np.uint8)
    return out
