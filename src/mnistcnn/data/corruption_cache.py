"""Corrupted copies of a test split, built once and kept under the data root with checksums.

Layout (``<root>`` is :func:`~mnistcnn.data.resolve_root`'s data root)::

    <root>/<dataset>-c/<corruption>.npy    uint8 (count, 28, 28), NumPy's .npy format
    <root>/<dataset>-c/<corruption>.json   its manifest: SHA-256 of the .npy file and of
                                           the clean images it was made from, seed, count

(``<root>/mnist-c/`` for MNIST.) A manifest per file rather than one for the
folder, so two evaluations building different corruptions at once never
overwrite each other's entries. A cached copy is used only when its manifest
matches (corruption, :data:`ALGORITHM_VERSION`, seed, the clean images' SHA-256)
and the file's SHA-256 is the recorded one; anything else (a damaged or
edited file, a half-written one, another seed) is rebuilt. Both files are
written atomically (the .npy first, its manifest last), and a data root that
cannot be written is no error: the copy is then built each time.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnistcnn.data.corruptions import CHUNK, CORRUPTIONS, corrupt
from mnistcnn.data.sources import resolve_root

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]

#: Bumped whenever a corruption's output changes: older caches are then rebuilt.
ALGORITHM_VERSION = 1


@dataclass(frozen=True)
class CorruptedSet:
    """One corrupted copy.

    Attributes:
        name: the corruption.
        images: uint8 (n, 28, 28), 0..255.
        path: the cached ``.npy`` (None when the root could not be written).
        sha256: SHA-256 of the ``.npy`` file's bytes (hex).
        built: True if made now, False if read from the cache.
        seconds: time spent building or reading it.
    """

    name: str
    images: np.ndarray
    path: Path | None
    sha256: str
    built: bool
    seconds: float


def cache_folder(dataset: str, root: PathLike | None = None) -> Path:
    """``<root>/<dataset>-c``: where a dataset's corrupted copies are kept."""
    return resolve_root(root) / f"{dataset}-c"


def _sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_cached(
    npy: Path, manifest: Path, name: str, source: np.ndarray, seed: int, count: int
) -> tuple[np.ndarray, str] | None:
    """The cached array and its SHA-256 if valid for this request and at least ``count``
    long, else None (with the reason logged)."""
    try:
        entry = json.loads(manifest.read_text(encoding="utf-8"))
        data = npy.read_bytes()
    except (OSError, ValueError):
        return None  # no cache yet (or unreadable): build it
    if not isinstance(entry, dict):
        return None
    expected = (name, ALGORITHM_VERSION, seed, CHUNK)
    found = tuple(entry.get(k) for k in ("corruption", "algorithm_version", "seed", "chunk"))
    cached = entry.get("count")
    if found != expected or not isinstance(cached, int) or not count <= cached <= len(source):
        return None
    if entry.get("source_sha256") != _sha256(np.ascontiguousarray(source[:cached]).data):
        return None
    digest = _sha256(data)
    if digest != entry.get("sha256"):
        log.warning("%s: SHA-256 %s is not the manifest's; rebuilding it", npy, digest)
        return None
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError):
        return None
    if array.dtype != np.uint8 or array.shape != (cached, *source.shape[1:]):
        return None
    return array, digest


def _write_cache(
    npy: Path, manifest: Path, name: str, array: np.ndarray, source_sha: str, seed: int
) -> tuple[Path | None, str]:
    """Write ``array`` and its manifest atomically; (the path or None if unwritable, SHA-256)."""
    from mnistcnn._io import atomic_write

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    data = buf.getvalue()
    digest = _sha256(data)
    spec = CORRUPTIONS[name]
    entry: dict[str, Any] = {
        "corruption": name,
        "algorithm_version": ALGORITHM_VERSION,
        "seed": seed,
        "chunk": CHUNK,
        "count": len(array),
        "shape": list(array.shape),
        "dtype": "uint8",
        "sha256": digest,
        "source_sha256": source_sha,
        "library": spec.library,
        "setting": spec.setting,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        npy.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(npy, data)
        atomic_write(manifest, json.dumps(entry, indent=2) + "\n")
    except OSError as exc:
        log.warning("could not cache %s in %s (%s); it is rebuilt next time", name, npy.parent, exc)
        return None, digest
    return npy, digest


def corrupted_images(
    images: np.ndarray,
    name: str,
    *,
    dataset: str,
    root: PathLike | None = None,
    seed: int = 0,
    count: int | None = None,
) -> CorruptedSet:
    """The first ``count`` images of ``images`` with corruption ``name``, from the cache or built.

    A build covers whole chunks (:data:`~mnistcnn.data.corruptions.CHUNK`
    images), so the first ``count`` images are the same whether 100 or all
    10,000 were asked for, and a cached longer copy serves a shorter request.

    Args:
        images: uint8 (N, 28, 28) clean images (a dataset's test split).
        name: a corruption of :data:`~mnistcnn.data.corruptions.CORRUPTIONS`.
        dataset: the dataset's name (the cache folder is ``<root>/<dataset>-c``).
        root: the data root (default: ``$MNISTCNN_DATA`` or ``~/.cache/mnistcnn``).
        seed: >= 0.
        count: how many of the first images (default and at most N).

    Raises:
        SettingError: an unknown corruption, a negative seed, or images that are
            not uint8 (N, 28, 28).
    """
    start = time.perf_counter()
    source = np.ascontiguousarray(np.asarray(images))
    n = len(source) if count is None else max(0, min(count, len(source)))
    folder = cache_folder(dataset, root)
    npy, manifest = folder / f"{name}.npy", folder / f"{name}.json"
    hit = _read_cached(npy, manifest, name, source, seed, n) if name in CORRUPTIONS else None
    if hit is not None:
        array, digest = hit
        return CorruptedSet(name, array[:n], npy, digest, False, time.perf_counter() - start)
    built = min(len(source), math.ceil(n / CHUNK) * CHUNK)
    array = corrupt(source[:built], name, seed=seed)
    path, digest = _write_cache(npy, manifest, name, array, _sha256(source[:built].data), seed)
    log.info("built %s: %d images in %.1f s", name, built, time.perf_counter() - start)
    return CorruptedSet(name, array[:n], path, digest, True, time.perf_counter() - start)
