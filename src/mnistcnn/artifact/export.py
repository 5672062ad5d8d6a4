"""Export a trained model as ONNX, TorchScript or a torch.export ExportedProgram.

:func:`export_model` turns a checkpoint (or a :class:`TrainedModel`) into one
file holding the graph of raw pixels float32 (N, C, H, W) in [0, 1] -> logits
float32 (N, K), with a dynamic batch dimension and the normalization inside,
plus the metadata a user needs (classes, normalization, input size, picture
preparation, temperature, model name, versions; :mod:`mnistcnn.artifact.export_meta`).

Before the file gets its name, the serialized graph is loaded back and run
against the PyTorch model on test images (:mod:`mnistcnn.artifact.parity`):
above 1e-4 largest |logit difference| or below 100 % top-1 agreement the
export is refused and nothing is written. The write is atomic.

Formats (PyTorch's exporters):

* ``onnx``: ``torch.onnx.export(dynamo=True)`` (needs ``onnx`` and
  ``onnxscript``; the check runs it in ONNX Runtime): ``pip install 'mnistcnn[onnx]'``.
  ``mnistcnn predict`` and ``serve`` run these files.
* ``exported-program``: ``torch.export.export`` + ``torch.export.save`` (``.pt2``);
  ``torch.export.load(path).module()`` runs it.
* ``torchscript``: ``torch.jit.trace`` + ``torch.jit.save``; ``torch.jit.load``
  runs it. Traced, not scripted: ``torch.jit.script`` fails on half the
  registered models (``super().forward`` in ``nn.Sequential`` subclasses); the
  parity check's batches of 1, 7 and 64 catch a trace that fixed the batch size.
  PyTorch deprecates TorchScript; prefer ``exported-program``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mnistcnn import __version__
from mnistcnn._io import atomic_write
from mnistcnn.artifact.export_meta import (
    INPUT_NAME,
    METADATA_FILE,
    METADATA_KEY,
    OUTPUT_NAME,
    dumps,
    export_metadata,
)
from mnistcnn.artifact.onnx_graph import INSTALL_HINT, open_onnx
from mnistcnn.artifact.onnx_model import OnnxModel
from mnistcnn.artifact.parity import (
    PARITY_IMAGES,
    Parity,
    ParityError,
    check_parity,
    load_parity_images,
)
from mnistcnn.artifact.trained import TrainedModel
from mnistcnn.errors import MnistcnnError
from mnistcnn.models.fast_path import set_fast_path

log = logging.getLogger(__name__)

#: ONNX opsets ``opset`` accepts (``torch.onnx``'s ONNX_MIN_OPSET .. ONNX_MAX_OPSET).
#: PyTorch's dynamo exporter writes 18 and up itself and goes lower through ONNX's
#: version converter, which manages some graphs (the tutorial model down to 15) and
#: not others: an opset it could not reach is refused, naming the one it wrote.
MIN_OPSET, MAX_OPSET = 7, 23
#: The opset written by default (``torch.onnx``'s ONNX_DEFAULT_OPSET).
DEFAULT_OPSET = 20
#: Export formats and the file suffix each gets by default.
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript", "exported-program": ".pt2"}
FORMATS = tuple(SUFFIXES)

Logits = Callable[[torch.Tensor], torch.Tensor]


class ExportError(MnistcnnError):
    """The model cannot be exported as asked (format, destination, exporter failure)."""


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_model` wrote.

    Attributes:
        path: the file written.
        format: ``onnx``, ``torchscript`` or ``exported-program``.
        size_bytes: the file's size in bytes.
        export_seconds: graph capture and serialization, wall-clock seconds.
        parity_seconds: loading the file back and the parity check, seconds.
        parity: the check's result (:class:`~mnistcnn.artifact.parity.Parity`).
        source: the checkpoint exported (``""`` for a model given as an object).
        metadata: the document embedded in the file.
    """

    path: Path
    format: str
    size_bytes: int
    export_seconds: float
    parity_seconds: float
    parity: Parity
    source: str
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the metadata left out)."""
        return {
            "path": str(self.path),
            "format": self.format,
            "size_bytes": self.size_bytes,
            "export_seconds": round(self.export_seconds, 3),
            "parity_seconds": round(self.parity_seconds, 3),
            "parity": self.parity.to_dict(),
            "source": self.source,
            "model": self.metadata["model"]["name"],
        }


def default_out(checkpoint: str | os.PathLike[str], fmt: str) -> Path:
    """Where an export goes when not told: beside the checkpoint, its suffix changed.

    ``runs/a/best.pt`` -> ``runs/a/best.onnx`` / ``best.torchscript`` / ``best.pt2``;
    a run folder ``runs/a`` -> ``runs/a/best.onnx`` (and so on).
    """
    path = Path(checkpoint)
    if path.is_dir():
        path = path / "best.pt"
    return path.with_suffix(SUFFIXES[fmt])


def export_model(
    model: TrainedModel | str | os.PathLike[str],
    fmt: str = "onnx",
    out: str | os.PathLike[str] | None = None,
    *,
    parity_images: int = PARITY_IMAGES,
    data_root: str | os.PathLike[str] | None = None,
    mirror: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    opset: int | None = None,
) -> ExportReport:
    """Export ``model`` (a checkpoint path, a run folder or a TrainedModel) as ``fmt`` to ``out``.

    Args:
        model: what to export; a TrainedModel is copied to the CPU, not changed.
        fmt: ``onnx``, ``torchscript`` or ``exported-program``.
        out: the file to write; default :func:`default_out` (needed for a TrainedModel).
        parity_images: test images of the parity check (>= 1); see
            :func:`~mnistcnn.artifact.parity.load_parity_images` for where they come from.
        data_root, mirror: where the dataset is (as for training).
        overwrite: replace an existing file at ``out`` (never the checkpoint itself).
        opset: ONNX only: the ``ai.onnx`` opset of the graph, :data:`MIN_OPSET` ..
            :data:`MAX_OPSET` (None: :data:`DEFAULT_OPSET`); the file gets the
            lowest IR version that opset allows (ONNX's own table,
            ``onnx.helper.VERSION_TABLE``), so an older ONNX Runtime reads it
            (:func:`~mnistcnn.artifact.onnx_graph.runtime_needed`). Recorded in
            the metadata (``onnx``: ``{"opset", "ir_version"}``); the parity
            check runs the file written at that opset.

    Returns:
        The :class:`ExportReport` (path, size, times, parity).

    Raises:
        ExportError: unknown format, an opset out of range or given for another
            format than ONNX, a destination that is the checkpoint or
            exists (without ``overwrite``), an exporter that fails, or missing
            onnx/onnxscript (the message says ``pip install 'mnistcnn[onnx]'``).
        ParityError: the exported graph is off by more than 1e-4 or disagrees
            on a top-1 class; nothing is written.
        CheckpointError: unreadable checkpoint; onnxruntime missing (ONNX).
        OSError: the destination cannot be written.
    """
    if fmt not in SUFFIXES:
        raise ExportError(f"format {fmt!r} is not one of {', '.join(FORMATS)}", setting="format")
    if parity_images < 1:
        raise ExportError(f"parity_images {parity_images} must be >= 1", setting="parity_images")
    _check_opset(opset, fmt)
    net, source = _cpu_model(model)
    if out is None and not source:
        raise ExportError("out: give the file to write a model object to", setting="out")
    path = Path(out) if out is not None else default_out(source, fmt)
    other = {v: k for k, v in SUFFIXES.items()}.get(path.suffix.lower())
    if other is not None and other != fmt:  # model.torchscript holding ONNX: read as the wrong kind
        raise ExportError(
            f"out: {path} is named like a{'n' if other[0] in 'aeiou' else ''} {other} file but "
            f"the format is {fmt}; name it {path.with_suffix(SUFFIXES[fmt]).name} or give "
            f"--format {other}",
            setting="out",
        )
    _check_destination(path, source, overwrite)
    exporter = _EXPORTERS[fmt]
    meta = export_metadata(
        net,
        fmt,
        source=Path(source).name if source else "",
        exported_with=_versions(fmt),
    )
    start = time.perf_counter()
    with _quiet():
        if fmt == "onnx":
            graph = exporter.capture(net, opset or DEFAULT_OPSET)
            meta["onnx"] = {"opset": _Onnx.opset(graph), "ir_version": int(graph.ir_version)}
        else:
            graph = exporter.capture(net)
        blob = exporter.serialize(graph, meta)
    export_seconds = time.perf_counter() - start
    images, described = load_parity_images(
        net.dataset,
        parity_images,
        data_root=data_root,
        mirror=mirror,
        input_size=tuple(net.input_size),  # type: ignore[arg-type]
    )
    start = time.perf_counter()
    with _quiet():
        try:
            runner = exporter.load(blob)
        except MnistcnnError:
            raise
        except Exception as exc:
            raise ExportError(f"the {fmt} file cannot be loaded back: {exc}") from None
    parity = check_parity(net, runner, images, described)
    parity_seconds = time.perf_counter() - start
    if not parity.passed:
        raise ParityError(
            f"refused to write {path}: the {fmt} graph differs from the PyTorch model on "
            f"{described}; largest |logit difference| {parity.max_abs_logit_difference:.1e} "
            f"(at most 1.0e-04 allowed), top-1 agreement {parity.top1_agreement:.2%} "
            "(100% needed)"
        )
    meta["parity"] = parity.to_dict()
    with _quiet():
        blob = exporter.serialize(graph, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, blob)
    log.info("exported %s as %s to %s (%d bytes)", source or "the model", fmt, path, len(blob))
    return ExportReport(path, fmt, len(blob), export_seconds, parity_seconds, parity, source, meta)


def _check_opset(opset: int | None, fmt: str) -> None:
    if opset is None:
        return
    if fmt != "onnx":
        raise ExportError(f"opset {opset}: only an ONNX export has an opset", setting="opset")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(
            f"opset {opset} is not supported: choose {MIN_OPSET} to {MAX_OPSET} "
            f"(default {DEFAULT_OPSET})",
            setting="opset",
        )


def _cpu_model(model: TrainedModel | str | os.PathLike[str]) -> tuple[TrainedModel, str]:
    """(the model on the CPU, eval mode, fast paths off; the checkpoint path or "")."""
    if isinstance(model, OnnxModel):
        raise ExportError(f"{model.path}: already an ONNX export; export its checkpoint instead")
    if isinstance(model, TrainedModel):
        net = copy.deepcopy(model).cpu()
        source = ""
    else:
        from mnistcnn.artifact import load

        net = load(model)
        assert net.checkpoint is not None
        source = str(net.checkpoint.path)
    return set_fast_path(net.eval(), False), source  # exporters must see the plain graph


def _check_destination(path: Path, source: str, overwrite: bool) -> None:
    if source and path.resolve() == Path(source).resolve():
        raise ExportError(
            f"out {path} is the checkpoint itself: choose another file", setting="out"
        )
    if path.is_dir():
        raise ExportError(f"out {path} is a folder: give a file name", setting="out")
    if path.exists() and not overwrite:
        raise ExportError(f"{path} exists; pass overwrite to replace it", setting="overwrite")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' deprecation warnings and progress lines go to the debug log, not stdout;
    their loggers' warnings (an opset converted down, the converter's traceback when it
    cannot) are silenced: the export's own error says what failed."""
    text = io.StringIO()
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        with warnings.catch_warnings(), contextlib.redirect_stdout(text):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
    if text.getvalue().strip():
        log.debug("exporter output:\n%s", text.getvalue().rstrip())


def _versions(fmt: str) -> dict[str, str]:
    from importlib import metadata

    found = {"mnistcnn": __version__, "torch": str(torch.__version__)}
    extra = ("onnx", "onnxscript", "onnxruntime") if fmt == "onnx" else ()
    for name in extra:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def _example(model: TrainedModel) -> torch.Tensor:
    """float32 (2, C, H, W): a batch of 2, so the exporters do not take the batch as constant."""
    return torch.rand(2, *model.input_size, generator=torch.Generator().manual_seed(0))


def _dynamic_batch() -> dict[str, dict[int, Any]]:
    return {INPUT_NAME: {0: torch.export.Dim("batch", min=1)}}


class _Onnx:
    """ONNX: the dynamo exporter's ModelProto; metadata in ``metadata_props``."""

    @staticmethod
    def opset(proto: Any) -> int:
        """The ``ai.onnx`` opset a ModelProto imports."""
        return next(int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx"))

    @staticmethod
    def capture(model: TrainedModel, opset: int = DEFAULT_OPSET) -> Any:
        try:
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError as exc:
            raise ExportError(f"ONNX export needs {exc.name}: {INSTALL_HINT}") from None
        # The exporter's own modules, imported here rather than inside it: a Ctrl-C during
        # these seconds of imports is then a KeyboardInterrupt (the command's "interrupted"),
        # not a half-imported torch._dynamo that the exporter reports as a failed export.
        import torch._dynamo  # noqa: F401
        import torch.export  # noqa: F401
        import torch.onnx._internal.exporter  # noqa: F401

        try:
            program = torch.onnx.export(
                model,
                (_example(model),),
                None,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=_dynamic_batch(),
                dynamo=True,
                opset_version=opset,
                verbose=False,
            )
        except Exception as exc:  # the exporter's many error types
            raise ExportError(
                f"model {model.model_name!r} cannot be exported as ONNX at opset {opset}: {exc}"
            ) from None
        assert program is not None  # f=None: the program is returned
        proto = program.model_proto
        got = _Onnx.opset(proto)
        if got != opset:
            raise ExportError(
                f"opset {opset}: PyTorch's ONNX exporter could not convert model "
                f"{model.model_name!r} down to it (it wrote opset {got}); choose an opset "
                f"from {got} to {MAX_OPSET}",
                setting="opset",
            )
        from onnx.helper import find_min_ir_version_for

        # the lowest IR version the opset allows, not the exporter's newest: older runtimes read it
        proto.ir_version = find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)
        return proto

    @staticmethod
    def serialize(proto: Any, meta: dict[str, Any]) -> bytes:
        others = [(p.key, p.value) for p in proto.metadata_props if p.key != METADATA_KEY]
        del proto.metadata_props[:]  # the proto is this export's own: changed in place
        for key, value in [*others, (METADATA_KEY, dumps(meta))]:
            proto.metadata_props.add(key=key, value=value)
        proto.doc_string = f"mnistcnn {meta['model']['name']}: pixels in [0, 1] -> logits"
        try:
            return proto.SerializeToString()
        except ValueError as exc:  # protobuf's 2 GiB limit
            raise ExportError(f"the ONNX graph cannot be serialized: {exc}") from None

    @staticmethod
    def load(blob: bytes) -> Logits:
        from mnistcnn.artifact.onnx_model import OnnxNet

        return OnnxNet(open_onnx(blob))  # the way predict opens the file


class _TorchScript:
    """TorchScript: ``torch.jit.trace``; metadata in ``_extra_files``."""

    @staticmethod
    def capture(model: TrainedModel) -> Any:
        try:
            return torch.jit.trace(model, (_example(model),), check_trace=False)
        except Exception as exc:
            raise ExportError(f"model {model.model_name!r} cannot be traced: {exc}") from None

    @staticmethod
    def serialize(traced: Any, meta: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={METADATA_FILE: dumps(meta)})
        return buffer.getvalue()

    @staticmethod
    def load(blob: bytes) -> Logits:
        return torch.jit.load(io.BytesIO(blob), map_location="cpu")


class _ExportedProgram:
    """torch.export: an ExportedProgram with a dynamic batch; metadata in ``extra_files``."""

    @staticmethod
    def capture(model: TrainedModel) -> Any:
        try:
            return torch.export.export(model, (_example(model),), dynamic_shapes=_dynamic_batch())
        except Exception as exc:
            raise ExportError(f"model {model.model_name!r} cannot be exported: {exc}") from None

    @staticmethod
    def serialize(program: Any, meta: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        torch.export.save(program, buffer, extra_files={METADATA_FILE: dumps(meta)})
        return buffer.getvalue()

    @staticmethod
    def load(blob: bytes) -> Logits:
        return torch.export.load(io.BytesIO(blob)).module()


_EXPORTERS: dict[str, Any] = {
    "onnx": _Onnx,
    "torchscript": _TorchScript,
    "exported-program": _ExportedProgram,
}
