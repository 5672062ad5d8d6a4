"""``tensorboard``: a TensorBoard log of a training run, beside ``metrics.csv``.

Written through :class:`torch.utils.tensorboard.SummaryWriter` (the
``tensorboard`` package: ``pip install 'mnistcnn[tensorboard]'``), by rank 0
only. The global step of every event is the epoch (1-based), the x axis of
``metrics.csv``:

* scalars: every ``metrics.csv`` column but ``epoch``, under the tags of
  :func:`scalar_tag` (``train_loss`` -> ``loss/train``, ``val_accuracy`` ->
  ``accuracy/val``, ``lr`` -> ``lr``, ``train_seconds`` -> ``seconds/train``),
  with the same values (stored as float32);
* ``samples/train`` (step 0): the first training batch as the model gets it
  (after any augmentation), up to 64 pictures in a grid
  (:func:`torchvision.utils.make_grid`, scaled to the batch's min..max);
* ``config`` (step 0): the run's settings as JSON text;
* histograms: every weight tensor of the model (``weights/<name>``) after each epoch.

A resumed run appends to the same folder with ``purge_step`` set to the epoch
it resumes at: events a stopped run wrote at that epoch or later are dropped by
readers (TensorBoard, :class:`EventAccumulator`), so the steps go on without
restarting or repeating.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnistcnn.errors import SettingError

log = logging.getLogger(__name__)

#: How ``tensorboard`` names the run folder (``<run>/tensorboard``, the flag's default).
RUN_PREFIX = "<run>"
DEFAULT_LOG_DIR = f"{RUN_PREFIX}/tensorboard"
#: Pictures in the sample grid at most.
GRID_SIZE = 64
_INSTALL = "pip install 'mnistcnn[tensorboard]'"


def scalar_tag(column: str) -> str:
    """The TensorBoard tag of ``metrics.csv`` column ``column``: losses, accuracies and
    timings of the splits side by side (``test_loss`` -> ``loss/test``); others unchanged."""
    for kind in ("loss", "accuracy", "seconds"):
        if column.endswith(f"_{kind}"):
            return f"{kind}/{column.removesuffix(f'_{kind}')}"
    return column


def log_dir(setting: str, run_dir: str | os.PathLike[str]) -> Path:
    """The folder ``tensorboard`` setting ``setting`` names: ``<run>/...`` is inside ``run_dir``."""
    if setting == RUN_PREFIX or setting.startswith((RUN_PREFIX + "/", RUN_PREFIX + os.sep)):
        return Path(run_dir) / setting[len(RUN_PREFIX) :].lstrip("/" + os.sep)
    return Path(setting).expanduser()


def summary_writer_class() -> type:
    """:class:`torch.utils.tensorboard.SummaryWriter`.

    Raises:
        SettingError: (``setting="tensorboard"``) the ``tensorboard`` package is not
            installed; the message says what to install.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise SettingError(
            f"tensorboard logging needs the tensorboard package ({exc}); install it with "
            f"{_INSTALL} (or pip install tensorboard), or leave tensorboard out",
            setting="tensorboard",
        ) from None
    return SummaryWriter


class TensorBoardLog:
    """The TensorBoard log of one run (rank 0); call it with each epoch's metrics row.

    Args:
        folder: the log folder (made if missing).
        model: the model trained; its parameters get a histogram after each epoch.
        resume_epoch: the epoch a resumed run starts at (its ``purge_step``),
            or None for a new run.

    Raises:
        SettingError: tensorboard is not installed (see :func:`summary_writer_class`).
        OSError: the folder cannot be made or written.
    """

    def __init__(self, folder: Path, model: nn.Module, resume_epoch: int | None = None) -> None:
        writer = summary_writer_class()
        self.folder, self.model = Path(folder), model
        self.writer = writer(log_dir=str(self.folder), purge_step=resume_epoch)
        self.resumed = resume_epoch is not None

    def start(self, config: dict[str, Any], images: torch.Tensor | None) -> None:
        """Step 0 of a new run: the settings and a grid of training ``images`` (B, C, H, W)."""
        if self.resumed:
            return
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```", 0)
        if images is not None and images.numel():
            from torchvision.utils import make_grid

            grid = make_grid(images[:GRID_SIZE].float().cpu(), nrow=8, normalize=True, pad_value=1)
            self.writer.add_image("samples/train", grid, 0)  # (3, H, W) in [0, 1]
        self.writer.flush()

    def __call__(self, row: dict[str, Any]) -> None:
        """Epoch ``row["epoch"]``'s scalars (every metrics column) and weight histograms."""
        epoch = int(row["epoch"])
        for column, value in row.items():
            if column != "epoch":
                self.writer.add_scalar(scalar_tag(column), float(value), epoch)
        for name, param in self.model.named_parameters():
            self.writer.add_histogram(f"weights/{name}", param.detach().float().cpu(), epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
