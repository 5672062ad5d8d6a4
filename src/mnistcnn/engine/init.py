"""Fine-tuning: start a run from a trained checkpoint's weights (``TrainConfig.init``, ``--init``).

The checkpoint must hold the same architecture (model name and arguments
other than ``num_classes``). With the same classes (in order; ``"7"`` is
the same class as ``"7 - seven"``, letter case aside) every weight is copied;
with other classes (another number, or other names) the final classifier
layer, the one each registered model declares
(:func:`mnistcnn.models.classifier_name`: ``fc3`` of ``tutorial``, ``fc`` of
the ResNets), keeps the new run's fresh initialization and every other layer
is copied: the usual transfer-learning recipe (e.g. torchvision's
"finetuning" tutorial, timm's ``reset_classifier``). The input normalization
stays the new run's own (its dataset's, or none), as its config says.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from mnistcnn._io import file_digest
from mnistcnn._text import class_key
from mnistcnn.artifact import CheckpointError, TrainedModel, load_checkpoint
from mnistcnn.config import TrainConfig
from mnistcnn.data.folder import is_folder_dataset, load_folder_dataset
from mnistcnn.data.sources import resolve_root
from mnistcnn.errors import SettingError
from mnistcnn.models import classifier_name

log = logging.getLogger(__name__)


def _same_classes(theirs: list[str], mine: list[str]) -> bool:
    """The same classes in the same order, by :func:`~mnistcnn._text.class_key` (``"7 - seven"``
    is ``"7"``, letter case ignored: the rule ``evaluate --images`` matches folders by)."""
    return [class_key(c) for c in theirs] == [class_key(c) for c in mine]


def init_weights(model: TrainedModel, path: str | os.PathLike[str], model_name: str) -> list[str]:
    """Copy the weights of checkpoint ``path`` into ``model`` (its ``net``), in place.

    Args:
        model: the new run's model, freshly initialized (seeded).
        path: a checkpoint written by ``mnistcnn train`` (or a run directory).
        model_name: the new run's model (``"custom"`` for your own module).

    Returns:
        The names of the parameters and buffers left as initialized (the
        replaced classifier's; empty when the classes are the same).

    Raises:
        CheckpointError (``init``): not a readable checkpoint.
        SettingError (``init``): another model or other model arguments than
            the run's (both named), another input size, or other classes
            for a model whose classifier layer is not declared.
    """
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as exc:
        exc.setting = "init"
        raise
    where = f"init checkpoint {ckpt.path}"
    if ckpt.model_name != model_name:
        raise SettingError(
            f"{where} holds model {ckpt.model_name!r}, this run trains {model_name!r}: "
            f"fine-tuning starts from the same model (model {ckpt.model_name!r})",
            setting="init",
        )
    theirs = {k: v for k, v in ckpt.model_kwargs.items() if k != "num_classes"}
    mine = {k: v for k, v in model.model_kwargs.items() if k != "num_classes"}
    if theirs != mine or list(ckpt.input_size) != list(model.input_size):
        raise SettingError(
            f"{where}: model arguments {theirs} and input size {ckpt.input_size} differ from "
            f"this run's {mine} and {model.input_size}",
            setting="init",
        )
    weights = {k[4:]: v for k, v in ckpt.state_dict.items() if k.startswith("net.")}
    if _same_classes(ckpt.classes, model.classes):
        model.net.load_state_dict(weights, strict=True)
        log.info("weights from %s (all layers)", ckpt.path)
        return []
    head = classifier_name(model_name) if model_name != "custom" else None
    if head is None:
        raise SettingError(
            f"{where} has {len(ckpt.classes)} classes, this run {len(model.classes)}, and model "
            f"{model_name!r} declares no classifier layer to replace "
            "(register_model(..., classifier=NAME))",
            setting="init",
        )
    own = model.net.state_dict()
    # The declared classifier, and any other per-class output (GoogLeNet's auxiliary
    # classifiers): a tensor whose shape differs only because its rows are the classes.
    replaced = {
        k
        for k, v in weights.items()
        if k.startswith(head + ".")
        or (k in own and own[k].shape != v.shape and v.shape[:1] == (len(ckpt.classes),))
    }
    kept = {k: v for k, v in weights.items() if k not in replaced}
    missing, unexpected = model.net.load_state_dict(kept, strict=False)
    if unexpected or any(not (k.startswith(head + ".") or k in replaced) for k in missing):
        raise SettingError(f"{where}: weights do not fit model {model_name!r}", setting="init")
    log.info(
        "weights from %s; classifier %r replaced (%d -> %d classes)",
        ckpt.path,
        head,
        len(ckpt.classes),
        len(model.classes),
    )
    if ckpt.mean != model.mean or ckpt.std != model.std:
        log.info(
            "%s was trained with normalization mean %s std %s; this run uses %s %s",
            ckpt.path, ckpt.mean, ckpt.std, model.mean, model.std,
        )  # fmt: skip
    return sorted(missing)


def sources_record(config: TrainConfig, data_root: str | os.PathLike[str] | None) -> dict[str, Any]:
    """What a run's ``config.json`` records of where its weights and pictures came from.

    ``init_source``: the ``init`` checkpoint's absolute path and SHA-256 (the
    path alone may later hold another file; None when it is gone by a resume).
    ``folder_source`` (``folder:PATH``): the folder, the content SHA-256 of its
    cache, the number of pictures, and the files skipped with why. Empty for a
    run with neither.
    """
    record: dict[str, Any] = {}
    if config.init is not None:
        try:  # a run folder names its best.pt; a resume may find the file gone (None)
            path: Path | None = load_checkpoint(config.init).path
        except CheckpointError:
            path = None
        digest = file_digest(path) if path is not None else None
        where = str((path or Path(config.init)).absolute())
        record["init_source"] = {"path": where, "sha256": digest}
    if is_folder_dataset(config.dataset):
        cache = load_folder_dataset(config.dataset, resolve_root(data_root))
        record["folder_source"] = {
            "folder": cache.folder,
            "content_sha256": cache.content_sha256,
            "pictures": len(cache.files),
            "skipped": [list(s) for s in cache.skipped],
        }
    return record
