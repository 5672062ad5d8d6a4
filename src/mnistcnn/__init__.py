"""mnistcnn: train, evaluate, explain and serve CNNs for MNIST-style 28x28 grayscale images.

The public API, imported on first use (so ``import mnistcnn`` stays cheap)::

    import mnistcnn
    result = mnistcnn.train(mnistcnn.recipe_config("tutorial", epochs=1), out="runs/one")
    model = mnistcnn.load(result.run_dir / "best.pt")   # pixels in [0, 1] in, logits out
    print(mnistcnn.evaluate(model).accuracy)
    mnistcnn.Predictor(model).predict(["digit.png"])
    mnistcnn.read(model, ["date.png"])[0].text          # "12/05/24": every digit, in order

``train`` also takes your own ``nn.Module`` (``net=``); ``load`` gives a
:class:`TrainedModel` that normalizes its own inputs and knows its classes,
picture preparation, calibration temperature and precision.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "load": "mnistcnn.artifact",
    "evaluate": "mnistcnn.evaluation",
    "create_model": "mnistcnn.models",
    "list_models": "mnistcnn.models",
    "Predictor": "mnistcnn.predict",
    "Reader": "mnistcnn.predict.reader",
    "read": "mnistcnn.predict.reader",
    "TrainedModel": "mnistcnn.artifact",
    "Evaluation": "mnistcnn.evaluation",
    "TrainConfig": "mnistcnn.config",
    "recipe_config": "mnistcnn.config",
    "load_dataset": "mnistcnn.data",
    "fetch_dataset": "mnistcnn.data",
    "load_model": "mnistcnn.artifact",
    "load_checkpoint": "mnistcnn.artifact",
    "export_model": "mnistcnn.artifact.export",
    "MnistcnnError": "mnistcnn.errors",
    "prepare_folder": "mnistcnn.predict.folder_dataset",
}

__all__ = ["__version__", "train", *_API]


def train(config: Any, **kwargs: Any) -> Any:
    """Train a model: :func:`mnistcnn.engine.train` (the same arguments and result),
    with a picture folder (``folder:PATH``) prepared first as ``mnistcnn predict`` prepares
    pictures (:func:`mnistcnn.predict.folder_dataset.prepare_folder`; the engine sits below
    ``predict`` and is handed it here), so ``train(config, dry_run=True)``, ``nproc=N`` and
    picture folders work from Python as ``mnistcnn train`` runs them."""
    from mnistcnn import engine
    from mnistcnn.data.folder import is_folder_dataset

    if "prepare_folder" not in kwargs and is_folder_dataset(config.dataset):
        from mnistcnn.predict.folder_dataset import prepare_folder

        kwargs["prepare_folder"] = prepare_folder
    return engine.train(config, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'mnistcnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API (tab completion in notebooks and shells)."""
    return sorted(__all__)
