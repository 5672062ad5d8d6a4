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
        message = f"{where}: ONNX Runtime cannot load it: {exc}"
        advice = _version_advice(model, ort.__version__, str(exc))
        raise CheckpointError(message + advice) from None


#: The first ONNX Runtime release that reads each ONNX IR version, and that implements
#: each ``ai.onnx`` opset (https://onnxruntime.ai/docs/reference/compatibility.html).
RUNTIME_FOR_IR = {7: "1.6", 8: "1.10", 9: "1.15", 10: "1.18"}
RUNTIME_FOR_OPSET = {
    13: "1.6", 14: "1.8", 15: "1.9", 16: "1.11", 17: "1.12", 18: "1.14", 19: "1.15",
    20: "1.17", 21: "1.18",
}  # fmt: skip


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:2] if p.isdigit())


def runtime_needed(ir_version: int, opset: int) -> str | None:
    """The oldest ONNX Runtime release (``"1.17"``) that reads a model of ``ir_version``
    stamped with ``opset``; None when either is newer than :data:`RUNTIME_FOR_IR` /
    :data:`RUNTIME_FOR_OPSET` know (a release after the last one listed)."""
    by_ir = RUNTIME_FOR_IR.get(ir_version, "1.0" if ir_version < min(RUNTIME_FOR_IR) else None)
    by_op = RUNTIME_FOR_OPSET.get(opset, "1.0" if opset < min(RUNTIME_FOR_OPSET) else None)
    if by_ir is None or by_op is None:
        return None
    return max(by_ir, by_op, key=_release)


def onnx_versions(model: str | os.PathLike[str] | bytes) -> tuple[int, int] | None:
    """(IR version, ``ai.onnx`` opset) stamped in an ONNX file (or its bytes); None when unreadable.

    Reads the protobuf's top-level fields (``ModelProto.ir_version`` = field 1,
    ``opset_import`` = field 8, each ``OperatorSetIdProto`` with ``domain`` = 1 and
    ``version`` = 2; https://github.com/onnx/onnx/blob/main/onnx/onnx.proto) without
    the ``onnx`` package, which running a model does not need.
    """
    try:
        data = model if isinstance(model, bytes) else Path(model).read_bytes()
        fields = _proto_fields(data)
        ir = next((v for n, v in fields if n == 1 and isinstance(v, int)), None)
        for n, v in fields:
            if n == 8 and isinstance(v, bytes):
                sub = dict(_proto_fields(v))
                version = sub.get(2)
                if sub.get(1, b"") in (b"", b"ai.onnx") and isinstance(version, int):
                    return (ir, version) if ir is not None else None
    except (OSError, ValueError, IndexError):
        return None
    return None


def _proto_fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message's fields: varints as int, the rest bytes."""
    out: list[tuple[int, int | bytes]] = []
    i = 0

    def varint() -> int:
        nonlocal i
        value, shift = 0, 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out.append((number, varint()))
        elif wire == 2:
            size = varint()
            out.append((number, data[i : i + size]))
            i += size
        elif wire in (1, 5):
            out.append((number, data[i : i + (8 if wire == 1 else 4)]))
            i += 8 if wire == 1 else 4
        else:
            raise ValueError(f"protobuf wire type {wire} is not read here")
    return out


def _version_advice(model: str | bytes, installed: str, error: str) -> str:
    """What the file needs, when this ONNX Runtime is too old for its IR version or opset."""
    found = onnx_versions(model)
    if found is None:
        return ""
    ir, opset = found
    need = runtime_needed(ir, opset)
    if need is not None and _release(installed) >= _release(need):
        return ""  # old enough: the version is not the problem
    if need is None and not any(w in error.lower() for w in ("ir version", "opset")):
        return ""  # newer than the table, but the runtime complains of something else
    which = f"ONNX Runtime {need} or newer" if need else "a newer ONNX Runtime"
    return (
        f". The file is ONNX IR version {ir}, opset {opset}: it needs {which} (this is "
        f"{installed}); upgrade "
        "onnxruntime, or export the checkpoint again for an older runtime with "
        "`mnistcnn export --opset N` (opset 18: ONNX Runtime 1.14 or newer)"
    )


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
