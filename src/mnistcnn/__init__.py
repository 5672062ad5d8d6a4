"""mnistcnn: train, evaluate, explain and serve CNNs for MNIST-style 28x28 grayscale images.

The public API, imported on first use (so ``import mnistcnn`` stays cheap)::

    from mnistcnn import create_model, list_models, load_dataset, recipe_config, train
    result = train(recipe_config("tutorial", epochs=1), out="runs/one")
    model, ckpt = load_model(result.run_dir / "best.pt")
    Predictor.from_checkpoint(result.run_dir / "best.pt").predict(["digit.png"])
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "TrainConfig": "mnistcnn.config",
    "recipe_config": "mnistcnn.config",
    "create_model": "mnistcnn.models",
    "list_models": "mnistcnn.models",
    "load_dataset": "mnistcnn.data",
    "fetch_dataset": "mnistcnn.data",
    "train": "mnistcnn.engine",
    "evaluate": "mnistcnn.engine",
    "load_model": "mnistcnn.engine",
    "load_checkpoint": "mnistcnn.engine",
    "Predictor": "mnistcnn.predict",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'mnistcnn' has no attribute {name!r}")
