"""Pictures in and out of the worked convolution: an image read as the input matrix,
and the input, kernel and feature map drawn side by side."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from mnistcnn.explain.conv_arithmetic import ConvWorked, format_number
from mnistcnn.explain.conv_inputs import MAX_INPUT_SIDE, ConvInputError, Matrix

logger = logging.getLogger(__name__)


def load_image_matrix(
    path: str | Path,
    size: int | None = None,
    unit_range: bool = False,
    preprocess: bool = True,
    invert: str = "auto",
) -> Matrix:
    """Read a picture as a grayscale matrix of pixel values, as ``mnistcnn predict`` reads it.

    Decoding is :func:`mnistcnn._io.decode_picture` (the formats of
    :data:`mnistcnn._io.IMAGE_FORMATS`, EXIF orientation, refused bombs and degenerate sizes). With
    ``preprocess`` (the default) the picture becomes the 28x28 image the model
    sees, by MNIST's :class:`mnistcnn.prepare.Preparation`: transparency, polarity
    (light ink on black, as MNIST), contrast, fitted into 20x20 and centred.
    Without it the picture keeps its size and is only made grayscale by
    :func:`mnistcnn.prepare.to_grayscale` (transparency composited
    onto white, or black behind light ink; ITU-R 601 luma). ``size`` then
    resizes to ``size x size`` with bilinear filtering.

    Args:
        path: the picture file.
        size: 1..:data:`~mnistcnn.explain.conv_inputs.MAX_INPUT_SIDE`, or None.
        unit_range: divide by 255 (as ``torchvision.transforms.ToTensor`` does).
        preprocess: MNIST-style preparation (above); False: the pixels as they are.
        invert: polarity with ``preprocess``: ``auto``, ``yes`` (dark ink), ``no``.

    Returns:
        H x W ints in [0, 255] (255 = ink with ``preprocess``), or floats in
        [0, 1] when ``unit_range``.

    Raises:
        ConvInputError: missing or unreadable file, not an image, a blank
            picture (no ink, with ``preprocess``), or a picture larger than
            MAX_INPUT_SIDE without ``size`` (``"image"``); ``size`` out of
            range (``"size"``).
    """
    import numpy as np
    from PIL import Image

    from mnistcnn._io import ImageInputError, decode_picture
    from mnistcnn.prepare import Preparation, to_grayscale

    if size is not None and not 1 <= size <= MAX_INPUT_SIDE:
        raise ConvInputError("size", f"size must be in 1..{MAX_INPUT_SIDE}, got {size}")
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConvInputError("image", f"image file not found: {path}") from None
    except OSError as exc:
        raise ConvInputError("image", f"cannot read image {path}: {exc.strerror or exc}") from None
    try:
        with decode_picture(data) as img:
            if preprocess:
                result = Preparation(invert=invert).apply(img)  # type: ignore[arg-type]
                pixels, how = result.image, "MNIST-style 28x28"
                if not result.ink_found:
                    raise ConvInputError(
                        "image",
                        f"{path}: no ink found (a blank picture): every pixel would be 0 "
                        "(preprocess=False, --no-preprocess, convolves the picture as it is)",
                    )
            else:
                pixels = np.round(to_grayscale(img) * 255).astype(np.uint8)  # (H, W)
                how = "grayscale"
    except ImageInputError as exc:
        raise ConvInputError("image", f"cannot read image {path}: {exc}") from None
    height, width = pixels.shape
    if size is not None:
        gray = Image.fromarray(pixels, "L").resize((size, size), Image.Resampling.BILINEAR)
        pixels = np.asarray(gray)
    elif max(height, width) > MAX_INPUT_SIDE:
        raise ConvInputError(
            "image",
            f"{path} is {width}x{height} px; the worked convolution takes at most "
            f"{MAX_INPUT_SIDE}x{MAX_INPUT_SIDE}: resize it with size 1..{MAX_INPUT_SIDE} (--size)",
        )
    matrix: Matrix = pixels.astype(int).tolist()
    if unit_range:
        matrix = [[v / 255 for v in row] for row in matrix]
    logger.info("loaded %s as a %dx%d %s matrix", path, len(matrix), len(matrix[0]), how)
    return matrix


def convolution_figure(
    worked: ConvWorked, annotate_max: int = 12, kernel_name: str | None = None
) -> Figure:
    """Input (zero-padded if p > 0), kernel and feature map side by side.

    Matrices with at most ``annotate_max`` rows and columns get their cell values
    written on the cells, in a font size that fits the cell and the widest value
    (none, and a colour bar instead, when that would be under 4.5 pt). Input and
    feature map use a gray colormap (black = low), the kernel a diverging one
    centred on 0. ``kernel_name`` (e.g. ``"edge"``) is
    added to the kernel's title.

    Returns:
        A matplotlib Figure (not shown, not saved; the caller saves it).
    """
    fig = Figure(figsize=(13, 4.8), layout="constrained")
    axes = fig.subplots(1, 3)
    shown = worked.padded if worked.padding else worked.input
    h, w = len(worked.input), len(worked.input[0])
    title = f"Input A ({h}x{w})"
    if worked.padding:
        title += f", zero-padded by {worked.padding}"
    _draw_matrix(axes[0], shown, title, "gray", annotate_max)
    if worked.padding:
        _outline(axes[0], worked.padding, h, w)
    kh, kw = len(worked.kernel), len(worked.kernel[0])
    kernel_title = f"Kernel F ({kh}x{kw})" + (f": {kernel_name}" if kernel_name else "")
    _draw_matrix(axes[1], worked.kernel, kernel_title, "RdBu_r", annotate_max)
    oh, ow = worked.rows.size, worked.cols.size
    out_title = f"Feature map ({oh}x{ow}), stride {worked.stride}, padding {worked.padding}"
    _draw_matrix(axes[2], worked.output, out_title, "gray", annotate_max)
    fig.suptitle("Cross-correlation (no kernel flip): each output = sum of input x kernel")
    return fig


def _draw_matrix(ax: Any, matrix: Matrix, title: str, cmap: str, annotate_max: int) -> None:
    values = [v for row in matrix for v in row]
    lo, hi = min(values), max(values)
    if cmap == "RdBu_r":
        bound = max(abs(lo), abs(hi)) or 1
        lo, hi = -bound, bound
    elif lo == hi:
        lo, hi = lo - 1, hi + 1
    image = ax.imshow(matrix, cmap=cmap, vmin=lo, vmax=hi)
    ax.set_title(title, fontsize=11)
    rows, cols = len(matrix), len(matrix[0])
    texts = [[format_number(v) for v in row] for row in matrix]
    fontsize = _annotation_size(rows, cols, max(_ems(t) for row in texts for t in row))
    if rows <= annotate_max and cols <= annotate_max and fontsize >= _MIN_ANNOTATION_PT:
        ax.set_xticks(range(cols), [str(c + 1) for c in range(cols)])
        ax.set_yticks(range(rows), [str(r + 1) for r in range(rows)])
        for r, row in enumerate(matrix):
            for c, v in enumerate(row):
                level = (v - lo) / (hi - lo)
                dark = level < 0.5 if cmap == "gray" else abs(level - 0.5) > 0.3
                color = "white" if dark else "black"
                text = texts[r][c]
                ax.text(c, r, text, ha="center", va="center", fontsize=fontsize, color=color)
    else:
        ax.figure.colorbar(image, ax=ax, shrink=0.8)
        ax.set_xticks([])
        ax.set_yticks([])


_PANEL_SIDE_PT = 72 * 3.6  # a panel's square drawing area in the 13x4.8 in figure, points
_MIN_ANNOTATION_PT = 4.5  # smaller values are unreadable: the cells are left unwritten


def _ems(text: str) -> float:
    """Width of a formatted number in DejaVu Sans, in ems (digits 0.64, "-" 0.34, "." 0.32)."""
    return sum(0.32 if ch == "." else 0.34 if ch == "-" else 0.64 for ch in text)


def _annotation_size(rows: int, cols: int, ems: float) -> float:
    """Font size (points) for cell values ``ems`` wide to fill at most 80% of a cell.

    Cells are square (``imshow``), ``_PANEL_SIDE_PT / max(rows, cols)`` points a
    side; at most 13 pt (9 pt past 6x6, as before). Under
    :data:`_MIN_ANNOTATION_PT` the caller writes no values.
    """
    cell = _PANEL_SIDE_PT / max(rows, cols)
    fits = 0.8 * cell / max(ems, 0.64)
    return min(13.0 if max(rows, cols) <= 6 else 9.0, fits)


def _outline(ax: Any, padding: int, h: int, w: int) -> None:
    from matplotlib.patches import Rectangle

    ax.add_patch(
        Rectangle((padding - 0.5, padding - 0.5), w, h, fill=False, edgecolor="tab:orange", lw=2)
    )
