"""The hub cache's ImageNet weight files: their state (``mnistcnn weights list``), importing one
(``mnistcnn weights import``), and generated stand-ins for offline tests and timings."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchvision.models import get_model

from mnistcnn._io import atomic_path, file_digest
from mnistcnn.models.weights import (
    IMAGENET_MODELS,
    TORCHVISION_BUILD_KWARGS,
    WeightsFile,
    WeightsHashError,
    WeightsMissingError,
    expected_sha256_prefix,
    hash_matches,
    read_state_dict,
    weights_file,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsStatus:
    """One weights file's state in the hub cache.

    ``status``: ``"ok"`` (present, hash right), ``"wrong hash"`` or ``"missing"``;
    ``size_bytes``: the file's size when present, else None; ``sha256``: its digest, or None.
    """

    info: WeightsFile
    path: Path
    status: str
    size_bytes: int | None
    sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the categories left out)."""
        i = self.info
        return {
            "model": i.model, "weights": i.weights, "file_name": i.file_name, "url": i.url,
            "expected_sha256_prefix": expected_sha256_prefix(i), "expected_size_mb": i.size_mb,
            "path": str(self.path), "status": self.status, "size_bytes": self.size_bytes,
            "sha256": self.sha256,
        }  # fmt: skip


def weights_status(model: str) -> WeightsStatus:
    """The state of ``model``'s file in the hub cache (hashing it when present)."""
    info = weights_file(model)
    path = info.cache_path
    if not path.is_file():
        return WeightsStatus(info, path, "missing", None, None)
    ok, digest = hash_matches(path, info)
    return WeightsStatus(info, path, "ok" if ok else "wrong hash", path.stat().st_size, digest)


def list_weights() -> list[WeightsStatus]:
    """:func:`weights_status` of every model in :data:`IMAGENET_MODELS`."""
    return [weights_status(m) for m in IMAGENET_MODELS]


def import_weights(path: str | os.PathLike[str], model: str | None = None) -> WeightsStatus:
    """Verify a weights file and copy it into the hub cache under torchvision's name.

    The model is ``model``, else the one whose file name ``path`` has, else the
    one whose expected hash prefix its SHA-256 matches. The copy is atomic
    (``<name>.part``, then a rename); an existing right file is left as it is.

    Raises:
        WeightsMissingError: ``path`` does not exist.
        WeightsHashError: its SHA-256 matches no (or not ``model``'s) expected prefix.
        WeightsArchitectureError: its tensors are not the architecture's.
    """
    src = Path(path)
    if not src.is_file():
        raise WeightsMissingError(f"{src}: no such file", path=src)
    infos = [weights_file(m) for m in ([model] if model else IMAGENET_MODELS)]
    digest = file_digest(src)
    named = [i for i in infos if i.file_name == src.name]
    matching = [i for i in named or infos if digest.startswith(expected_sha256_prefix(i))]
    if not matching:
        wanted = ", ".join(f"{i.file_name} ({expected_sha256_prefix(i)})" for i in named or infos)
        raise WeightsHashError(
            f"{src}: SHA-256 {digest[:16]}... matches none of torchvision's files: {wanted}; "
            "a partial download or another file",
            path=src,
        )
    info = matching[0]
    read_state_dict(src, info)
    dest = info.cache_path
    if dest.is_file() and file_digest(dest) == digest:
        return WeightsStatus(info, dest, "ok", dest.stat().st_size, digest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as part:
        shutil.copyfile(src, part)
    log.info("imported %s as %s", src, dest)
    return WeightsStatus(info, dest, "ok", dest.stat().st_size, digest)


def make_standin_weights(model: str, folder: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write a stand-in for ``model``'s weights file: torchvision's network, random, seeded.

    Built by torchvision's own builder as for its weights (1,000 classes; see
    :data:`TORCHVISION_BUILD_KWARGS`) after ``torch.manual_seed(seed)``, saved as a
    state dict under torchvision's exact file name in ``folder``. Its SHA-256 is
    not the real file's: it passes the hash check only where the expected prefix
    is replaced (tests), or given explicitly as ``weights=FILE``. For offline
    tests and timings, never for accuracy.

    Returns:
        The path written (``folder / weights_file(model).file_name``).
    """
    info = weights_file(model)
    torch.manual_seed(seed)
    kwargs = TORCHVISION_BUILD_KWARGS.get(model, {})
    net = get_model(model, weights=None, num_classes=1000, **kwargs)
    out = Path(folder) / info.file_name
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out)
    return out
