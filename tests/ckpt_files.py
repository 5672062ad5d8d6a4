"""Checkpoint files for tests: version-1 files as older mnistcnn wrote them, and current ones."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mnistcnn.artifact import TrainedModel, save


def write_v1_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as a format-version-1 file (bare architecture weights), as
    mnistcnn 0.1 wrote them: what the reader must still accept (or refuse, for bad fields)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "mnistcnn.checkpoint", "format_version": 1, **payload}, path)
    return path


def write_checkpoint(
    path: Path,
    net: torch.nn.Module,
    *,
    classes: Sequence[str] = tuple(str(i) for i in range(10)),
    mean: Sequence[float] = (0.0,),
    std: Sequence[float] = (1.0,),
    model_name: str = "tutorial",
    dataset: str = "mnist",
    **state: Any,
) -> Path:
    """Save ``net`` (a registered architecture) as a current checkpoint through the library."""
    model = TrainedModel(
        net,
        mean,
        std,
        classes=classes,
        model_name=model_name,
        model_kwargs={"num_classes": len(classes), "in_chans": 1},
        dataset=dataset,
    )
    save(model, path, **state)
    return path
