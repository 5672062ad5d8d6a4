"""An exported ``.onnx`` run by ONNX Runtime alone: numpy pixels in, numpy logits out, no torch.

:func:`open_onnx` opens a file written by ``mnistcnn export --format onnx``
(:mod:`mnistcnn.artifact.export`) as an :class:`OnnxGraph`: the ONNX Runtime
session, the file's metadata (:mod:`mnistcnn.artifact.export_meta`) read into
the :class:`~mnistcnn.artifact.schema.Checkpoint` it describes, and
:meth:`OnnxGraph.logits` (float32 pixels (N, C, H, W) in [0, 1] -> float32
logits (N, K); the normalization is inside the graph). It knows its classes,
preparation and calibration temperature as a trained model does
(:class:`~mnistcnn.artifact.model_info.ModelInfo`).

Nothing here imports torch: ``mnistcnn predict model.onnx`` on the CPU runs
on this alone (:meth:`mnistcnn.predict.Predictor.from_checkpoint`). The
PyTorch face of the same graph, for everything that takes an ``nn.Module``, is
:class:`~mnistcnn.artifact.onnx_model.OnnxModel`, built on an OnnxGraph.

ONNX Runtime is an optional dependency: ``pip install 'mnistcnn[onnx]'``.
An ONNX file is a protobuf graph: loading it executes no Python code.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mnistcnn._io import sniff_file
from mnistcnn.artifact.export_meta import METADATA_KEY, checkpoint_of, parse
from mnistcnn.artifact.model_info import ModelInfo
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


def session_threads() -> int:
    """The intra-op threads of a session: those torch computes with, without importing it.

    ``torch.get_num_threads()`` when torch is loaded (so ``torch.set_num_threads``,
    ``mnistcnn serve --torch-threads``, limits both runtimes alike); else
    ``$OMP_NUM_THREADS`` when it is a positive integer (torch's own rule); else 0,
    ONNX Runtime's default (one thread per physical core, as torch's default).
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else 0


def inference_session(model: str | bytes, device: str = "cpu") -> Any:
    """An ONNX Runtime session over a file path or the bytes of a model.

    Runs on the CPU (``CPUExecutionProvider``), or on CUDA for ``device``
    ``"cuda"`` (a device type, as ``torch.device(...).type``) when ONNX Runtime
    has that provider (else the CPU, with a warning). Its intra-op threads:
    :func:`session_threads`.

    Raises:
        CheckpointError: onnxruntime is not installed, or cannot read the model.
    """
    ort = import_onnxruntime("running an .onnx model")
    options = ort.SessionOptions()
    options.intra_op_num_threads = session_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no per-session warnings on stderr
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
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


class OnnxGraph(ModelInfo):
    """An exported model run by ONNX Runtime, without torch.

    Args:
        session: an ONNX Runtime ``InferenceSession`` of the graph.
        metadata: the file's checked metadata document
            (:func:`~mnistcnn.artifact.export_meta.parse`).
        path: where the graph was read (named in errors).

    Attributes:
        session: the ONNX Runtime session.
        metadata: the whole metadata document.
        path: the file.
        checkpoint: the :class:`~mnistcnn.artifact.schema.Checkpoint` the file
            describes (provenance; no weights, no training state).
        classes, model_name, model_kwargs, dataset, input_size, preparation,
            calibration, mean, std: the checkpoint's (see
            :class:`~mnistcnn.artifact.trained.TrainedModel`).
        precision: ``"fp32"``: the graph computes in float32 whatever the
            training used (the trained one is ``checkpoint.precision``).

    Raises:
        CheckpointError: a metadata field of the wrong type or content (named),
            or a graph whose inputs and outputs are not one (batch, *input_size)
            input and one (batch, len(classes)) output.
    """

    def __init__(self, session: Any, metadata: dict[str, Any], path: Path) -> None:
        self.session = session
        self.metadata = metadata
        self.path = Path(path)
        ckpt = self.checkpoint = checkpoint_of(self.path, metadata)
        self.classes = list(ckpt.classes)
        self.model_name, self.model_kwargs = ckpt.model_name, dict(ckpt.model_kwargs)
        self.dataset, self.input_size = ckpt.dataset, list(ckpt.input_size)
        self.preparation, self.calibration = dict(ckpt.preparation), ckpt.calibration
        self.mean, self.std = ckpt.mean, ckpt.std
        self.precision = "fp32"
        self.input_name, self.output_name = self._check_signature()

    def _check_signature(self) -> tuple[str, str]:
        """(input name, output name) of a graph mapping (batch, *input_size) to
        (batch, len(classes)); else CheckpointError."""
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise CheckpointError(
                f"{self.path}: the graph has {len(inputs)} inputs and {len(outputs)} outputs; "
                "expected 1 and 1"
            )
        shape_in, shape_out = list(inputs[0].shape), list(outputs[0].shape)
        if shape_in[1:] != self.input_size or shape_out[1:] != [len(self.classes)]:
            raise CheckpointError(
                f"{self.path}: the graph maps {shape_in} to {shape_out}, but its metadata says "
                f"{['batch', *self.input_size]} to {['batch', len(self.classes)]}"
            )
        return inputs[0].name, outputs[0].name

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        """float32 (N, C, H, W) pixels in [0, 1] -> float32 (N, len(classes)) logits.

        The graph normalizes its input itself (no softmax, no temperature).
        Other float dtypes are converted to float32 first.

        Raises:
            onnxruntime's errors for an array of another shape than (N, *input_size).
        """
        x = np.ascontiguousarray(pixels, dtype=np.float32)
        (out,) = self.session.run([self.output_name], {self.input_name: x})
        return np.asarray(out, dtype=np.float32)

    def __repr__(self) -> str:
        return (
            f"OnnxGraph(onnx={self.path.name!r}, model={self.model_name!r}, "
            f"dataset={self.dataset!r}, classes={len(self.classes)})"
        )


def open_onnx(model: str | os.PathLike[str] | bytes, device: str = "cpu") -> OnnxGraph:
    """Open an ``.onnx`` written by ``mnistcnn export`` (a path, or the file's bytes) with
    ONNX Runtime alone, as an :class:`OnnxGraph`. Imports no torch.

    Args:
        model: the ``.onnx`` file, or its bytes (named ``<exported ONNX graph>`` in errors).
        device: ``"cpu"``, or ``"cuda"`` (ONNX Runtime's CUDA provider when it has
            one, else the CPU with a warning); the logits come back as numpy arrays.

    Raises:
        CheckpointError: missing file, onnxruntime not installed (the message
            says ``pip install 'mnistcnn[onnx]'``), not a readable ONNX model,
            an ONNX model not exported by mnistcnn (no metadata: its classes
            and preparation are unknown), bad metadata, or a graph whose
            input/output shapes disagree with it.
    """
    source: str | bytes
    if isinstance(model, bytes):
        path, source = Path("<exported ONNX graph>"), model
    else:
        path = Path(model)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such file", path=path)
        source = str(path)
    session = inference_session(source, device)
    custom = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in custom:
        raise CheckpointError(
            f"{path}: an ONNX model without mnistcnn metadata (its classes and picture "
            "preparation are unknown); export one with `mnistcnn export CKPT --format onnx`",
            path=path,
        )
    return OnnxGraph(session, parse(path, custom[METADATA_KEY]), path)
