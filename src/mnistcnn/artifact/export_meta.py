"""The metadata an exported model carries: what a checkpoint says, minus the training state.

An exported file (ONNX, TorchScript, ExportedProgram; :mod:`mnistcnn.artifact.export`)
holds the graph of the :class:`~mnistcnn.artifact.trained.TrainedModel`: raw
pixels float32 (N, C, H, W) in [0, 1] in (the normalization is *inside* the
graph), logits float32 (N, classes) out. Beside the graph it holds one JSON
document, :data:`METADATA_KEY`, with everything needed to use it::

    format, format_version  "mnistcnn.export", 1
    exported_as             "onnx" | "torchscript" | "exported-program"
    input                   {"name": "x", "dtype": "float32", "shape": ["batch", C, H, W],
                             "range": [0, 1], "normalized_in_graph": true}
    output                  {"name": "logits", "dtype": "float32", "shape": ["batch", K]}
    model                   {"name", "kwargs"}: the registered architecture
    classes, normalization, input_size, preparation, precision, dataset, calibration,
    epoch, step, metrics, best, config, versions
                            the checkpoint's fields (see :mod:`mnistcnn.artifact.schema`);
                            ``config`` without local paths (``data_root``, ``mirror``)
    temperature             the calibration temperature T (1.0 when not calibrated)
    parameters              number of trainable parameters
    source                  the checkpoint's file name
    exported_with           {"mnistcnn", "torch", ...}: versions at export
    parity                  the check run at export (:class:`mnistcnn.artifact.parity.Parity`)
    onnx                    ONNX files only: {"opset", "ir_version"} of the graph

Where it sits: ONNX ``metadata_props`` (ONNX Runtime:
``session.get_modelmeta().custom_metadata_map``), TorchScript ``_extra_files``
and ``torch.export.save``'s ``extra_files`` (both the zip member
``<archive>/extra/mnistcnn.json``).

Reading the document (:func:`parse`, :func:`checkpoint_of`) imports no torch:
``mnistcnn predict model.onnx`` runs on ONNX Runtime alone.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistcnn.artifact.schema import FORMAT, FORMAT_VERSION, Checkpoint, from_dict
from mnistcnn.errors import CheckpointError

if TYPE_CHECKING:
    from mnistcnn.artifact.trained import TrainedModel

#: The ONNX ``metadata_props`` key / the extra file's name (``mnistcnn.json``) of the document.
METADATA_KEY = "mnistcnn"
METADATA_FILE = "mnistcnn.json"
EXPORT_FORMAT = "mnistcnn.export"
EXPORT_FORMAT_VERSION = 1
INPUT_NAME, OUTPUT_NAME = "x", "logits"

#: Checkpoint fields copied into the document (the rest is training state: weights
#: live in the graph; optimizer, RNG, history and resume position are left out).
_CHECKPOINT_FIELDS = (
    "classes", "normalization", "input_size", "preparation", "precision", "dataset",
    "calibration", "epoch", "step", "metrics", "best", "config", "versions",
)  # fmt: skip


#: Training settings that are paths on the machine that trained: not put in a file to share.
_LOCAL_PATHS = frozenset(("data_root", "mirror", "out", "out_dir", "run_dir"))


def export_metadata(model: TrainedModel, exported_as: str, **more: Any) -> dict[str, Any]:
    """The metadata document of ``model`` exported as ``exported_as`` (JSON-ready).

    Fields come from ``model.checkpoint`` when the model was loaded from one
    (epoch, metrics, config, training versions...), else from the model alone;
    ``more`` (``source``, ``exported_with``, ``parity``) is added as given.
    """
    ckpt = model.checkpoint or Checkpoint.of(model)
    c, h, w = model.input_size
    meta: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "exported_as": exported_as,
        "input": {
            "name": INPUT_NAME,
            "dtype": "float32",
            "shape": ["batch", c, h, w],
            "range": [0.0, 1.0],
            "normalized_in_graph": True,
        },
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", len(model.classes)]},
        "model": {"name": model.model_name, "kwargs": dict(model.model_kwargs)},
        **{name: getattr(ckpt, name) for name in _CHECKPOINT_FIELDS},
        # the model's own values win over its checkpoint's (a calibration set after loading)
        "classes": list(model.classes),
        "normalization": {"mean": model.mean, "std": model.std},
        "calibration": model.calibration,
        "config": {k: v for k, v in ckpt.config.items() if k not in _LOCAL_PATHS},
        "temperature": model.temperature,
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    meta.update(more)
    return meta


def dumps(meta: dict[str, Any]) -> str:
    """``meta`` as compact JSON; tensors and numpy values become lists/numbers, others text."""
    return json.dumps(meta, default=_plain, separators=(",", ":"), allow_nan=True)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # tensors, numpy arrays and scalars
        return value.tolist()
    return str(value)


def parse(path: Path, text: str | bytes) -> dict[str, Any]:
    """The checked metadata document ``text`` of the exported file at ``path``.

    Raises:
        CheckpointError: not JSON, not an mnistcnn export document, or of a newer version.
    """
    try:
        meta = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: its mnistcnn metadata is not JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f"{path}: its metadata is not an mnistcnn export's")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: export format version {version!r} is not valid")
    if version > EXPORT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: export format version {version} is newer than this mnistcnn understands "
            f"({EXPORT_FORMAT_VERSION}); upgrade mnistcnn"
        )
    temperature = meta.get("temperature", 1.0)
    if (
        not isinstance(temperature, (int, float))
        or not math.isfinite(temperature)
        or (temperature <= 0)
    ):
        raise CheckpointError(f"{path}: metadata temperature {temperature!r} is not > 0")
    return meta


def checkpoint_of(path: Path, meta: dict[str, Any]) -> Checkpoint:
    """The :class:`Checkpoint` an exported file describes (provenance; no weights, no training
    state), checked as a checkpoint file is (:func:`~mnistcnn.artifact.schema.from_dict`).

    Raises:
        CheckpointError: a field of the wrong type or content (named).
    """
    raw = {name: meta.get(name) for name in _CHECKPOINT_FIELDS}
    raw.update(format=FORMAT, format_version=FORMAT_VERSION, model=meta.get("model"), state_dict={})
    return from_dict(path, raw)


def read_export_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata document of an exported file, without running or unpickling anything.

    ONNX files are read with the ``onnx`` package (graph weights not loaded);
    TorchScript and ExportedProgram files are zip archives whose member
    ``<archive>/extra/mnistcnn.json`` is read directly.

    Raises:
        CheckpointError: missing file, not an export of mnistcnn (no metadata),
            bad metadata, or an ONNX file without the ``onnx`` package installed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file", path=path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(f"/extra/{METADATA_FILE}")]
            if not names:
                raise CheckpointError(f"{path}: a zip archive without mnistcnn export metadata")
            return parse(path, archive.read(names[0]))
    try:
        import onnx
    except ImportError:
        raise CheckpointError(
            f"{path}: reading ONNX metadata needs the onnx package: pip install 'mnistcnn[onnx]'"
        ) from None
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for a non-ONNX file
        raise CheckpointError(f"{path}: not an ONNX model: {exc}") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise CheckpointError(f"{path}: an ONNX model without mnistcnn metadata")
    return parse(path, props[METADATA_KEY])
