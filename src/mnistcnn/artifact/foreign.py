"""Say what a checkpoint from another tool is, and what to do with it.

:func:`mnistcnn.artifact.schema.from_dict` refuses any loaded file that is not
an mnistcnn checkpoint. The commonest such file is a bare ``state_dict``, saved
by ``torch.save(model.state_dict(), path)``: it holds the weights but not the
architecture's name, the classes or the normalization that mnistcnn needs to
use them. :func:`foreign_checkpoint_kind` recognises it (or another trainer's
dict holding one) in the already loaded object, so the refusal can say so and
what to do.
"""

from __future__ import annotations

import sys
from typing import Any

#: What to do with a bare state_dict.
BARE_STATE_DICT_ADVICE = (
    "it holds weights only, without the model name, classes and normalization mnistcnn "
    "needs. Load them into their architecture and save that with mnistcnn: "
    "net.load_state_dict(torch.load(PATH)); mnistcnn.artifact.save(mnistcnn.TrainedModel("
    "net, mean, std, classes=..., model_name=...), 'model.pt') (mean and std as in "
    "training); or train a model with `mnistcnn train`"
)


def is_tensor(value: Any) -> bool:
    """Whether ``value`` is a ``torch.Tensor``; False without importing torch when torch was
    never imported (then nothing can be a tensor), so reading an exported file's metadata
    stays torch-free."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _is_state_dict(d: Any) -> bool:
    """A non-empty dict mapping names to tensors."""
    return (
        isinstance(d, dict)
        and bool(d)
        and all(isinstance(k, str) and is_tensor(v) for k, v in d.items())
    )


def foreign_checkpoint_kind(raw: Any) -> str | None:
    """What the loaded object ``raw`` is when it holds weights but is not an mnistcnn
    checkpoint: a bare state_dict, or another trainer's dict holding one under
    ``state_dict``/``model_state_dict``/``model``; None when it is neither."""
    if _is_state_dict(raw):
        return "a bare state_dict (e.g. from torch.save(model.state_dict()))"
    if isinstance(raw, dict) and any(
        _is_state_dict(raw.get(key)) for key in ("state_dict", "model_state_dict", "model")
    ):
        return "another tool's checkpoint holding a state_dict"
    return None
