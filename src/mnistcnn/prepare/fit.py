"""The crop -> 28x28 step: a character's ink (or a product) fitted and centred in the canvas.

MNIST (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to
document recognition", section III-A; and http://yann.lecun.com/exdb/mnist/):
the NIST digits were "size normalized to fit in a 20x20 pixel box while
preserving their aspect ratio", anti-aliased, then "centered in a 28x28 image
by computing the center of mass of the pixels, and translating the image so as
to position this point at the center of the 28x28 field".
:func:`fit_and_center` does the same to a cropped ink map:

1. Stroke width (:mod:`mnistcnn.prepare.stroke`): the crop is scaled so its
   longer side is ``box * upsample`` px, and eroded or dilated until its
   stroke width is ``stroke`` (2-3 px at 20 px, MNIST's range) times ``upsample``.
2. Resize so that the longer side is 20 px, keeping the aspect ratio (area
   averaging when shrinking, which is exact anti-aliasing; bicubic when growing).
3. Paste into 28x28 so that the intensity-weighted centre of mass lands on
   pixel (14, 14) (row, column; pixel ``i`` has coordinate ``i``). That is
   where MNIST's centres of mass are: on the first 10,000 training images the
   mean is (14.00, 14.00) with standard deviation 0.29 = 1/sqrt(12), i.e. an
   integer shift, as done here; the remaining error is at most 0.5 px per axis.

EMNIST (Cohen, Afshar, Tapson, van Schaik 2017, arXiv:1702.05373, Fig. 1):
:func:`emnist_fit` scales the ink so its region of interest spans a NIST-sized
frame (``roi_size`` = 128 px, less the border), blurs it with a Gaussian of
sigma 1 px, centres it in a square with a 2-px border, down-samples to 28x28
bicubically and scales the intensities to 0..1.

Fashion-MNIST (Xiao, Rasul, Vollgraf 2017, arXiv:1708.07747, section 2):
:func:`fashion_fit` resizes the product's longest edge to 28 by subsampling,
sharpens (Pillow's ``UnsharpMask``, radius 1, 100 %) and centres it; the
sharpening follows a resize only: a product already 28 px on its long side is
not resampled and not sharpened. (Its crop: :func:`mnistcnn.prepare.locate.trim_product`.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from mnistcnn.prepare.settings import PreparationSettings
from mnistcnn.prepare.stroke import normalize_stroke

#: A box in pixels: (left, top, right, bottom), right and bottom exclusive.
Box = tuple[int, int, int, int]


def bbox(mask: np.ndarray) -> Box | None:
    """(left, top, right, bottom), right/bottom exclusive, of the True pixels of bool (H, W).

    None when no pixel is True.
    """
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def center_of_mass(image: np.ndarray) -> tuple[float, float] | None:
    """Intensity-weighted (row, col) centre of (H, W); pixel ``i`` at coordinate ``i``.

    In float64, as ``scipy.ndimage.center_of_mass`` (the same values on 2,000
    random patches), written out so that a picture already in the dataset's
    format is judged without importing SciPy. None when there is no positive mass.
    """
    w = image.astype(np.float64)
    total = w.sum()
    if total <= 0:
        return None
    rows, cols = np.arange(w.shape[0]), np.arange(w.shape[1])
    return float((w.sum(1) * rows).sum() / total), float((w.sum(0) * cols).sum() / total)


def resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize float32 (H, W) in [0, 1] to (width, height) = ``size``; result clipped to [0, 1].

    Area average (Pillow's BOX) when no side grows, else bicubic.
    """
    h, w = arr.shape
    shrink = size[0] <= w and size[1] <= h
    method = Image.Resampling.BOX if shrink else Image.Resampling.BICUBIC
    out = Image.fromarray(np.ascontiguousarray(arr, np.float32), "F").resize(size, method)
    return np.clip(np.asarray(out, np.float32), 0, 1)


def fit_and_center(crop: np.ndarray, s: PreparationSettings) -> np.ndarray:
    """Fit ink float32 (h, w) in [0, 1] into ``box``x``box`` (aspect kept) and centre it.

    Args:
        crop: the character's ink, background 0 (:func:`~mnistcnn.prepare.locate.locate_ink`).
        s: the geometry: ``box``, ``field``, ``stroke``, ``upsample``,
            ``centring`` and ``center`` (see the module docstring).

    Returns:
        float32 (field, field) in [0, 1]; the centre of mass is moved to
        ``s.center`` by an integer shift, limited so that no ink leaves the
        field (``centring="box"``: the box is centred instead). All zeros
        when ``crop`` holds no ink.
    """
    if s.stroke is not None:
        h, w = crop.shape
        f = s.box * s.upsample / max(h, w)
        big = resize(crop, (max(1, round(w * f)), max(1, round(h * f))))
        big = normalize_stroke(big, s.stroke[0] * s.upsample, s.stroke[1] * s.upsample)
        box = bbox(big > 0)
        if box is not None:
            crop = big[box[1] : box[3], box[0] : box[2]]
    h, w = crop.shape
    f = s.box / max(h, w)
    patch = resize(crop, (max(1, round(w * f)), max(1, round(h * f))))
    com = center_of_mass(patch)
    ph, pw = patch.shape
    if com is None:
        return np.zeros((s.field, s.field), np.float32)
    if s.centring == "box":  # the box in the middle (KMNIST)
        top, left = (s.field - ph) // 2, (s.field - pw) // 2
    else:
        top = int(np.clip(round(s.center[0] - com[0]), 0, s.field - ph))
        left = int(np.clip(round(s.center[1] - com[1]), 0, s.field - pw))
    out = np.zeros((s.field, s.field), np.float32)
    out[top : top + ph, left : left + pw] = patch
    return out


def emnist_fit(crop: np.ndarray, record: Mapping[str, Any]) -> np.ndarray:
    """EMNIST's geometry for ink float32 (h, w) in [0, 1]: float32 (canvas, canvas) in [0, 1].

    Settings from ``record``: ``roi_size`` (128, NIST's frame), ``border``
    (2 px in that frame), ``blur_sigma`` (1.0 px in that frame), ``canvas`` (28).
    """
    from scipy import ndimage

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


def fashion_fit(crop: np.ndarray, record: Mapping[str, Any]) -> np.ndarray:
    """Fashion-MNIST's geometry for a product float32 (h, w) in [0, 1]: uint8 (canvas, canvas).

    Settings from ``record``: ``canvas`` (28), ``box`` (28: the long side),
    ``sharpen_sigma`` (1.0: the unsharp mask's radius). Background 0.
    """
    canvas, box = int(record.get("canvas", 28)), int(record.get("box", 28))
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
    return out
