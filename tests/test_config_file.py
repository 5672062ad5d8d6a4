"""``train --config FILE`` (mnistcnn.config.files) and ``--print-config``."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnistcnn.cli import main
from mnistcnn.config import RECIPES, TrainConfig, recipe_config
from mnistcnn.config.files import read_config_file, resolve_config
from mnistcnn.data.loaders import TensorSource
from mnistcnn.engine import session
from mnistcnn.errors import SettingError

FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]


def train(*args: str):
    return CliRunner().invoke(main, ["train", *args])


def printed(*args: str) -> dict:
    result = train(*args, "--print-config")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_the_recipe_then_the_file_then_the_flags(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    toml = write(tmp_path, "a.toml", 'recipe = "fast"\nepochs = 3\nlr = 1\nbatch-size = 128\n'
                 'tensorboard = "<run>/tb"\n[extra]\nnote = "from a file"\n')  # fmt: skip
    settings = printed("--config", str(toml), "--lr", "0.5")
    fast = recipe_config("fast")
    assert settings == {
        **fast.to_dict(),
        "epochs": 3,  # the file over the recipe
        "batch_size": 128,  # a dash reads as an underscore
        "lr": 0.5,  # a flag over the file
        "tensorboard": "<run>/tb",
        "extra": {"note": "from a file"},
    }
    assert printed("--config", str(toml), "--recipe", "best")["model"] == RECIPES["best"]["model"]
    assert not list(tmp_path.glob("runs*"))  # --print-config trains nothing


def test_yaml_reads_numbers_as_numbers_and_null_as_unset(tmp_path):
    yaml = write(tmp_path, "b.yml", "epochs: 2\nlr: 1e-3\nmax-steps: null\nnormalize: yes\n")
    config = resolve_config(None, read_config_file(yaml), {})
    assert config == TrainConfig(epochs=2, lr=0.001, normalize=True)


def _stub_report(run_dir, history, **kw):
    (Path(run_dir) / "report.html").write_text("<html>stub</html>")
    return Path(run_dir) / "report.html"


@pytest.fixture
def fake_data(monkeypatch):
    """Synthetic sources (random pictures) for ``session.train``; the data roots asked for."""
    import torch

    roots: list[object] = []

    def build_sources(config, device, *, data_root=None, mirror=None, rank=0, world_size=1):
        roots.append(data_root)
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (64, 28, 28), generator=g, dtype=torch.uint8)
        y = torch.randint(0, 10, (64,), generator=g)
        train = TensorSource(x, y, config.batch_size, shuffle=True, seed=config.seed, device=device)
        test = TensorSource(x[:32], y[:32], 32, device=device)
        return session.DataSources(train, {"test": test}, [str(i) for i in range(10)], [0.0], [1.0])

    monkeypatch.setattr(session, "build_sources", build_sources)
    monkeypatch.setattr(session, "write_run_report", _stub_report)
    monkeypatch.setattr("mnistcnn.engine.finish.write_run_report", _stub_report)
    monkeypatch.delenv("MNISTCNN_DATA", raising=False)
    monkeypatch.delenv("MNISTCNN_MIRROR", raising=False)
    return roots


def test_a_runs_config_json_given_back_reproduces_its_settings(fake_data, tmp_path):
    flags = ["--no-progress", "--device", "cpu", "--epochs", "1", "--batch-size", "32"]
    first = tmp_path / "first"
    flags += ["--seed", "7", "--lr", "0.003", "--keep-top", "2", "--data-root", str(tmp_path)]
    assert train(*flags, "--out", str(first)).exit_code == 0
    record = json.loads((first / "config.json").read_text())
    assert record["device_used"] == "cpu" and record["data_root"] == str(tmp_path)
    recorded = TrainConfig.from_dict({k: record[k] for k in FIELDS})
    again = resolve_config(None, read_config_file(first / "config.json"), {})
    assert again == recorded and again.seed == 7 and again.keep_top == 2
    assert printed("--config", str(first / "config.json")) == recorded.to_dict()

    second = tmp_path / "second"
    result = train("--no-progress", "--config", str(first / "config.json"), "--out", str(second))
    assert result.exit_code == 0, result.output
    assert fake_data == [str(tmp_path), str(tmp_path)]  # the recorded data root, too
    record2 = json.loads((second / "config.json").read_text())
    assert {k: record2[k] for k in FIELDS} == {k: record[k] for k in FIELDS}
    assert (first / "metrics.csv").read_text().split(",")[:12] == (
        (second / "metrics.csv").read_text().split(",")[:12]
    )  # the same losses and accuracies (not the seconds)


def test_print_config_output_is_a_config_file(tmp_path):
    settings = printed("--recipe", "best", "--seed", "3", "--val-fraction", "0.1")
    path = write(tmp_path, "resolved.json", json.dumps(settings))
    assert printed("--config", str(path)) == settings
    dry = printed("--config", str(path), "--dry-run")  # what a dry run would train with
    assert (dry["epochs"], dry["max_steps"], dry["seed"]) == (1, 10, 3)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.toml", "epoch = 3\n", "a.toml: unknown setting 'epoch'; did you mean epochs?"),
        ("a.toml", 'epochs = "3"\n', "a.toml: epochs: expected a whole number, got '3' (a string)"),
        ("a.toml", "normalize = 1\n", "a.toml: normalize: expected true or false, got 1"),
        ("a.toml", "epochs = 0\n", "a.toml: epochs: expected a value >= 1, got 0"),
        (
            "a.toml",
            'optimizer = "adamw"\n',
            "a.toml: optimizer: expected one of adam, sgd, adadelta",
        ),
        ("a.toml", "lr = nan\n", "a.toml: lr: expected a finite number, got nan"),
        (
            "a.toml",
            "label_smoothing = 1\n",
            "a.toml: label_smoothing: expected a value in [0, 1), got 1.0",
        ),
        ("a.toml", "lr = 0\n", "a.toml: lr: expected a value > 0, got 0.0"),
        ("a.toml", "epochs = \n", "a.toml: not valid TOML: "),
        ("a.yaml", "seed: null\n", "a.yaml: seed: expected a value, got nothing (null)"),
        ("a.yaml", "- 1\n- 2\n", "a.yaml: expected a table of settings (name = value), got [1, 2]"),
        (
            "a.json",
            '{"early_stopping": 3}',
            "a.json: invalid training config: early_stopping needs",
        ),
        ("a.json", '{"extra": []}', "a.json: extra: expected a table, got [] (a list)"),
        ("a.ini", "epochs = 3\n", "a.ini: a config file must end in .toml, .yaml, .yml or .json"),
    ],
)
def test_a_bad_file_is_named_with_its_key(tmp_path, name, text, message):
    path = write(tmp_path, name, text)
    result = train("--config", str(path), "--print-config")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: {tmp_path / message.split(':')[0]}:")
    assert message.split(": ", 1)[1] in result.stderr  # the key as the file writes it, no flag
    assert "Traceback" not in result.output


def test_a_flag_can_settle_what_the_file_lacks(tmp_path):
    path = write(tmp_path, "a.toml", "early_stopping = 3\n")
    assert printed("--config", str(path), "--val-fraction", "0.1")["early_stopping"] == 3
    result = train("--config", str(path), "--val-fraction", "0", "--print-config")
    assert result.exit_code == 1  # the file's setting at fault, said as the file says it
    assert f"{path}: invalid training config: early_stopping needs a validation split" in (
        result.stderr
    )
    result = train("--config", str(path), "--early-stopping", "2", "--print-config")
    assert result.exit_code == 1 and f"{path}" not in result.stderr  # a flag's own error
    assert "error: invalid training config: --early-stopping needs a validation" in result.stderr


def test_config_with_resume_is_refused(tmp_path):
    path = write(tmp_path, "a.toml", "epochs = 3\n")
    result = train("--config", str(path), "--resume", str(tmp_path))
    assert result.exit_code == 2 and "--config starts a new run" in result.output


def test_yaml_without_pyyaml_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(SettingError, match=r"pip install 'mnistcnn\[yaml\]'"):
        read_config_file(write(tmp_path, "a.yaml", "epochs: 2\n"))
