"""``mnistcnn train|lr-find --dataset folder:PATH``: prepare the picture folder, and say so."""

from __future__ import annotations

import logging
import os
from typing import Any

import click

from mnistcnn._text import plural


def prepare_and_say(folder: str | os.PathLike[str], root: Any = None) -> Any:
    """:func:`mnistcnn.predict.folder_dataset.prepare_folder`, then print what the folder
    holds, where the cache is, and every skipped file (on stderr) with why.

    The ``prepare_folder`` that ``mnistcnn train`` hands :func:`mnistcnn.train`.
    """
    import torch

    from mnistcnn.predict.folder_dataset import prepare_folder

    logger = logging.getLogger("mnistcnn.predict.folder_dataset")
    level = logger.level
    logger.setLevel(logging.ERROR)  # its warning about skipped files: printed in full below
    try:
        result = prepare_folder(folder, root=root)
    finally:
        logger.setLevel(level)
    cache = result.cache
    counts = torch.bincount(cache.labels, minlength=len(cache.classes)).tolist()
    per_class = ", ".join(f"{c} {n}" for c, n in zip(cache.classes, counts))
    how = "cache reused" if result.reused else "prepared as `mnistcnn predict` prepares pictures"
    classes = plural(len(cache.classes), "class", "classes")
    click.echo(
        f"{plural(len(cache.files), 'picture')} in {classes} ({per_class}) from "
        f"{cache.folder}; {how}: {result.path}"
    )
    for name, reason in result.skipped:
        click.echo(f"skipped {name}: {reason}", err=True)
    return result
