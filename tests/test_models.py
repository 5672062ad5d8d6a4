import pytest
import torch

from mnistcnn.models import create_model, list_models
from mnistcnn.models.outputs import split_logits

TUTORIAL_LAYERS = [
    ("conv1", "Conv2d"), ("relu1", "ReLU"), ("pool1", "AvgPool2d"),
    ("conv2", "Conv2d"), ("relu2", "ReLU"), ("pool2", "AvgPool2d"), ("flatten", "Flatten"),
    ("fc1", "Linear"), ("relu3", "ReLU"), ("fc2", "Linear"), ("relu4", "ReLU"), ("fc3", "Linear"),
]  # fmt: skip


def test_tutorial_parameter_count_and_layers():
    model = create_model("tutorial")
    assert sum(p.numel() for p in model.parameters()) == 156_640
    layers = list(model.children())
    per_layer = [sum(p.numel() for p in m.parameters()) for m in layers if list(m.parameters())]
    assert per_layer == [260, 5020, 125_250, 25_100, 1010]
    named = [(n, type(m).__name__) for n, m in model.named_children()]
    assert named == TUTORIAL_LAYERS
    assert list(model.state_dict()) == [
        f"{n}.{p}" for n in ("conv1", "conv2", "fc1", "fc2", "fc3") for p in ("weight", "bias")
    ]


def test_tutorial_shape_trace():
    model = create_model("tutorial")
    x = torch.zeros(2, 1, 28, 28)
    shapes = {}
    for name, layer in model.named_children():  # in forward order
        x = layer(x)
        shapes[name] = tuple(x.shape[1:])
    assert shapes["conv1"] == (10, 28, 28)  # conv 5x5 pad 2 keeps 28
    assert shapes["pool1"] == (10, 14, 14)  # avg-pool 2
    assert shapes["conv2"] == (20, 10, 10)  # conv 5x5: 14 - 5 + 1
    assert shapes["pool2"] == (20, 5, 5)
    assert shapes["flatten"] == (500,)  # 20 * 5 * 5
    assert shapes["fc3"] == (10,)
    assert torch.equal(x, model(torch.zeros(2, 1, 28, 28)))  # forward runs them in this order


@pytest.mark.parametrize("name", list_models())
def test_every_model_returns_logits_and_gets_gradients(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7)
    x = torch.rand(3, 1, 28, 28)
    out, aux = split_logits(model(x))  # GoogLeNet adds auxiliary logits in training mode
    assert out.shape == (3, 7) and all(a.shape == (3, 7) for a in aux)
    assert torch.isfinite(out).all()
    sum(o.logsumexp(1).sum() for o in (out, *aux)).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="valid models: .*tutorial"):
        create_model("lenet-9000")


@pytest.mark.parametrize(
    "name, params",
    [
        ("fastcnn", 24_314),
        ("tinycnn", 24_314),
        ("s2dcnn", 39_802),
        ("bncnn", 278_890),
        ("bncnn-wide", 625_690),
    ],
)
def test_documented_parameter_counts(name, params):
    assert sum(p.numel() for p in create_model(name).parameters()) == params
