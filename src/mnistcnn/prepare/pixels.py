"""A picture's pixels: any Pillow image or NumPy array -> grey values in [0, 1].

* :func:`to_grayscale`: any decoded Pillow image (EXIF orientation, every
  mode, transparency) -> float32 (H, W) in [0, 1], 0 black;
* :func:`array_range`, :func:`to_unit`, :func:`array_to_image`: pictures given
  as arrays, read by the documented range rule (uint8 0..255, uint16
  0..65535, float 0..1 or 0..255, ...);
* :func:`dataset_format`: an image already in the datasets' own format
  (28x28, light ink on black), which goes to the model unchanged;
* :func:`preview_copy`: a small displayable copy of a picture (``--show-input``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from mnistcnn._io import upright

#: Longest side of the copy of a picture kept for display (:func:`preview_copy`).
PREVIEW_SIZE = 256

#: The mean of a dataset-format image's outer frame of pixels stays under this
#: (0..255): the datasets store light ink on a black background.
DARK_FRAME_MEAN = 32.0

#: Values this far outside an array's range (as a fraction of its top) are
#: rounding (a resize's overshoot) and are clipped; further out, refused.
RANGE_SLACK = 0.01


def array_range(a: np.ndarray) -> float:
    """The top of the value range of picture array ``a`` (its white), by the documented rule.

    * bool: True is white (1).
    * uint8: 0..255. uint16: 0..65535 (16-bit pictures).
    * other integer types (int8..int64, uint32, uint64): 0..255 when no
      value is above 255, else 0..65535.
    * float: 0..1 when no value is above 1, else 0..255 (so ``img / 255``
      and ``img.astype(float)`` both work).

    Raises:
        ValueError: NaN or infinite values, negative values, or values above
            the largest range of the type (65535 for integers, 255 for
            floats); the message says what range was expected and what was found.
    """
    if a.dtype == bool:
        return 1.0
    if a.dtype == np.uint8:
        return 255.0
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(
            f"an image array must hold numbers (uint8, uint16, other integers, float or "
            f"bool), got dtype {a.dtype}"
        )
    if a.size == 0:
        raise ValueError(f"an empty image array (shape {a.shape})")
    is_float = np.issubdtype(a.dtype, np.floating)
    if is_float and not np.isfinite(a).all():
        raise ValueError("the image array holds NaN or infinite values; give finite numbers")
    lo, hi = float(a.min()), float(a.max())
    if a.dtype == np.uint16:
        top = 65535.0
    elif is_float:
        top = 1.0 if hi <= 1.0 else 255.0
    else:
        top = 255.0 if hi <= 255 else 65535.0
    slack = RANGE_SLACK * top if is_float else 0.0
    if lo < -slack or hi > top + slack:
        expected = (
            "0..1 or 0..255 (floats: 0..1 when no value is above 1, else 0..255)"
            if is_float
            else "0..255 or 0..65535"
        )
        raise ValueError(
            f"{a.dtype} image values span {lo:g}..{hi:g}; expected {expected}: "
            "rescale the array into one of these ranges"
        )
    return top


def to_unit(a: np.ndarray) -> np.ndarray:
    """Picture array ``a`` as float32 in [0, 1], scaled by :func:`array_range` (0 is black)."""
    top = array_range(a)
    return np.clip(np.asarray(a, np.float64) / top, 0.0, 1.0).astype(np.float32)


def dataset_format(array: np.ndarray, dark_edges: str = "frame") -> np.ndarray | None:
    """``array`` as uint8 (28, 28) if it is already an image in the datasets' own format.

    That is: 28x28 (or 1x28x28), of any numeric type read by the rule of
    :func:`array_range` (uint8 0..255, float 0..1 or 0..255, ...), light ink
    on a dark background, as torchvision's MNIST-style datasets give images.
    The background is dark when the mean of the outer one-pixel frame
    (``dark_edges="frame"``: digits and characters, which sit inside a margin)
    or of its darkest side (``"side"``: Fashion-MNIST, whose garments are
    scaled to touch two opposite edges: 2.7 % of its test images have a
    frame mean above the limit, none a darkest side) is under
    :data:`DARK_FRAME_MEAN`, and something is brighter than it. Such an
    image is given to the model unchanged, so predicting a dataset's own test
    images agrees with evaluating on them. Anything else
    (other sizes, dark ink on paper, RGB, values out of range) returns None
    and is prepared as a picture.
    """
    a = np.asarray(array)
    if a.shape == (1, 28, 28):
        a = a[0]
    if a.shape != (28, 28):
        return None
    if a.dtype == np.uint8:
        img = a
    else:
        try:
            img = np.round(to_unit(a) * 255.0).astype(np.uint8)
        except ValueError:
            return None
    if dark_edges == "side":
        level = float(min(img[0].mean(), img[-1].mean(), img[:, 0].mean(), img[:, -1].mean()))
    else:
        level = float(np.concatenate([img[0], img[-1], img[1:-1, 0], img[1:-1, -1]]).mean())
    if level >= DARK_FRAME_MEAN or img.max() <= level:
        return None
    return np.ascontiguousarray(img)


def array_to_image(array: np.ndarray) -> Image.Image:
    """A picture given as an array -> a Pillow image.

    Args:
        array: (H, W) grayscale (also (H, W, 1) and (1, H, W)), (H, W, 3) RGB
            or (H, W, 4) RGBA, of any type :func:`array_range` reads: uint8
            (0..255), uint16 (0..65535), other integers (0..255, or 0..65535
            when a value is above 255), bool (True is white) or float (0..1,
            or 0..255 when a value is above 1).

    Returns:
        Grayscale: an ``F`` image with values in 0..1 (16-bit precision kept);
        colour: an 8-bit ``RGB`` or ``RGBA`` image.

    Raises:
        ValueError: another shape or type, or values outside the ranges above
            (the message says which range was expected and what was found).
    """
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    elif a.ndim == 3 and a.shape[0] == 1 and a.shape[2] not in (3, 4):
        a = a[0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise ValueError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    unit = to_unit(a)
    if unit.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(unit), "F")
    return Image.fromarray(np.ascontiguousarray(np.round(unit * 255).astype(np.uint8)))


def _flatten_alpha(img: Image.Image) -> Image.Image:
    """RGB(A)/LA/PA image -> RGB composited onto white (black if the visible ink is light)."""
    rgba = img.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), np.float32) / 255
    luma = np.asarray(rgba.convert("L"), np.float32) / 255
    visible = float(alpha.sum())
    light_ink = visible > 0 and float((luma * alpha).sum()) / visible > 0.5 and alpha.min() < 0.5
    backdrop = Image.new("RGBA", rgba.size, (0, 0, 0, 255) if light_ink else (255,) * 4)
    return Image.alpha_composite(backdrop, rgba).convert("RGB")


def to_grayscale(img: Image.Image) -> np.ndarray:
    """Upright grayscale copy of any Pillow image: float32 (H, W) in [0, 1], 0 black.

    Handles EXIF orientation, transparency (alpha or palette transparency),
    1-bit, palette, 16-bit (``I;16``, ``I``), float (``F``), CMYK, YCbCr, LAB
    and HSV images; animated images give their current (first) frame.
    Colour is reduced to ITU-R 601 luma (Pillow's ``L``). Transparency is
    composited onto white, or onto black for light ink on a transparent
    canvas (so the drawing stays visible).
    """
    img = upright(img)
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img, np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if mode == "F" and arr.max(initial=0) <= 1.0:
            top = 1.0
        return np.clip(arr / top, 0, 1).astype(np.float32)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or img.mode == "RGBA":
        img = _flatten_alpha(img)
    elif img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    return np.asarray(img.convert("L"), np.float32) / 255


def preview_copy(img: Image.Image, size: int = PREVIEW_SIZE) -> Image.Image:
    """A copy of ``img`` for display: RGB, RGBA or L, upright, longest side <= ``size`` px.

    Every mode Pillow decodes becomes one of the three modes a plot shows
    (matplotlib draws (H, W), (H, W, 3) and (H, W, 4) arrays, never two
    channels): grayscale with alpha (``LA``, ``La``, ``PA``) and palette
    transparency become RGBA; 1-bit, 16-bit, 32-bit and float pictures become L
    with the same scaling :func:`to_grayscale` uses; CMYK, YCbCr, LAB and HSV
    become RGB.
    """
    img = upright(img)
    mode = img.mode
    if mode in ("LA", "La", "PA", "RGBa") or (mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
    elif mode == "P":
        img = img.convert("RGB")
    elif mode not in ("RGB", "RGBA", "L"):
        if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            img = img.convert("RGB")
        else:
            img = Image.fromarray(np.round(to_grayscale(img) * 255).astype(np.uint8), "L")
    img = img.copy()
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    return img
