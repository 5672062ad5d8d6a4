"""Say what a checkpoint file from another tool is, and what to do with it.

:func:`mnistcnn.artifact.load_checkpoint` refuses any file that is not an
mnistcnn checkpoint. The commonest such file is a bare ``state_dict``, saved
by ``torch.save(model.state_dict(), path)``: it holds the weights but not the
architecture's name, the classes or the normalization that mnistcnn needs to
use them. :func:`bare_state_dict_message` recognises it (safely:
``weights_only=True``) so the error can say so and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: The tail of the refusal :func:`mnistcnn.artifact.schema.from_dict` gives a file
#: that is not an mnistcnn checkpoint (its path comes before it).
NOT_A_CHECKPOINT = ": not an mnistcnn checkpoint (expected a dict with format="

#: What to do with a bare state_dict.
BARE_STATE_DICT_ADVICE = (
    "it holds weights only, without the model name, classes and normalization mnistcnn "
    "needs. Load them into their architecture and save that with mnistcnn: "
    "net.load_state_dict(torch.load(PATH)); mnistcnn.artifact.save(mnistcnn.TrainedModel("
    "net, mean, std, classes=..., model_name=...), 'model.pt') (mean and std as in "
    "training); or train a model with `mnistcnn train`"
)


def _weights_of(raw: Any) -> dict[str, Any] | None:
    """``raw`` if it maps names to tensors (a state_dict), else its ``state_dict``/``model``
    entry if that does (another trainer's checkpoint); else None."""
    import torch

    def is_state(d: Any) -> bool:
        return (
            isinstance(d, dict)
            and bool(d)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())
        )

    if is_state(raw):
        return raw
    if isinstance(raw, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if is_state(raw.get(key)):
                return raw[key]
    return None


def bare_state_dict_message(path: str | os.PathLike[str]) -> str | None:
    """The error message for ``path`` when it is a bare state_dict (or another trainer's
    dict holding one), else None (not one, or not readable: the usual error stands).

    Read with ``torch.load(weights_only=True)``: no code in the file is run.
    """
    import torch

    p = Path(path)
    try:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:
        return None
    if isinstance(raw, dict) and raw.get("format") == "mnistcnn.checkpoint":
        return None
    weights = _weights_of(raw)
    if weights is None:
        return None
    what = (
        "a bare state_dict (e.g. from torch.save(model.state_dict()))"
        if weights is raw
        else "another tool's checkpoint holding a state_dict"
    )
    return f"{p}: {what}, not an mnistcnn checkpoint: {BARE_STATE_DICT_ADVICE}"


def improve_checkpoint_error(exc: BaseException) -> BaseException:
    """``exc``, or a clearer :class:`~mnistcnn.errors.CheckpointError` when it is the
    refusal of a file that turns out to be a bare state_dict."""
    from mnistcnn.errors import CheckpointError

    text = str(exc)
    if not isinstance(exc, CheckpointError) or NOT_A_CHECKPOINT not in text:
        return exc
    path = exc.path or text.partition(NOT_A_CHECKPOINT)[0]
    message = bare_state_dict_message(path) if Path(path).is_file() else None
    return exc if message is None else CheckpointError(message, path=path)
