"""The tutorial's worked convolution ``A * F``, computed term by term.

Deep-learning "convolution" (``torch.nn.Conv2d``, ``torch.nn.functional.conv2d``)
is cross-correlation: the kernel is laid over the input as it is, *not* flipped,
and each output element is the sum of ``input value * kernel value`` over the
window under the kernel. The output size per direction is
``floor((n - k + 2p) / s) + 1`` (input size n, kernel size k, zero padding p,
stride s; PyTorch ``Conv2d`` documentation, "Shape" section).

Everything here is plain Python on small lists of numbers, so the sums are exact
for integer inputs; the tests check every result against ``F.conv2d``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mnistcnn.explain.conv_inputs import (
    MAX_PADDING,
    ConvInputError,
    Matrix,
    Number,
    check_matrix,
)

logger = logging.getLogger(__name__)

CROSS_CORRELATION_NOTE = (
    'Deep-learning "convolution" is cross-correlation: the kernel is not flipped. '
    "Each output element is the sum of input value * kernel value over the window "
    "under the kernel (as in torch.nn.functional.conv2d)."
)


def format_number(value: Number) -> str:
    """``51`` for ints and integral floats, else up to 6 significant digits."""
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}"


@dataclass(frozen=True)
class AxisArithmetic:
    """Output size along one direction: ``floor((n - d*(k-1) - 1 + 2p) / s) + 1``.

    With dilation ``d = 1`` this is the familiar ``floor((n - k + 2p) / s) + 1``
    (PyTorch ``Conv2d``/``MaxPool2d``/``AvgPool2d`` documentation, "Shape").
    ``ceil_mode`` (pools only) uses ``ceil`` and drops a last window that would
    start in the right padding (PyTorch ``pooling_output_shape``).

    Attributes:
        n: input size (>= 1); k: kernel size (>= 1); p: zero padding per side (>= 0);
        s: stride (>= 1); d: dilation (>= 1); ceil_mode: round up instead of down.
    """

    n: int
    k: int
    p: int = 0
    s: int = 1
    d: int = 1
    ceil_mode: bool = False

    @property
    def numerator(self) -> int:
        """``n - d*(k-1) - 1 + 2p`` (``n - k + 2p`` for d = 1); < 0 means no output."""
        return self.n - self.d * (self.k - 1) - 1 + 2 * self.p

    @property
    def remainder(self) -> int:
        """``numerator mod s``: padded-input rows/columns after the last window."""
        return self.numerator % self.s

    @property
    def size(self) -> int:
        """Number of kernel positions (output size) in this direction."""
        if not self.ceil_mode:
            return self.numerator // self.s + 1
        out = -(-self.numerator // self.s) + 1
        if (out - 1) * self.s >= self.n + self.p:
            out -= 1
        return out

    def formula(self, show_zero_padding: bool = True) -> str:
        """The arithmetic written out, e.g. ``(28 - 5 + 2*2)/1 + 1 = 28``."""
        kernel = str(self.k) if self.d == 1 else f"{self.d}*({self.k} - 1) - 1"
        inner = f"{self.n} - {kernel}"
        if self.p or show_zero_padding:
            inner += f" + 2*{self.p}"
        if self.remainder == 0:
            return f"({inner})/{self.s} + 1 = {self.size}"
        rounding = "ceil" if self.ceil_mode else "floor"
        return (
            f"{rounding}(({inner})/{self.s}) + 1 = {rounding}({self.numerator}/{self.s}) + 1"
            f" = {self.size - 1} + 1 = {self.size}"
        )

    def remainder_note(self, unit: str) -> str | None:
        """Why a remainder is dropped (None if ``s`` divides the numerator)."""
        if self.remainder == 0 or self.ceil_mode:
            return None
        noun, verb = (unit, "fall") if self.remainder > 1 else (unit.rstrip("s"), "falls")
        return (
            f"{self.numerator} is not divisible by the stride {self.s}: the remainder "
            f"{self.remainder} is dropped; the last {self.remainder} {noun} of the "
            f"padded input never {verb} under the kernel"
        )


@dataclass(frozen=True)
class WorkedElement:
    """One output element and the products that make it.

    Attributes:
        row, col: 1-based position in the output (the tutorial's ``a11``).
        terms: ``(input value, kernel value)`` pairs, kernel read row by row.
        total: the sum of ``input value * kernel value`` over ``terms``.
    """

    row: int
    col: int
    terms: tuple[tuple[Number, Number], ...]
    total: Number

    @property
    def name(self) -> str:
        """``a11`` (row 1, column 1); ``a10,11`` once an index has two digits."""
        if self.row < 10 and self.col < 10:
            return f"a{self.row}{self.col}"
        return f"a{self.row},{self.col}"

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "row", "col", "products": [[x, w], ...], "sum", "equation"}``."""
        products = [list(t) for t in self.terms]
        return {
            "name": self.name,
            "row": self.row,
            "col": self.col,
            "products": products,
            "sum": self.total,
            "equation": self.equation(),
        }

    def equation(self) -> str:
        """e.g. ``a11 = (1*1) + (2*2) + (6*3) + (7*4) = 51``."""
        products = " + ".join(f"({format_number(x)}*{format_number(w)})" for x, w in self.terms)
        return f"{self.name} = {products} = {format_number(self.total)}"


@dataclass(frozen=True)
class ConvWorked:
    """A worked 2-D cross-correlation of one input with one kernel.

    Attributes:
        input: the input matrix, H x W (H, W >= 1).
        kernel: the kernel matrix, kh x kw.
        stride: step between kernel positions (>= 1), same in both directions.
        padding: zeros added on every side (>= 0).
        padded: the input with ``padding`` zeros on each side, (H + 2p) x (W + 2p).
        output: the activation (feature) map, ``rows.size x cols.size``.
        rows, cols: the output-size arithmetic per direction.
    """

    input: Matrix
    kernel: Matrix
    stride: int
    padding: int
    padded: Matrix
    output: Matrix
    rows: AxisArithmetic
    cols: AxisArithmetic

    def element(self, row: int, col: int) -> WorkedElement:
        """The output element at 1-based ``(row, col)`` with its products."""
        return _element(self.padded, self.kernel, self.stride, row, col)

    def elements(self) -> Iterator[WorkedElement]:
        """All output elements, row by row."""
        for row in range(1, self.rows.size + 1):
            for col in range(1, self.cols.size + 1):
                yield self.element(row, col)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: matrices, sizes with arithmetic, every term."""
        return {
            "note": CROSS_CORRELATION_NOTE,
            "input": self.input,
            "kernel": self.kernel,
            "stride": self.stride,
            "padding": self.padding,
            "padded_input": self.padded,
            "output": self.output,
            "output_size": {
                direction: {
                    "size": axis.size,
                    "formula": axis.formula(),
                    "remainder_dropped": axis.remainder,
                }
                for direction, axis in (("rows", self.rows), ("columns", self.cols))
            },
            "terms": [element.to_dict() for element in self.elements()],
        }


def _element(padded: Matrix, kernel: Matrix, stride: int, row: int, col: int) -> WorkedElement:
    top, left = (row - 1) * stride, (col - 1) * stride
    terms = tuple(
        (padded[top + i][left + j], w)
        for i, kernel_row in enumerate(kernel)
        for j, w in enumerate(kernel_row)
    )
    total: Number = 0
    for x, w in terms:
        total += x * w
    return WorkedElement(row=row, col=col, terms=terms, total=total)


def pad_matrix(matrix: Matrix, padding: int) -> Matrix:
    """``matrix`` with ``padding`` zeros (int 0) added on every side."""
    width = len(matrix[0]) + 2 * padding
    zeros: list[Number] = [0] * width
    middle = [[0] * padding + list(row) + [0] * padding for row in matrix]
    return [list(zeros) for _ in range(padding)] + middle + [list(zeros) for _ in range(padding)]


def worked_convolution(
    input: Matrix, kernel: Matrix, stride: int = 1, padding: int = 0
) -> ConvWorked:
    """Cross-correlate ``input`` with ``kernel`` and keep every product.

    Same result as ``F.conv2d(x[None, None], w[None, None], stride=stride,
    padding=padding)[0, 0]`` (no kernel flip). Output size per direction:
    ``floor((n - k + 2p) / s) + 1``.

    Args:
        input: H x W numbers (int or float, finite), rows of equal length;
            H, W <= :data:`~mnistcnn.explain.conv_inputs.MAX_INPUT_SIDE`.
        kernel: kh x kw numbers, same rules; kh <= H + 2p and kw <= W + 2p;
            kh, kw <= :data:`~mnistcnn.explain.conv_inputs.MAX_KERNEL_SIDE`.
        stride: >= 1. padding: zeros per side, 0..:data:`~mnistcnn.explain.conv_inputs.MAX_PADDING`.

    Returns:
        The worked convolution; ints in give exact ints out.

    Raises:
        ConvInputError: ragged, empty or too large matrices, non-numbers,
            sums that overflow to infinity, stride < 1, padding outside
            0..MAX_PADDING, or a kernel larger than the padded input;
            ``.argument`` names the offending argument.
    """
    check_matrix(input, "input")
    check_matrix(kernel, "kernel")
    if stride < 1:
        raise ConvInputError("stride", f"stride must be >= 1, got {stride}")
    if not 0 <= padding <= MAX_PADDING:
        raise ConvInputError(
            "padding", f"padding must be in 0..{MAX_PADDING} (zeros per side), got {padding}"
        )
    rows = AxisArithmetic(n=len(input), k=len(kernel), p=padding, s=stride)
    cols = AxisArithmetic(n=len(input[0]), k=len(kernel[0]), p=padding, s=stride)
    for axis, unit in ((rows, "rows"), (cols, "columns")):
        if axis.numerator < 0:
            raise ConvInputError(
                "kernel",
                f"kernel has {axis.k} {unit} but the padded input only {axis.n + 2 * padding} "
                f"(input {axis.n} + 2*padding {padding})",
            )
    padded = pad_matrix(input, padding)
    output = [
        [_element(padded, kernel, stride, r, c).total for c in range(1, cols.size + 1)]
        for r in range(1, rows.size + 1)
    ]
    if any(not (isinstance(v, int) or math.isfinite(v)) for row in output for v in row):
        raise ConvInputError(
            "input",
            "the sums overflow (a result is beyond float's range, about 1.8e308): "
            "use smaller input or kernel values",
        )
    logger.debug("worked convolution: %dx%d output", rows.size, cols.size)
    return ConvWorked(input, kernel, stride, padding, padded, output, rows, cols)
