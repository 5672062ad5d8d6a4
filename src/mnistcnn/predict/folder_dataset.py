"""Prepare a picture folder (``PATH/<class>/*``) into the tensor cache training reads.

Every file goes through ``mnistcnn predict``'s reading and preparation
(:func:`~mnistcnn.predict.inputs.prepare_item`: the same decoding, the same
allow-list of formats, MNIST's :class:`~mnistcnn.prepare.Preparation`), so a
model trained on the folder saw each picture as ``predict`` shows it pictures
later. The cache format, its checksum and where it lives are the data layer's
(:mod:`mnistcnn.data.folder`); this module only makes its contents, reading
the files as ``predict`` reads its inputs (:mod:`mnistcnn.predict.inputs`:
IDX images, TIFF pages).

A file that gives no image (not a picture, corrupt, unreadable, or a picture
without ink) is skipped and listed in :attr:`PreparedFolder.skipped`, with
why, and logged; it is never dropped silently.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnistcnn._io import ImageInputError
from mnistcnn.data.folder import (
    FOLDER_PREFIX,
    FolderCache,
    FolderListing,
    cache_file,
    folder_path,
    list_folder,
    read_folder_cache,
    save_folder_cache,
)
from mnistcnn.data.sources import resolve_root
from mnistcnn.errors import SettingError
from mnistcnn.predict.inputs import expand_inputs, prepare_item
from mnistcnn.prepare import INVERT_MODES, InvertMode, Preparation, PreparationSettings

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


@dataclass
class PreparedFolder:
    """The result of :func:`prepare_folder`.

    Attributes:
        cache: the prepared images, labels, classes, kept and skipped files.
        path: the cache file.
        reused: the cache was up to date and read as it was (nothing prepared).
    """

    cache: FolderCache
    path: Path
    reused: bool

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """``(path relative to the folder, reason)`` of every file that gave no image."""
        return self.cache.skipped


def preparation_settings(
    invert: InvertMode = "auto", settings: PreparationSettings | None = None
) -> dict[str, Any]:
    """The preparation as plain data (part of the cache's key): method, invert mode, geometry."""
    geometry = dataclasses.asdict(settings or PreparationSettings())
    body = {"method": "mnist", "invert": invert, "settings": geometry}
    return dict(json.loads(json.dumps(body)))  # tuples -> lists: equal after a round trip


def prepare_folder(
    folder: PathLike,
    *,
    root: PathLike | None = None,
    invert: InvertMode = "auto",
    settings: PreparationSettings | None = None,
) -> PreparedFolder:
    """Prepare every picture of ``folder/<class>/*`` as ``predict`` would, cached under ``root``.

    The cache (``<root>/folders/<name>-<hash>.pt``, see
    :mod:`mnistcnn.data.folder`) is reused when its key, a SHA-256 over every
    file's relative path, size and mtime and over the preparation settings,
    matches; otherwise every picture is prepared again and the cache
    rewritten atomically. An IDX file in a class folder gives its images, a
    multi-page TIFF its pages (as ``predict`` reads them).

    Args:
        folder: the picture folder (``folder:PATH``'s PATH; a ``folder:`` prefix is accepted).
        root: the data root (``resolve_root``: ``$MNISTCNN_DATA``, else ``~/.cache/mnistcnn``).
        invert: polarity handling, as ``mnistcnn predict --invert`` (``auto``, ``yes``, ``no``).
        settings: preparation geometry and thresholds (predict's defaults).

    Returns:
        A :class:`PreparedFolder`: images uint8 (N, 28, 28), labels int64 (N,),
        classes (the subfolder names, sorted), and the skipped files with why.

    Raises:
        SettingError (``dataset``): not a folder, no class folders, no files,
            no readable picture at all, or a bad ``invert``.
        OSError: the cache cannot be written.
    """
    if invert not in INVERT_MODES:
        raise SettingError(f"invert must be one of {', '.join(INVERT_MODES)}, got {invert!r}")
    text = os.fspath(folder)
    listing = list_folder(
        folder_path(text if text.startswith(FOLDER_PREFIX) else FOLDER_PREFIX + text)
    )
    preparation = preparation_settings(invert, settings)
    key = listing.key(preparation)
    path = cache_file(resolve_root(root), listing.root)
    if path.is_file():
        try:
            cached = read_folder_cache(path)
        except Exception as exc:  # unreadable or another version: make it again
            log.info("%s: %s; preparing again", path, exc)
        else:
            if cached.key == key:
                _log_skipped(listing.root, cached.skipped)
                return PreparedFolder(cached, path, True)
    cache = _prepare(listing, preparation, invert, settings)
    cache.key = key
    save_folder_cache(cache, path)
    log.info("%s: %d pictures prepared into %s", listing.root, len(cache.files), path)
    _log_skipped(listing.root, cache.skipped)
    return PreparedFolder(cache, path, False)


def _prepare(
    listing: FolderListing,
    preparation: dict[str, Any],
    invert: InvertMode,
    settings: PreparationSettings | None,
) -> FolderCache:
    """Run every file of ``listing`` through predict's preparation."""
    prep = Preparation("mnist", invert=invert, settings=settings or PreparationSettings())
    images, labels, files = [], [], []
    skipped = [(name, "in no class folder (PATH/<class>/<picture>)") for name in listing.outside]
    for rel, index, _size, _mtime in listing.files:
        path = listing.root / rel
        for item in expand_inputs([str(path)]):
            name = rel + item.name[len(str(path)) :]  # "a/b.idx#3", "a/c.tif#page2"
            try:
                prepared = prepare_item(item, prep)
            except ImageInputError as exc:
                skipped.append((name, str(exc)))
                continue
            if prepared.blank:
                skipped.append((name, "no ink found: a blank picture"))
            else:
                images.append(prepared.image)
                labels.append(index)
                files.append(name)
    if not images:
        raise SettingError(
            f"{listing.root}: no readable picture in its class folders "
            f"({len(skipped)} files skipped; first: {skipped[0][0]}: {skipped[0][1]})",
            setting="dataset",
            path=listing.root,
        )
    empty = [c for i, c in enumerate(listing.classes) if i not in set(labels)]
    if empty:  # as torchvision's ImageFolder refuses them: a class nothing teaches
        raise SettingError(
            f"{listing.root}: no readable picture in class folder(s) {', '.join(empty)}; "
            "add pictures or remove the folder(s)",
            setting="dataset",
            path=listing.root / empty[0],
        )
    return FolderCache(
        folder=str(listing.root),
        classes=list(listing.classes),
        images=torch.from_numpy(np.stack(images)),  # (N, 28, 28) uint8
        labels=torch.tensor(labels, dtype=torch.int64),  # (N,)
        files=files,
        skipped=skipped,
        preparation=preparation,
        content_sha256=listing.content_sha256,
    )


def _log_skipped(root: Path, skipped: list[tuple[str, str]]) -> None:
    if not skipped:
        return
    shown = "; ".join(f"{name}: {why}" for name, why in skipped[:5])
    more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    log.warning("%s: %d files skipped: %s%s", root, len(skipped), shown, more)
