"""An exported ``.onnx`` model run by ONNX Runtime, usable wherever a TrainedModel is.

:func:`load_onnx` opens a file written by ``mnistcnn export --format onnx``
(:mod:`mnistcnn.artifact.export`) as an :class:`OnnxModel`: a
:class:`~mnistcnn.artifact.trained.TrainedModel` whose forward runs the ONNX
graph (pixels in [0, 1] -> logits; the normalization is inside the graph) and
whose classes, preparation, calibration temperature and provenance come from
the file's metadata (:mod:`mnistcnn.artifact.export_meta`). So the Predictor,
``mnistcnn predict`` and ``mnistcnn serve`` use it exactly as a ``.pt``
checkpoint, and ``mnistcnn.load("model.onnx")`` gives it.

It is the PyTorch face of an :class:`~mnistcnn.artifact.onnx_graph.OnnxGraph`
(the session, the metadata, numpy logits; no torch), which opens the file and
runs the graph for both.

ONNX Runtime is an optional dependency: ``pip install 'mnistcnn[onnx]'``.
An ONNX file is a protobuf graph: loading it executes no Python code.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from mnistcnn.artifact.onnx_graph import (
    INSTALL_HINT,
    OnnxGraph,
    import_onnxruntime,
    inference_session,
    is_onnx_file,
    onnx_versions,
    open_onnx,
    runtime_needed,
)
from mnistcnn.artifact.trained import TrainedModel, model_fields
from mnistcnn.errors import CheckpointError

__all__ = [  # the session helpers live in onnx_graph (no torch); named here too
    "INSTALL_HINT",
    "OnnxGraph",
    "OnnxModel",
    "OnnxNet",
    "import_onnxruntime",
    "inference_session",
    "is_onnx_file",
    "load_onnx",
    "onnx_versions",
    "open_onnx",
    "require_layers",
    "runtime_needed",
]


class OnnxNet(nn.Module):
    """An :class:`~mnistcnn.artifact.onnx_graph.OnnxGraph` as a module: float32 (N, C, H, W)
    pixels -> logits (N, K).

    Holds no parameters; the inputs go to the graph as float32 numpy arrays
    on the CPU and the logits come back on the input's device.
    """

    def __init__(self, graph: OnnxGraph) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, C, H, W) pixels in [0, 1] -> logits float32 (N, K) on ``x.device``."""
        logits = self.graph.logits(x.detach().float().cpu().numpy())
        return torch.from_numpy(logits).to(x.device)


class OnnxModel(TrainedModel):
    """A :class:`TrainedModel` whose forward is an ONNX graph run by ONNX Runtime.

    ``model(x)``: float32 (N, C, H, W) pixels in [0, 1] -> logits float32 (N, K);
    the graph normalizes its input itself, so :attr:`normalize` (holding the same
    mean and std, for reading) is not applied again. ``classes``,
    ``preparation``, ``calibration`` (``temperature``), ``input_size``,
    ``model_name`` and ``dataset`` are the metadata's; ``checkpoint`` is the
    :class:`~mnistcnn.artifact.schema.Checkpoint` the file describes (no
    weights); ``metadata`` is the whole document; ``graph`` the
    :class:`~mnistcnn.artifact.onnx_graph.OnnxGraph` it runs. ``precision`` is
    ``fp32``: the graph computes in float32 whatever the training used (the
    trained one is ``checkpoint.precision``).
    """

    net: OnnxNet

    def __init__(self, graph: OnnxGraph) -> None:
        ckpt = graph.checkpoint
        # the graph runs in float32 whatever precision the model was trained in
        super().__init__(OnnxNet(graph), **{**model_fields(ckpt), "precision": "fp32"})
        self.graph = graph
        self.checkpoint = ckpt
        self.metadata = graph.metadata
        self.path = graph.path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, C, H, W) pixels in [0, 1] -> logits float32 (N, K); the graph normalizes."""
        return self.net(x)

    def extra_repr(self) -> str:
        return f"onnx={self.path.name!r}, " + super().extra_repr()


def load_onnx(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> OnnxModel:
    """Open an ``.onnx`` file written by ``mnistcnn export`` as an :class:`OnnxModel`.

    Args:
        path: the ``.onnx`` file.
        map_location: ``cpu``, or ``cuda`` (ONNX Runtime's CUDA provider when
            it has one, else the CPU with a warning); logits come back on it.

    Raises:
        CheckpointError: see :func:`~mnistcnn.artifact.onnx_graph.open_onnx`.
    """
    device = torch.device(map_location)
    return OnnxModel(open_onnx(Path(path), device.type)).to(device).eval()


def require_layers(model: TrainedModel, what: str) -> TrainedModel:
    """``model`` itself, unless it is an :class:`OnnxModel`, whose graph has no layers to look into.

    Raises:
        CheckpointError: ``model`` runs an exported ONNX graph; ``what`` (e.g.
            "explain activations") needs the PyTorch checkpoint it was exported from.
    """
    if isinstance(model, OnnxModel):
        where = model.checkpoint.path if model.checkpoint is not None else "this model"
        raise CheckpointError(
            f"{where}: an exported ONNX graph has no PyTorch layers for {what}; "
            "give the .pt checkpoint it was exported from",
            path=getattr(model.checkpoint, "path", None),
        )
    return model
