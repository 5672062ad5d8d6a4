"""The parity check of an export: the exported graph against the PyTorch model, on test images.

:func:`check_parity` runs both on the same images, in batches of 1, 7, 64,
64, ... (so a graph whose batch size is not really dynamic fails), and
measures the largest absolute logit difference and the top-1 agreement.
:func:`load_parity_images` takes the images from the test split of the dataset the
checkpoint was trained on (through :func:`mnistcnn.data.load_arrays`: the
data root, a mirror or a download), or, when that is not available, seeded
random pictures, saying so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from mnistcnn.errors import MnistcnnError

log = logging.getLogger(__name__)

#: Refused above this largest |logit difference| (float32 logits).
MAX_LOGIT_DIFFERENCE = 1e-4
#: Refused below this share of images with the same top-1 class.
MIN_TOP1_AGREEMENT = 1.0
#: Default number of test images.
PARITY_IMAGES = 1000
#: Batch sizes of the check, in order; the last one repeats.
BATCH_SIZES = (1, 7, 64)

Logits = Callable[[torch.Tensor], torch.Tensor]


class ParityError(MnistcnnError):
    """The exported graph does not compute the model's logits (beyond the tolerance)."""


@dataclass(frozen=True)
class Parity:
    """The measured agreement of an export with its PyTorch model.

    Attributes:
        images: how many images were compared.
        source: what they were, e.g. ``"mnist test split (first 1000 images)"``.
        batch_sizes: the forward-pass sizes used, in order.
        max_abs_logit_difference: max over images and classes of |exported - PyTorch|.
        top1_agreement: share (0..1) of images with the same top-1 class.
        passed: within :data:`MAX_LOGIT_DIFFERENCE` and :data:`MIN_TOP1_AGREEMENT`.
    """

    images: int
    source: str
    batch_sizes: list[int]
    max_abs_logit_difference: float
    top1_agreement: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, with the tolerances applied."""
        return {
            **asdict(self),
            "max_allowed_difference": MAX_LOGIT_DIFFERENCE,
            "min_top1_agreement": MIN_TOP1_AGREEMENT,
        }


def batch_sizes(n: int) -> list[int]:
    """Forward-pass sizes covering ``n`` images: 1, 7, 64, 64, ..., the rest.

    ``batch_sizes(72) == [1, 7, 64]``; ``batch_sizes(1000) == [1, 7] + [64] * 15 + [32]``.
    """
    sizes: list[int] = []
    left = n
    for size in (*BATCH_SIZES, *[BATCH_SIZES[-1]] * (n // BATCH_SIZES[-1] + 1)):
        if left <= 0:
            break
        sizes.append(min(size, left))
        left -= sizes[-1]
    return sizes


def load_parity_images(
    dataset: str,
    n: int = PARITY_IMAGES,
    *,
    data_root: str | os.PathLike[str] | None = None,
    mirror: str | os.PathLike[str] | None = None,
    input_size: tuple[int, int, int] = (1, 28, 28),
    seed: int = 0,
) -> tuple[torch.Tensor, str]:
    """``n`` images for the parity check: float32 (n, C, H, W) pixels in [0, 1], and what they are.

    The first ``n`` images of ``dataset``'s test split (all of them if it has
    fewer), read through :func:`mnistcnn.data.load_arrays` (``data_root`` /
    ``mirror`` as for training). When that fails (no dataset name, a dataset
    not obtainable here: offline, no mirror) or the model does not take
    1x28x28 images, ``n`` seeded uniform random pictures instead; the reason
    is logged as a warning and said in the returned description.

    Raises:
        ValueError: ``n`` < 1.
    """
    if n < 1:
        raise ValueError(f"parity images must be >= 1, got {n}")
    why = ""
    if not dataset:
        why = "the checkpoint names no dataset"
    elif tuple(input_size) != (1, 28, 28):
        why = f"the model takes {list(input_size)} inputs, not dataset images"
    else:
        from mnistcnn.data import DataError, load_arrays

        try:
            images, _ = load_arrays(dataset, train=False, root=data_root, mirror=mirror)
        except (DataError, ValueError, OSError) as exc:
            why = f"the {dataset} test split is not available ({exc})"
        else:
            images = images[:n]
            x = images[:, None].float().div(255.0)  # (n, 1, 28, 28)
            return x, f"{dataset} test split (first {len(images)} images)"
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *input_size, generator=gen)  # (n, C, H, W) in [0, 1)
    log.warning("parity checked on %d random pictures: %s", n, why)
    return x, f"{n} random pictures (seed {seed}): {why}"


@torch.inference_mode()
def check_parity(reference: Logits, exported: Logits, images: torch.Tensor, source: str) -> Parity:
    """Compare ``exported`` with ``reference`` on ``images``, batch by batch (:func:`batch_sizes`).

    Args:
        reference: the PyTorch model: float32 (N, C, H, W) -> logits (N, K).
        exported: the exported graph, the same signature.
        images: float32 (n, C, H, W) pixels in [0, 1].
        source: what the images are (kept in the result).

    Returns:
        The :class:`Parity`; ``passed`` says whether it is within the tolerances.

    Raises:
        ParityError: the exported graph gives logits of another shape.
    """
    sizes = batch_sizes(len(images))
    worst, agree, start = 0.0, 0, 0
    for size in sizes:
        x = images[start : start + size]
        start += size
        want = reference(x).float()
        got = exported(x).float().to(want.device)
        if got.shape != want.shape:
            raise ParityError(
                f"the exported graph gives logits {tuple(got.shape)} for a batch of {size}; "
                f"PyTorch gives {tuple(want.shape)}"
            )
        diff = (got - want).abs().max().item()
        worst = max(worst, diff if diff == diff else float("inf"))  # NaN counts as infinite
        agree += int((got.argmax(1) == want.argmax(1)).sum())
    agreement = agree / len(images)
    passed = worst <= MAX_LOGIT_DIFFERENCE and agreement >= MIN_TOP1_AGREEMENT
    return Parity(len(images), source, sizes, worst, agreement, passed)
