"""Faster CPU computations of common layer pairs: the same function, other kernels.

On a small CPU the tutorial CNN spends more time in ``ReLU`` + ``AvgPool2d``
than its size suggests: PyTorch's CPU ``avg_pool2d`` and its backward are
generic kernels (about 1 ms forward and 1.5 ms backward for a (64, 10, 28, 28)
batch on one core here) that zero-fill and scatter. For the 2x2, stride-2
case the same function is a few contiguous operations:

* forward: ``relu``, then two strided adds (row pairs, then column pairs) and
  one multiplication by 0.25;
* backward: the pooled gradient is spread back to the 2x2 window by one small
  GEMM with a constant 0/0.25 matrix (an exact copy: every output element is
  a single product with 0.25, a power of two), then masked by ``relu``'s
  ``x > 0`` in one ``threshold_backward`` kernel.

Results equal ``avg_pool2d(relu(x), 2)`` and its gradient up to float rounding
(the four window elements are summed in another order). Measured figures are
in ``benchmarks/README.md``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def spread_matrix(width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The (width/2, 2*width) matrix mapping a pooled row to its two input rows.

    Row ``j`` holds 0.25 at columns ``2j``, ``2j+1`` (first input row) and
    ``width + 2j``, ``width + 2j + 1`` (second input row), zeros elsewhere: for
    a pooled row ``g`` (width/2 values), ``g @ M`` is the avg-pool gradient of
    the two input rows, laid out contiguously (2 * width values). ``M.T`` maps
    two input rows to their pooled row.

    Raises:
        ValueError: ``width`` is odd.
    """
    if width % 2:
        raise ValueError(f"2x2 pooling needs an even width, got {width}")
    m = torch.zeros(width // 2, 2 * width, dtype=dtype, device=device)
    j = torch.arange(width // 2, device=device)
    for offset in (0, 1, width, width + 1):
        m[j, 2 * j + offset] = 0.25
    return m


def _pool_sum4(r: torch.Tensor) -> torch.Tensor:
    """``avg_pool2d(r, 2)`` for contiguous (N, C, H, W) with even H, W: strided adds.

    Sums in float32 for lower-precision inputs (rounded once at the end, as
    ``avg_pool2d`` does for bfloat16).
    """
    n, c, h, w = r.shape
    acc = r if r.dtype in (torch.float32, torch.float64) else r.float()
    rows = acc.view(n, c, h // 2, 2, w)  # (N, C, H/2, 2, W): row pairs
    pairs = (rows[:, :, :, 0] + rows[:, :, :, 1]).view(n, c, h // 2, w // 2, 2)
    return (pairs[..., 0] + pairs[..., 1]).mul_(0.25).to(r.dtype)  # (N, C, H/2, W/2)


class _ReLUAvgPool2x2(torch.autograd.Function):
    """``avg_pool2d(relu(x), 2)`` with the hand-written backward described above."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        r = torch.relu(x)
        ctx.save_for_backward(r)
        return _pool_sum4(r)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (r,) = ctx.saved_tensors  # type: ignore[attr-defined]
        n, c, h, w = r.shape
        with torch.autocast(r.device.type, enabled=False):  # the GEMM must stay exact
            spread = spread_matrix(w, grad.dtype, grad.device)
            up = grad.contiguous().view(-1, w // 2) @ spread  # (N*C*H/2, 2W)
        return torch.ops.aten.threshold_backward(up.view(n, c, h, w).to(r.dtype), r, 0)


def relu_avg_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.avg_pool2d(F.relu(x), kernel_size=2, stride=2)``, faster on the CPU.

    Args:
        x: float (N, C, H, W), H and W even, any memory format (made contiguous).

    Returns:
        float (N, C, H/2, W/2), contiguous, same dtype as ``x``. Differentiable
        (a custom backward) when ``x`` requires grad.

    Raises:
        ValueError: H or W is odd, or ``x`` is not 4-D.
    """
    if x.ndim != 4 or x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"expected (N, C, H, W) with even H, W; got {tuple(x.shape)}")
    x = x.contiguous()
    if torch.is_grad_enabled() and x.requires_grad:
        return _ReLUAvgPool2x2.apply(x)
    return _pool_sum4(F.relu(x))
