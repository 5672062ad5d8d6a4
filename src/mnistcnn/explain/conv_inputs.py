"""The inputs of the worked convolution: matrices parsed from text (:func:`parse_matrix`),
the tutorial's example, named 3x3 filters (:data:`FILTERS`), the size limits, and
:class:`ConvInputError` naming the argument that is wrong."""

from __future__ import annotations

import math
import re

from mnistcnn.errors import MnistcnnError

Number = int | float
Matrix = list[list[Number]]

TUTORIAL_INPUT: Matrix = [[5 * r + c + 1 for c in range(5)] for r in range(5)]
"""The tutorial's 5x5 input A: the values 1..25, row by row."""

TUTORIAL_KERNEL: Matrix = [[1, 2], [3, 4]]
"""The tutorial's 2x2 filter F."""

# Standard 3x3 image-processing kernels (Wikipedia, "Kernel (image processing)";
# Sobel & Feldman 1968). Written as they are applied, i.e. without a flip.
FILTERS: dict[str, tuple[Matrix, str]] = {
    "identity": ([[0, 0, 0], [0, 1, 0], [0, 0, 0]], "copies the input"),
    "edge": ([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], "Laplacian-style edge detector"),
    "blur": ([[1 / 9] * 3 for _ in range(3)], "3x3 box blur (mean of the window)"),
    "gaussian": (
        [[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16], [1 / 16, 2 / 16, 1 / 16]],
        "3x3 Gaussian blur (binomial weights / 16)",
    ),
    "sharpen": ([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], "sharpen (identity + negated Laplacian)"),
    "sobel-x": (
        [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
        "Sobel x: positive where brightness increases left to right",
    ),
    "sobel-y": (
        [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
        "Sobel y: positive where brightness increases top to bottom",
    ),
    "emboss": ([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], "emboss (relief lit from bottom right)"),
}


#: Largest input side (rows or columns): an MNIST image (28) fits twice over; the
#: output's every element can still be written term by term (``--json``).
MAX_INPUT_SIDE = 64
#: Largest kernel side: CNN kernels are 1..11 (AlexNet's first layer); 15 leaves room.
MAX_KERNEL_SIDE = 15
#: Largest zero padding per side: the "same" padding of the largest kernel,
#: ``(15 - 1) / 2``; more padding only adds rows and columns of zeros to the output.
MAX_PADDING = (MAX_KERNEL_SIDE - 1) // 2


class ConvInputError(MnistcnnError, ValueError):
    """A bad argument to the worked convolution.

    Attributes:
        argument: which argument is wrong: ``"input"``, ``"kernel"``, ``"stride"``,
            ``"padding"``, ``"image"``, ``"size"`` or ``"filter"``.
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument


def check_matrix(matrix: Matrix, argument: str) -> None:
    if not matrix or not matrix[0]:
        raise ConvInputError(argument, f"{argument} is empty")
    limit = MAX_KERNEL_SIDE if argument == "kernel" else MAX_INPUT_SIDE
    rows, cols = len(matrix), max(len(row) for row in matrix)
    if max(rows, cols) > limit:
        raise ConvInputError(
            argument,
            f"{argument} is {rows}x{cols}; the worked convolution takes at most "
            f"{limit}x{limit} (rows and columns 1..{limit})",
        )
    for i, row in enumerate(matrix, start=1):
        if len(row) != len(matrix[0]):
            raise ConvInputError(
                argument,
                f"{argument} row {i} has {len(row)} values but row 1 has {len(matrix[0])} "
                "(all rows need the same length)",
            )
        for value in row:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConvInputError(argument, f"{argument} value {value!r} is not a number")
            if not math.isfinite(value):
                raise ConvInputError(argument, f"{argument} value {value!r} is not finite")


def parse_matrix(text: str, argument: str = "matrix") -> Matrix:
    """Parse ``"1 2 3; 4 5 6"`` (rows split by ``;`` or newlines, values by spaces/commas).

    Integers stay ``int``, anything else finite that ``float()`` accepts is a float.

    Raises:
        ConvInputError: empty text or row, a non-number, rows of unequal length
            (the message says which row), or more rows or columns than
            :data:`MAX_INPUT_SIDE` (:data:`MAX_KERNEL_SIDE` for ``"kernel"``);
            ``.argument`` is ``argument``.
    """
    if not text.strip():
        raise ConvInputError(argument, f"{argument} is empty")
    lines = [line.strip() for line in re.split(r"[;\n]", text.strip().rstrip(";"))]
    matrix: Matrix = []
    for i, line in enumerate(lines, start=1):
        tokens = [t for t in re.split(r"[\s,]+", line) if t]
        if not tokens:
            raise ConvInputError(argument, f"{argument} row {i} is empty")
        matrix.append([_parse_number(t, argument, i) for t in tokens])
    check_matrix(matrix, argument)
    return matrix


def _parse_number(token: str, argument: str, row: int) -> Number:
    try:
        return int(token)
    except ValueError:
        pass
    try:
        value = float(token)
    except ValueError:
        raise ConvInputError(argument, f"{argument} row {row}: {token!r} is not a number") from None
    if not math.isfinite(value):
        raise ConvInputError(argument, f"{argument} row {row}: {token!r} is not finite")
    return value


def list_filters() -> list[str]:
    """Names of the built-in kernels (:data:`FILTERS`)."""
    return list(FILTERS)


def named_filter(name: str) -> Matrix:
    """A copy of built-in kernel ``name`` (3x3).

    Raises:
        ConvInputError: unknown name (``.argument == "filter"``); lists the valid names.
    """
    if name not in FILTERS:
        raise ConvInputError("filter", f"unknown filter {name!r}; valid: {', '.join(FILTERS)}")
    return [list(row) for row in FILTERS[name][0]]
