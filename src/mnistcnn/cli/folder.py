"""``mnistcnn train --dataset folder:PATH``: prepare the picture folder first, and say so."""

from __future__ import annotations

import logging
from typing import Any

import click

from mnistcnn._text import plural


def prepare_folder_dataset(dataset: str, data_root: str | None) -> Any:
    """Prepare ``folder:PATH`` (:func:`mnistcnn.predict.folder_dataset.prepare_folder`); print
    what it holds, where the cache is, and every skipped file (on stderr) with why."""
    import torch

    from mnistcnn.data.folder import folder_path
    from mnistcnn.predict.folder_dataset import prepare_folder

    logger = logging.getLogger("mnistcnn.predict.folder_dataset")
    level = logger.level
    logger.setLevel(logging.ERROR)  # its warning about skipped files: printed in full below
    try:
        result = prepare_folder(folder_path(dataset), root=data_root)
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


def prepare_pictures(config: Any, data_root: str | None, resume: str | None) -> None:
    """``mnistcnn train`` on ``folder:PATH``: prepare the pictures into their cache first (in
    the data root a resumed run recorded, unless another is given), listing the files skipped.
    Nothing for other datasets."""
    from mnistcnn.data.folder import is_folder_dataset

    if not is_folder_dataset(config.dataset):
        return
    if resume and data_root is None:
        from mnistcnn.engine.resume import recorded_data_source, resume_checkpoint_path

        run_dir = resume_checkpoint_path(resume).parent
        data_root = recorded_data_source(run_dir, None, None)[0]  # type: ignore[assignment]
    prepare_folder_dataset(config.dataset, data_root)
