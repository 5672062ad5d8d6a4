"""Serve a trained model over HTTP: a JSON API and a drawing page (``mnistcnn serve``).

Needs the ``serve`` extra (``pip install 'mnistcnn[serve]'``: FastAPI, uvicorn,
python-multipart). :func:`create_app` builds the app around an injected
predictor; :func:`run_server` loads a checkpoint and runs it with uvicorn.
"""

from mnistcnn.serve.app import ServeSettings, create_app
from mnistcnn.serve.info import describe_checkpoint, model_info
from mnistcnn.serve.server import ModelSource, build_app, run_server

__all__ = [
    "ModelSource",
    "ServeSettings",
    "build_app",
    "create_app",
    "describe_checkpoint",
    "model_info",
    "run_server",
]
