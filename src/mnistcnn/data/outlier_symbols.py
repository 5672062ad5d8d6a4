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

import numpy as np
from PIL import Image

from mnistcnn.data.outliers import glyphs

#: Symbols that no digit resembles and no training outlier kind contains.
SYMBOLS = "#@%+=*€ΩΣπ♦♣♠✓☀♪"
_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")


def symbols(n: int, seed: int = 0) -> list[Image.Image]:
    """``n`` RGB pictures of one symbol each (from :data:`SYMBOLS`, in turn).

    Raises:
        ValueError: ``n`` < 0.
    """
    return glyphs(SYMBOLS, _FONTS, n, lambda i: np.random.default_rng([seed, i, 0x5F]))
