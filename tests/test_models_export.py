"""Every registered model exports with a dynamic batch: torch.export, ONNX, TorchScript.

Exported programs and ONNX Runtime sessions are compared with the eager model
at batch 1, 7 and 64 (one export each). The tutorial model also scripts with
``torch.jit.script``, and its old ``nn.Sequential`` state dicts (``0.weight``)
still load.
"""

import io
import warnings

import pytest
import torch
from torch import nn

from mnistcnn.models import create_model, list_models, set_fast_path
from mnistcnn.models.tutorial import LEGACY_LAYER_NAMES

BATCHES = (1, 7, 64)


def _model(name: str) -> nn.Module:
    """Seeded ``name`` in eval mode, BatchNorm statistics made non-trivial."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def _inputs() -> dict[int, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return {n: torch.rand(n, 1, 28, 28, generator=gen) for n in BATCHES}


def _dynamic_batch() -> dict[str, dict[int, torch.export.Dim]]:
    return {"x": {0: torch.export.Dim("batch", min=1, max=1024)}}


@pytest.mark.parametrize(
    ("name", "fast_path"),
    [(n, False) for n in list_models()] + [("tutorial", True)],  # only the tutorial has one
)
def test_torch_export_with_a_dynamic_batch(name, fast_path):
    model = set_fast_path(_model(name), fast_path)  # fast_path: no effect on the export
    example = torch.rand(2, 1, 28, 28)
    program = torch.export.export(model, (example,), dynamic_shapes=_dynamic_batch())
    exported = program.module()
    with torch.no_grad():
        for n, x in _inputs().items():
            diff = (exported(x) - model(x)).abs().max().item()
            assert diff <= 1e-5, (name, n, diff)


@pytest.mark.parametrize("name", ["tutorial"])  # every model: tests/test_export.py
def test_onnx_export_with_a_dynamic_batch_runs_in_onnxruntime(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")  # torch.onnx.export(dynamo=True) needs it
    model = set_fast_path(_model(name), True)  # the exporter must still see the plain graph
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's progress and deprecation notes
        torch.onnx.export(
            model,
            (torch.rand(2, 1, 28, 28),),
            str(path),
            input_names=["x"],
            output_names=["logits"],
            dynamic_shapes=_dynamic_batch(),
            dynamo=True,
            verbose=False,
        )
    graph = onnx.load(str(path)).graph
    batch_dim = graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")  # symbolic
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        for n, x in _inputs().items():
            (logits,) = session.run(["logits"], {"x": x.numpy()})
            assert logits.shape == (n, 10)
            diff = (torch.from_numpy(logits) - model(x)).abs().max().item()
            assert diff <= 1e-4, (name, n, diff)


@pytest.mark.parametrize("fast_path", [False, True])
def test_tutorial_scripts_and_gives_the_eager_logits(fast_path):
    model = set_fast_path(_model("tutorial"), fast_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        scripted = torch.jit.script(model)
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
        buffer.seek(0)
        loaded = torch.jit.load(buffer)
    with torch.no_grad():
        for x in _inputs().values():
            assert torch.allclose(scripted(x), model(x), atol=1e-5)  # fast path: rounding only
            assert torch.equal(loaded(x), scripted(x))


def _legacy(state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """The keys the nn.Sequential version wrote: conv1.weight -> 0.weight, ..."""
    old = {new: index for index, new in LEGACY_LAYER_NAMES.items()}
    out = {}
    for key, value in state.items():
        layer, rest = key.split(".", 1)
        out[f"{prefix}{old[layer]}.{rest}"] = value
    return out


def test_old_sequential_state_dict_loads_strictly():
    source = _model("tutorial")
    legacy = _legacy(source.state_dict())
    assert list(legacy) == [
        "0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias",
        "9.weight", "9.bias", "11.weight", "11.bias",
    ]  # fmt: skip
    model = create_model("tutorial")
    result = model.load_state_dict(legacy, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert "0.weight" in legacy  # the caller's dict is not changed


class _Wrapped(nn.Module):
    """A model held as ``.net`` next to normalization buffers, as the engine wraps models."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(1))
        self.net = create_model("tutorial")


def test_old_state_dict_loads_when_the_model_is_nested():
    source = _model("tutorial")
    legacy = {"mean": torch.full((1,), 0.13), **_legacy(source.state_dict(), prefix="net.")}
    wrapped = _Wrapped()
    result = wrapped.load_state_dict(legacy, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(wrapped.net.fc3.bias, source.fc3.bias)
    assert wrapped.mean.item() == pytest.approx(0.13)
    # new-style nested keys load too, and keys outside the prefix are never renamed
    wrapped.load_state_dict({"mean": torch.zeros(1), **_prefixed(source.state_dict())})
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "0\.weight"'):
        wrapped.load_state_dict({**legacy, "0.weight": source.conv1.weight})


def _prefixed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"net.{k}": v for k, v in state.items()}


def test_old_and_new_key_together_is_refused():
    model = create_model("tutorial")
    state = dict(model.state_dict())
    state["0.weight"] = state["conv1.weight"].clone()
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "0\.weight"'):
        model.load_state_dict(state, strict=True)
