"""Device selection, seeding and version facts shared by the engine."""

from __future__ import annotations

import platform
import random
from typing import Any

import numpy as np
import torch

from mnistcnn.artifact.trained import precision_autocast as precision_autocast
from mnistcnn.errors import SettingError


def select_device(name: str = "auto") -> torch.device:
    """``auto``: cuda if available, then mps, then cpu; otherwise ``torch.device(name)``.

    Raises:
        ValueError: the named device is not a valid device string or is not available.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise SettingError(f"device {name!r} is not a device: {exc}", setting="device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SettingError(
            f"device {name}: CUDA is not available on this machine", setting="device"
        )
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise SettingError(f"device {name}: MPS is not available on this machine", setting="device")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The RNG states of torch (CPU and CUDA), NumPy and Python, as checkpoint-safe data."""
    np_state: tuple[Any, ...] = tuple(np.random.get_state())
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np_state[1].numpy().astype(np.uint32), *np_state[2:]))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(obj: Any) -> Any:
    return [_to_lists(o) for o in obj] if isinstance(obj, (tuple, list)) else obj


def _to_tuples(obj: Any) -> Any:
    return tuple(_to_tuples(o) for o in obj) if isinstance(obj, list) else obj


def versions() -> dict[str, str]:
    """Versions of Python, torch, torchvision and mnistcnn.

    torchvision's is read from its installed metadata, not by importing it (about a
    second, which a training run of the small networks does not otherwise spend).
    """
    from importlib.metadata import PackageNotFoundError, version

    from mnistcnn import __version__

    try:
        tv_version = version("torchvision")
    except PackageNotFoundError:  # pragma: no cover - a dependency; here for a broken install
        tv_version = "not installed"
    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "torchvision": tv_version,
        "mnistcnn": __version__,
    }
