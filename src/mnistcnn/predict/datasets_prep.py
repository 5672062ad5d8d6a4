"""The preparations of Fashion-MNIST and EMNIST, as their papers describe them.

Fashion-MNIST (Xiao, Rasul, Vollgraf 2017, arXiv:1708.07747, section 2) made
each product photo (on a white background) into a 28x28 image by: trimming the
edges close to the corner pixels' colour (within 5 % of the maximum
intensity); resizing the longest edge to 28 by subsampling; sharpening with a
Gaussian operator of radius and standard deviation 1.0; extending the shortest
edge to 28 with the image in the centre; negating; 8-bit grayscale.
:func:`prepare_fashion` does these steps to a user's picture, with two
choices the paper leaves open:

* the background is the median of the four corner pixels; negation is taken
  relative to it, ``(background - pixel) / background`` clipped to [0, 1], which
  is the paper's ``255 - pixel`` on a white background and puts any other
  paper colour at exactly 0, as the dataset's background is; a picture whose
  corners are dark (light product on black, as the dataset's own images) is
  not negated: ``(pixel - background) / (1 - background)``;
* sharpening (Pillow's ``UnsharpMask``, radius 1, 100 %) follows a resize
  only: a product already 28 px on its long side is not resampled and not
  sharpened. (The dataset's own images are not prepared at all: they pass
  :func:`~mnistcnn.predict.arrays.dataset_format` and go to the model as
  they are. Prepared anyway, their faint fringe, within 5 % of the black
  corners, is trimmed and the rest enlarged: 95.7 % of the test images then
  get the same class from a two-epoch tutorial model.)

EMNIST (Cohen, Afshar, Tapson, van Schaik 2017, arXiv:1702.05373, Fig. 1):
:func:`emnist_fit` takes the character's ink (found as for MNIST, see
:func:`mnistcnn.predict.preprocess.locate_ink`), scales it so its region of
interest spans a NIST-sized frame (``roi_size`` = 128 px, less the border),
blurs it with a Gaussian of sigma 1 px, centres it in a square with a 2-px
border, down-samples to 28x28 bicubically and scales the intensities to 0..1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from mnistcnn.predict.ink import InvertMode
from mnistcnn.predict.preprocess import PreprocessResult, center_of_mass, to_grayscale


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def prepare_fashion(
    image: Image.Image, invert: InvertMode, record: Mapping[str, Any]
) -> PreprocessResult:
    """Fashion-MNIST's preparation of a product picture (see the module docstring).

    Args:
        image: any Pillow image (a product on a plain background).
        invert: ``auto`` negates when the corners are light; ``yes`` always,
            ``no`` never (the picture already has a dark background).
        record: the preparation record: ``canvas`` (28), ``box`` (28: the long
            side), ``trim_tolerance`` (0.05 of the full intensity range).

    Returns:
        :class:`~mnistcnn.predict.preprocess.PreprocessResult`: uint8 (28, 28),
        background 0; ``ink_found`` False when nothing differs from the corners.
    """
    canvas, box = int(record.get("canvas", 28)), int(record.get("box", 28))
    tol = float(record.get("trim_tolerance", 0.05))
    gray = to_grayscale(image)
    h, w = gray.shape
    bg = float(np.median(gray[[0, 0, -1, -1], [0, -1, 0, -1]]))
    negate = invert == "yes" or (invert == "auto" and bg > 0.5)
    if negate:
        product = np.clip((bg - gray) / max(bg, 1e-6), 0, 1)
    else:
        product = np.clip((gray - bg) / max(1.0 - bg, 1e-6), 0, 1)
    found = _bbox(np.abs(gray - bg) > tol)
    if found is None:
        return PreprocessResult(
            np.zeros((canvas, canvas), np.uint8), negate, False, None, None, (w, h)
        )
    left, top, right, bottom = found
    crop = product[top:bottom, left:right]
    ch, cw = crop.shape
    f = box / max(ch, cw)
    size = (max(1, round(cw * f)), max(1, round(ch * f)))
    pic = Image.fromarray(np.round(crop * 255).astype(np.uint8), "L")
    if size != (cw, ch):
        pic = pic.resize(size, Image.Resampling.NEAREST)  # "subsampling the pixels"
        sigma = float(record.get("sharpen_sigma", 1.0))
        pic = pic.filter(ImageFilter.UnsharpMask(radius=sigma, percent=100, threshold=0))
    patch = np.asarray(pic, np.uint8)
    out = np.zeros((canvas, canvas), np.uint8)
    ph, pw = patch.shape
    y, x = (canvas - ph) // 2, (canvas - pw) // 2
    out[y : y + ph, x : x + pw] = patch
    return PreprocessResult(out, negate, bool(out.any()), found, center_of_mass(out), (w, h))


def emnist_fit(crop: np.ndarray, record: Mapping[str, Any]) -> np.ndarray:
    """EMNIST's geometry for ink float32 (h, w) in [0, 1]: float32 (canvas, canvas) in [0, 1].

    Settings from ``record``: ``roi_size`` (128, NIST's frame), ``border``
    (2 px in that frame), ``blur_sigma`` (1.0 px in that frame), ``canvas`` (28).
    """
    roi, border = int(record.get("roi_size", 128)), int(record.get("border", 2))
    canvas = int(record.get("canvas", 28))
    sigma = float(record.get("blur_sigma", 1.0))
    h, w = crop.shape
    f = (roi - 2 * border) / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    big = Image.fromarray(np.ascontiguousarray(crop, np.float32), "F").resize(
        size, Image.Resampling.BICUBIC
    )
    side = max(size) + 2 * border
    square = np.zeros((side, side), np.float32)
    y, x = (side - size[1]) // 2, (side - size[0]) // 2
    square[y : y + size[1], x : x + size[0]] = np.asarray(big, np.float32)
    square = ndimage.gaussian_filter(square, sigma, mode="constant")
    blurred = Image.fromarray(square, "F")
    small = np.asarray(blurred.resize((canvas, canvas), Image.Resampling.BICUBIC), np.float32)
    small = np.clip(small, 0, None)
    top = float(small.max())
    return small / top if top > 0 else small
