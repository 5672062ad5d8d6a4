"""An exported ``.onnx`` model run by ONNX Runtime, usable wherever a TrainedModel is.

:func:`load_onnx` opens a file written by ``mnistcnn export --format onnx``
(:mod:`mnistcnn.artifact.export`) as an :class:`OnnxModel`: a
:class:`~mnistcnn.artifact.trained.TrainedModel` whose forward runs the ONNX
graph (pixels in [0, 1] -> logits; the normalization is inside the graph) and
whose classes, preparation, calibration temperature and provenance come from
the file's metadata (:mod:`mnistcnn.artifact.export_meta`). So the Predictor,
``mnistcnn predict`` and ``mnistcnn serve`` use it exactly as a ``.pt``
checkpoint, and ``mnistcnn.load("model.onnx")`` gives it.

ONNX Runtime is an optional dependency: ``pip install 'mnistcnn[onnx]'``.
An ONNX file is a protobuf graph: loading it executes no Python code.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mnistcnn._io import sniff_file
from mnistcnn.artifact.export_meta import METADATA_KEY, checkpoint_of, parse
from mnistcnn.artifact.trained import TrainedModel, model_fields
from mnistcnn.errors import CheckpointError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'mnistcnn[onnx]'"


def is_onnx_file(path: str | os.PathLike[str]) -> bool:
    """True for a file named ``*.onnx``, or whose first bytes are an ONNX protobuf.

    A folder, a missing file and an unreadable one are False (the checkpoint
    reader then says what is wrong with them).
    """
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix.lower() == ".onnx":
        return True
    try:
        return sniff_file(path)[0] == "protobuf"
    except OSError:
        return False


def import_onnxruntime(what: str) -> Any:
    """The ``onnxruntime`` module; else CheckpointError: ``what`` needs it, and the install."""
    try:
        import onnxruntime
    except ImportError:
        raise CheckpointError(f"{what} needs ONNX Runtime: {INSTALL_HINT}") from None
    return onnxruntime


def inference_session(model: str | bytes, device: torch.device | None = None) -> Any:
    """An ONNX Runtime session over a file path or the bytes of a model.

    Runs on the CPU (``CPUExecutionProvider``), or on CUDA for a CUDA
    ``device`` when ONNX Runtime has that provider. Its intra-op threads are
    ``torch.get_num_threads()``, so ``torch.set_num_threads`` (``mnistcnn
    serve --torch-threads``) limits both runtimes alike.

    Raises:
        CheckpointError: onnxruntime is not installed, or cannot read the model.
    """
    ort = import_onnxruntime("running an .onnx model")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no per-session warnings on stderr
    providers = ["CPUExecutionProvider"]
    if device is not None and device.type == "cuda":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        else:
            log.warning("ONNX Runtime here has no CUDA provider: running the .onnx on the CPU")
    try:
        return ort.InferenceSession(model, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime's own exception types (InvalidProtobuf, Fail...)
        where = model if isinstance(model, str) else "the model"
        raise CheckpointError(f"{where}: ONNX Runtime cannot load it: {exc}") from None


class OnnxNet(nn.Module):
    """An ONNX Runtime session as a module: float32 (N, C, H, W) pixels -> logits (N, K).

    Holds no parameters; the inputs go to the session as float32 numpy arrays
    on the CPU and the logits come back on the input's device.
    """

    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, C, H, W) pixels in [0, 1] -> logits float32 (N, K) on ``x.device``."""
        pixels = np.ascontiguousarray(x.detach().float().cpu().numpy())
        (logits,) = self.session.run([self.output_name], {self.input_name: pixels})
        return torch.from_numpy(logits).to(x.device)


class OnnxModel(TrainedModel):
    """A :class:`TrainedModel` whose forward is an ONNX graph run by ONNX Runtime.

    ``model(x)``: float32 (N, C, H, W) pixels in [0, 1] -> logits float32 (N, K);
    the graph normalizes its input itself, so :attr:`normalize` (holding the same
    mean and std, for reading) is not applied again. ``classes``,
    ``preparation``, ``calibration`` (``temperature``), ``input_size``,
    ``model_name`` and ``dataset`` are the metadata's; ``checkpoint`` is the
    :class:`~mnistcnn.artifact.schema.Checkpoint` the file describes (no
    weights); ``metadata`` is the whole document. ``precision`` is ``fp32``:
    the graph computes in float32 whatever the training used (the trained one
    is ``checkpoint.precision``).
    """

    net: OnnxNet

    def __init__(self, session: Any, metadata: dict[str, Any], path: Path) -> None:
        ckpt = checkpoint_of(path, metadata)
        # the graph runs in float32 whatever precision the model was trained in
        super().__init__(OnnxNet(session), **{**model_fields(ckpt), "precision": "fp32"})
        self.checkpoint = ckpt
        self.metadata = metadata
        self.path = path

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
        CheckpointError: missing file, onnxruntime not installed (the message
            says ``pip install 'mnistcnn[onnx]'``), not a readable ONNX model,
            an ONNX model not exported by mnistcnn (no metadata: its classes
            and preparation are unknown), bad metadata, or a graph whose
            input/output shapes disagree with it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file", path=path)
    device = torch.device(map_location)
    session = inference_session(str(path), device)
    custom = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in custom:
        raise CheckpointError(
            f"{path}: an ONNX model without mnistcnn metadata (its classes and picture "
            "preparation are unknown); export one with `mnistcnn export CKPT --format onnx`",
            path=path,
        )
    model = OnnxModel(session, parse(path, custom[METADATA_KEY]), path)
    _check_signature(path, session, model)
    return model.to(device).eval()


def _check_signature(path: Path, session: Any, model: OnnxModel) -> None:
    """The graph maps (batch, *input_size) to (batch, len(classes)); else CheckpointError."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise CheckpointError(
            f"{path}: the graph has {len(inputs)} inputs and {len(outputs)} outputs; "
            "expected 1 and 1"
        )
    shape_in, shape_out = list(inputs[0].shape), list(outputs[0].shape)
    if shape_in[1:] != list(model.input_size) or shape_out[1:] != [len(model.classes)]:
        raise CheckpointError(
            f"{path}: the graph maps {shape_in} to {shape_out}, but its metadata says "
            f"{['batch', *model.input_size]} to {['batch', len(model.classes)]}"
        )


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
