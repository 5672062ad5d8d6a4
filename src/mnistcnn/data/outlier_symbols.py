"""Seeded pictures of symbols: a held-out kind of "not a digit" for out-of-distribution tests.

Outlier exposure (:mod:`mnistcnn.data.outlier_pool`) trains on Fashion-MNIST,
drawings, letters and noise; to see whether "not a digit" carries over to
kinds a model never saw, ``mnistcnn evaluate --ood symbols`` scores pictures of
:data:`SYMBOLS` (typographic and other symbols that no digit resembles and that
none of the training kinds contains), made like
:func:`mnistcnn.data.outliers.letters`: one symbol, dark on light, a random
DejaVu font (bundled with matplotlib), size and place, from a
``numpy.random.Generator`` seeded with ``(seed, index)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Symbols that no digit resembles and no training outlier kind contains.
SYMBOLS = "#@%+=*€ΩΣπ♦♣♠✓☀♪"
_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")


def symbols(n: int, seed: int = 0) -> list[Image.Image]:
    """``n`` RGB pictures of one symbol each (from :data:`SYMBOLS`, in turn).

    Raises:
        ValueError: ``n`` < 0.
    """
    import matplotlib

    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i, 0x5F])
        size = int(rng.integers(96, 257))
        img = Image.new("L", (size, size), int(rng.integers(215, 256)))
        font = ImageFont.truetype(str(fonts / _FONTS[int(rng.integers(len(_FONTS)))]),
                                  int(size * rng.uniform(0.45, 0.75)))  # fmt: skip
        char = SYMBOLS[i % len(SYMBOLS)]
        left, top, right, bottom = font.getbbox(char)
        x = rng.uniform(0, max(1, size - (right - left))) - left
        y = rng.uniform(0, max(1, size - (bottom - top))) - top
        ImageDraw.Draw(img).text((x, y), char, fill=int(rng.integers(0, 70)), font=font)
        out.append(img.convert("RGB"))
    return out
