"""Generated stand-ins for torchvision's ImageNet weight files, for offline tests.

torchvision's builder with a fixed seed, saved under torchvision's file name;
the expected SHA-256 prefix (:func:`mnistcnn.models.weights.expected_sha256_prefix`)
is patched to the generated file's own, so the hash check runs as for the real file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mnistcnn._io import file_digest
from mnistcnn.models import weights as mweights
from mnistcnn.models.weights_cache import make_standin_weights


def generated(folder: Path, model: str) -> tuple[Path, str]:
    """(a stand-in file for ``model`` in ``folder``, its SHA-256), made once per folder."""
    path = folder / mweights.weights_file(model).file_name
    if not path.is_file():
        make_standin_weights(model, folder, seed=0)
    return path, file_digest(path)


def accept_generated(monkeypatch: pytest.MonkeyPatch, digests: dict[str, str]) -> None:
    """Expect the generated files' SHA-256 prefixes (12 hex digits) instead of the real ones."""
    real = mweights.expected_sha256_prefix

    def expected(info: mweights.WeightsFile) -> str:
        return digests[info.model][:12] if info.model in digests else real(info)

    monkeypatch.setattr(mweights, "expected_sha256_prefix", expected)
    monkeypatch.setattr("mnistcnn.models.weights_cache.expected_sha256_prefix", expected)


def into_cache(torch_home: Path, path: Path, name: str | None = None) -> Path:
    """Copy ``path`` into ``<torch_home>/hub/checkpoints`` (as ``name``); return the copy."""
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / (name or path.name)
    shutil.copyfile(path, dest)
    return dest
