"""Layer-by-layer model summaries (``mnistcnn explain model``)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from mnistcnn.cli import main
from mnistcnn.explain.layers import describe_layer
from mnistcnn.explain.model_summary import load_model_for_summary, summarize_model
from mnistcnn.models import create_model

TUTORIAL_SHAPES = [
    (10, 28, 28),
    (10, 28, 28),
    (10, 14, 14),
    (20, 10, 10),
    (20, 10, 10),
    (20, 5, 5),
    (500,),
    (250,),
    (250,),
    (100,),
    (100,),
    (10,),
]
TUTORIAL_PARAMS = [260, 0, 0, 5020, 0, 0, 0, 125250, 0, 25100, 0, 1010]
# conv1 10*28*28*(1*5*5) + 10*28*28 bias = 203,840; conv2 20*10*10*(10*5*5) + 2,000 = 502,000;
# linears 125,250 + 25,100 + 1,010 (weights + biases): 857,200 in all (torchinfo's count).
TUTORIAL_MACS = [203840, 0, 0, 502000, 0, 0, 0, 125250, 0, 25100, 0, 1010]
TUTORIAL_LINES = [
    "Conv2d(1,10,5,p=2): 28 -> (28 - 5 + 2*2)/1 + 1 = 28",
    "AvgPool2d(2,2): 28 -> (28 - 2)/2 + 1 = 14",
    "Conv2d(10,20,5): 14 -> (14 - 5)/1 + 1 = 10",
    "AvgPool2d(2,2): 10 -> (10 - 2)/2 + 1 = 5",
    "20 x 5 x 5 = 500: so the next layer, Linear(500,250), takes in_features = 500",
    "params: 10 x (1 x 5 x 5) + 10 = 260",
    "params: 20 x (10 x 5 x 5) + 20 = 5,020",
    "params: 500 x 250 + 250 = 125,250",
    "params: 250 x 100 + 100 = 25,100",
    "params: 100 x 10 + 10 = 1,010",
]


@pytest.fixture(scope="module")
def tutorial_summary():
    return summarize_model(create_model("tutorial"), label="tutorial")


def test_tutorial_table(tutorial_summary):
    s = tutorial_summary
    assert [r.output_shape for r in s.layers] == TUTORIAL_SHAPES
    assert [r.params for r in s.layers] == TUTORIAL_PARAMS
    assert [r.mult_adds for r in s.layers] == TUTORIAL_MACS
    assert (s.total_params, s.trainable_params, s.total_mult_adds) == (156640, 156640, 857200)
    assert s.input_shape == (1, 28, 28)
    assert [r.layer for r in s.layers][:7] == [
        "Conv2d(1,10,5,p=2)",
        "ReLU",
        "AvgPool2d(2,2)",
        "Conv2d(10,20,5)",
        "ReLU",
        "AvgPool2d(2,2)",
        "Flatten",
    ]


def test_tutorial_explanations(tutorial_summary):
    lines = [line for r in tutorial_summary.layers for line in r.explanation]
    for expected in TUTORIAL_LINES:
        assert expected in lines
    assert not any("actual" in line for line in lines)


def test_summary_leaves_model_weights_unchanged():
    model = create_model("tutorial").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    summarize_model(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training


class _Shared(nn.Module):
    """One conv called twice, and a parameter held by the container itself."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.scale = nn.Parameter(torch.ones(1))
        self.fc = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.conv(x)) * self.scale  # (N, 1, 28, 28)
        return self.fc(x.flatten(1))  # (N, 784) -> (N, 10)


def test_shared_module_and_container_parameters_counted_once():
    s = summarize_model(_Shared())
    assert [(r.name, r.params) for r in s.layers] == [
        ("_Shared", 1),
        ("conv", 10),
        ("conv", 0),
        ("fc", 7850),
    ]
    assert sum(r.params for r in s.layers) == s.total_params == 7861
    assert s.layers[0].mult_adds == 0
    assert s.total_mult_adds == 2 * (784 * 9 + 784) + 7850
    assert "its parameters are counted once" in s.layers[2].explanation[-1]
    assert "input 1 x 28 x 28 flattened in forward() = 784" in s.layers[3].explanation


class _Mixed(nn.Module):
    """Odd layers: stride, dilation, non-square kernel, ceil_mode, view() in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
            nn.BatchNorm2d(4),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(4, 6, 3, padding="same", groups=2, bias=False),
        )
        self.head = nn.Linear(6 * 8 * 3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, 6, 8, 3)
        return self.head(x.view(x.size(0), -1))  # (N, 144) -> (N, 5)


def test_odd_layers_arithmetic_matches_real_shapes():
    s = summarize_model(_Mixed(), input_shape=(3, 31, 11))
    assert [r.name for r in s.layers] == [
        "features.0",
        "features.1",
        "features.2",
        "features.3",
        "head",
    ]
    assert [r.output_shape for r in s.layers] == [
        (4, 16, 7),
        (4, 16, 7),
        (4, 8, 3),
        (6, 8, 3),
        (5,),
    ]
    lines = [line for r in s.layers for line in r.explanation]
    assert not any("actual" in line for line in lines)
    conv = "Conv2d(3,4,(3, 5),s=(2, 1),p=(1, 2),d=(1, 2))"
    assert s.layers[0].layer == conv
    assert f"{conv}: H 31 -> (31 - 3 + 2*1)/2 + 1 = 16" in lines
    assert f"{conv}: W 11 -> (11 - 2*(5 - 1) - 1 + 2*2)/1 + 1 = 7" in lines
    assert "MaxPool2d(3,2): H 16 -> ceil((16 - 3)/2) + 1 = ceil(13/2) + 1 = 7 + 1 = 8" in lines
    assert "params: 6 x (2 x 3 x 3) = 108" in lines
    assert "input 6 x 8 x 3 flattened in forward() = 144" in lines
    assert s.total_params == sum(p.numel() for p in _Mixed().parameters())


def test_describe_layer_other_modules():
    assert describe_layer(nn.Dropout(0.25)) == "Dropout(p=0.25, inplace=False)"
    assert describe_layer(nn.Flatten(0)) == "Flatten(start_dim=0, end_dim=-1)"
    assert describe_layer(nn.MaxPool2d(2)) == "MaxPool2d(2,2)"


def test_load_model_for_summary_requires_exactly_one():
    with pytest.raises(ValueError, match="exactly one"):
        load_model_for_summary()
    with pytest.raises(ValueError, match="exactly one"):
        load_model_for_summary("x.pt", "tutorial")
    model, label, shape = load_model_for_summary(model_name="tutorial")
    assert (label, shape, model.training) == ("tutorial", (1, 28, 28), False)


def _run(*args):
    return CliRunner().invoke(main, ["explain", "model", *args])


def test_cli_tutorial_table():
    result = _run("--model", "tutorial")
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in TUTORIAL_LINES:
        assert f"      {expected}\n" in out
    names = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3",
             "fc2", "relu4", "fc3"]  # fmt: skip
    rows = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.strip()}
    rows = {name: rows[name] for name in names}  # a row for every named layer
    assert rows["conv1"] == ["Conv2d(1,10,5,p=2)", "10", "x", "28", "x", "28", "260", "203,840"]
    assert rows["fc1"] == ["Linear(500,250)", "250", "125,250", "125,250"]
    assert rows["flatten"] == ["Flatten", "500", "0", "0"]
    assert "Total parameters: 156,640 (trainable 156,640)" in out
    assert "Total mult-adds:  857,200 per sample" in out


def test_cli_json():
    result = _run("--model", "tutorial", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["total_params"] == 156640 and data["total_mult_adds"] == 857200
    assert [layer["params"] for layer in data["layers"]] == TUTORIAL_PARAMS
    assert [layer["output_shape"] for layer in data["layers"]] == [list(s) for s in TUTORIAL_SHAPES]


def test_cli_checkpoint(tmp_path):
    from ckpt_files import write_v1_checkpoint

    model = create_model("tutorial")
    path = write_v1_checkpoint(
        tmp_path / "best.pt",
        {
            "model": {"name": "tutorial", "kwargs": {"num_classes": 10, "in_chans": 1}},
            "state_dict": model.state_dict(),
            "input_size": [1, 28, 28],
        },
    )
    result = _run(str(path))
    assert result.exit_code == 0, result.output
    assert f"Model: tutorial ({path})" in result.output
    assert "Total parameters: 156,640" in result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "exactly one"),
        (["--model", "nope"], 1, "unknown model 'nope'; valid models:"),
        (["missing.pt"], 1, "missing.pt"),
        (["--model", "tutorial", "--input-shape", "28"], 2, "--input-shape"),
        (["--model", "tutorial", "--input-shape", "1x20x20"], 1, "cannot run on input 1 x 20 x 20"),
        (
            ["--model", "tutorial", "--input-shape", "1x32x32"],
            1,
            "cannot run on input 1 x 32 x 32: Flatten gives 720 features but "
            "Linear(500,250) (layer fc1) expects 500; tutorial takes 1 x 28 x 28 inputs",
        ),
        (
            ["--model", "tutorial", "--input-shape", "3x28x28"],
            1,
            "the input has 3 channels but Conv2d(1,10,5,p=2) (layer conv1) expects 1",
        ),
        (
            ["--model", "tutorial", "--input-shape", "1x3x3"],
            1,
            "smaller than the 5 x 5 window of Conv2d(10,20,5) (layer conv2)",
        ),
        (
            ["--model", "tutorial", "--input-shape", "1x100000x100000"],
            2,
            "'--input-shape': input shape 1x100000x100000 is out of range: channels 1..64, "
            "height and width 1..1024",
        ),
        (["--model", "tutorial", "--input-shape", "65x28x28"], 2, "channels 1..64"),
    ],
)
def test_cli_errors(args, code, message):
    result = _run(*args)
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


def test_summarize_model_refuses_a_huge_shape_before_allocating():
    with pytest.raises(ValueError, match="height and width 1..1024"):
        summarize_model(create_model("tutorial"), input_shape=(1, 100_000, 100_000))
