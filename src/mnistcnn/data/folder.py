"""Your own labelled pictures as a dataset: ``folder:PATH``, read from a tensor cache.

``PATH`` is laid out as torchvision's ``ImageFolder``: ``PATH/<class>/<picture>``,
one subfolder per class (its name is the class name; classes sorted by name,
as :func:`torchvision.datasets.folder.find_classes` sorts them). This module
knows only the folder's *listing* and the *tensor cache* made from it. The
cache is written by :mod:`mnistcnn.predict.folder_dataset`, which reads each
file as ``mnistcnn predict`` reads its inputs and prepares it by MNIST's
:class:`~mnistcnn.prepare.Preparation` (the one picture preparation);
training reads it here.

The cache: one file per folder, ``<data root>/folders/<name>-<sha256(PATH)[:12]>.pt``,
written atomically, holding uint8 (N, 28, 28) images, int64 (N,) labels, the
classes, the files kept and skipped (with why), the preparation settings, and
two SHA-256 digests: ``content_sha256`` over every file's (relative path,
size, mtime in ns) and the class names, and ``key`` over that and the
preparation settings. A changed, added or removed file changes the content
digest; training then refuses the stale cache and preparation rebuilds it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mnistcnn._io import atomic_write
from mnistcnn.data.errors import DataError
from mnistcnn.errors import SettingError

PathLike = str | os.PathLike[str]

#: A dataset name ``folder:PATH`` names a picture folder.
FOLDER_PREFIX = "folder:"
#: Folder under the data root that holds the caches.
CACHE_DIR = "folders"
CACHE_FORMAT = "mnistcnn.folder-cache"
CACHE_VERSION = 1


def is_folder_dataset(name: str) -> bool:
    """True for a dataset name ``folder:PATH``."""
    return name.startswith(FOLDER_PREFIX)


def folder_path(name: str) -> Path:
    """The absolute folder of dataset name ``folder:PATH``.

    Raises:
        SettingError (``dataset``): no PATH, or PATH is not a folder.
    """
    text = name[len(FOLDER_PREFIX) :] if is_folder_dataset(name) else name
    if not text:
        raise SettingError(
            "dataset 'folder:' names no folder; give folder:PATH with PATH/<class>/<picture>",
            setting="dataset",
        )
    path = Path(text).expanduser().absolute()
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise SettingError(
            f"dataset {name!r}: {path} {what}; give folder:PATH with PATH/<class>/<picture> "
            "(torchvision's ImageFolder layout)",
            setting="dataset",
            path=path,
        )
    return path


def dataset_slug(name: str) -> str:
    """A name for run folders: ``folder:/data/my digits`` -> ``folder-my-digits``.

    Other dataset names are returned unchanged.
    """
    if not is_folder_dataset(name):
        return name
    base = Path(name[len(FOLDER_PREFIX) :].rstrip("/\\")).name or "root"
    return "folder-" + (re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-") or "pictures")


@dataclass(frozen=True)
class FolderListing:
    """Every file of a picture folder, by class.

    Attributes:
        root: the folder (absolute).
        classes: class names, sorted (the subfolders' names).
        files: ``(relative POSIX path, class index, size in bytes, mtime in ns)``,
            sorted by class then path.
        outside: files directly in ``root``, in no class folder (listed as
            skipped, never read).
    """

    root: Path
    classes: list[str]
    files: list[tuple[str, int, int, int]]
    outside: list[str] = field(default_factory=list)

    @property
    def content_sha256(self) -> str:
        """SHA-256 (hex) over the class names and every file's (path, size, mtime_ns)."""
        files = [list(f) for f in self.files]
        body = {"classes": self.classes, "files": files, "outside": self.outside}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def key(self, preparation: dict[str, Any]) -> str:
        """SHA-256 (hex) over :attr:`content_sha256` and the preparation settings."""
        body = {"content": self.content_sha256, "preparation": preparation, "v": CACHE_VERSION}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def list_folder(path: PathLike) -> FolderListing:
    """List ``path/<class>/**`` (torchvision's ImageFolder layout).

    Classes are the subfolders (:func:`torchvision.datasets.folder.find_classes`),
    hidden ones (``.git``) left out. Every regular file below a class folder
    belongs to it, whatever its extension (a file that is no picture is
    skipped, and listed, when the cache is made); files directly in ``path``
    are in no class (:attr:`FolderListing.outside`: listed as skipped too);
    hidden files and files in hidden folders are left out, as
    ``evaluate --images`` leaves them out.

    Raises:
        SettingError (``dataset``): no class folder, or no file in any of them.
    """
    from torchvision.datasets.folder import find_classes

    root = Path(path).absolute()
    try:
        names, _ = find_classes(str(root))
    except FileNotFoundError:
        names = []
    classes = [c for c in names if not c.startswith(".")]
    if not classes:
        raise SettingError(
            f"{root}: no class folders; lay pictures out as {root}/<class>/<picture> "
            "(torchvision's ImageFolder layout)",
            setting="dataset",
            path=root,
        )
    files = []
    for index, name in enumerate(classes):
        sub = root / name
        for p in sorted(sub.rglob("*")):
            if any(part.startswith(".") for part in p.relative_to(sub).parts) or not p.is_file():
                continue
            st = p.stat()
            files.append((p.relative_to(root).as_posix(), index, st.st_size, st.st_mtime_ns))
    if not files:
        raise SettingError(
            f"{root}: its class folders ({', '.join(classes)}) hold no files", setting="dataset"
        )
    outside = sorted(p.name for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    return FolderListing(root, classes, files, outside)


@dataclass
class FolderCache:
    """A prepared picture folder: what training reads.

    Attributes:
        folder: the picture folder (absolute path, as text).
        classes: class names; ``labels`` index them.
        images: uint8 (N, 28, 28), 0 background .. 255 ink (MNIST's polarity).
        labels: int64 (N,) in ``0..len(classes)-1``.
        files: the N pictures' paths relative to ``folder``, in order.
        skipped: ``(relative path, reason)`` of the files that gave no image.
        preparation: the settings the images were prepared with.
        content_sha256: :attr:`FolderListing.content_sha256` when it was made.
        key: :meth:`FolderListing.key` when it was made.
    """

    folder: str
    classes: list[str]
    images: torch.Tensor
    labels: torch.Tensor
    files: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    preparation: dict[str, Any] = field(default_factory=dict)
    content_sha256: str = ""
    key: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The cache file's dict (tensors, strings, lists: ``weights_only`` readable)."""
        return {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "folder": self.folder,
            "classes": list(self.classes),
            "images": self.images.contiguous(),
            "labels": self.labels.contiguous(),
            "files": list(self.files),
            "skipped": [list(s) for s in self.skipped],
            "preparation": dict(self.preparation),
            "content_sha256": self.content_sha256,
            "key": self.key,
        }


def cache_file(root: PathLike, folder: PathLike) -> Path:
    """Where the cache of ``folder`` lives under data root ``root`` (see the module docstring)."""
    folder = Path(folder).absolute()
    tag = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    return Path(root) / CACHE_DIR / f"{dataset_slug(FOLDER_PREFIX + str(folder))}-{tag}.pt"


def save_folder_cache(cache: FolderCache, path: PathLike) -> Path:
    """Write ``cache`` to ``path`` atomically (temporary file, fsync, rename); returns the path.

    Raises:
        OSError: the folder cannot be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(cache.to_dict(), buf)
    atomic_write(path, buf.getvalue())
    return path


def read_folder_cache(path: PathLike) -> FolderCache:
    """Read a cache written by :func:`save_folder_cache` (``torch.load(weights_only=True)``).

    Raises:
        DataError: not a readable cache of this version (rebuild it by preparing again).
    """
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"{path}: not a readable picture-folder cache ({exc})", path=path) from None
    if not isinstance(raw, dict) or raw.get("format") != CACHE_FORMAT:
        raise DataError(f"{path}: not a picture-folder cache", path=path)
    if raw.get("version") != CACHE_VERSION:
        raise DataError(f"{path}: cache version {raw.get('version')}, expected {CACHE_VERSION}")
    images, labels = raw["images"], raw["labels"]
    if images.dtype != torch.uint8 or images.ndim != 3 or labels.shape != images.shape[:1]:
        raise DataError(f"{path}: images {tuple(images.shape)} and labels do not match")
    return FolderCache(
        folder=str(raw["folder"]),
        classes=[str(c) for c in raw["classes"]],
        images=images,
        labels=labels.long(),
        files=[str(f) for f in raw["files"]],
        skipped=[(str(a), str(b)) for a, b in raw["skipped"]],
        preparation=dict(raw["preparation"]),
        content_sha256=str(raw["content_sha256"]),
        key=str(raw["key"]),
    )


def load_folder_dataset(name: str, root: PathLike) -> FolderCache:
    """The prepared cache of dataset ``folder:PATH``, checked against the folder as it is now.

    Args:
        name: ``folder:PATH``.
        root: the data root (:func:`mnistcnn.data.resolve_root`'s result).

    Raises:
        SettingError: ``PATH`` is not a picture folder (see :func:`list_folder`).
        DataError: the folder was never prepared, or changed since (a file
            added, removed or modified): prepare it again
            (``mnistcnn.prepare_folder``; ``mnistcnn train`` does it itself).
    """
    listing = list_folder(folder_path(name))
    path = cache_file(root, listing.root)
    advice = (
        f"prepare it with mnistcnn.prepare_folder({str(listing.root)!r}, root={str(root)!r}) "
        f"(`mnistcnn train --dataset {name}` prepares it itself)"
    )
    if not path.is_file():
        raise DataError(f"{listing.root}: not prepared yet (no {path}); {advice}", path=path)
    cache = read_folder_cache(path)
    if cache.content_sha256 != listing.content_sha256:
        raise DataError(
            f"{listing.root}: its files changed since {path} was made; {advice}", path=path
        )
    return cache
