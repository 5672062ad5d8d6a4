"""Settings declared once: help, flag and "changes the math" beside each TrainConfig field.

The train command's options and the resume check are generated from that
metadata; library errors name settings, the CLI shows their flags, and an
unexpected exception keeps its traceback.
"""

import dataclasses
import typing

import click
import pytest
from click.testing import CliRunner

from mnistcnn.cli import main
from mnistcnn.cli.common import cli_message, user_errors
from mnistcnn.config import TrainConfig, changes_math, check_settings, setting, setting_flag
from mnistcnn.config.settings import check_value, field_kind
from mnistcnn.errors import CheckpointError, MnistcnnError, SettingError

#: ``mnistcnn train --help``'s options (those before they were generated from the metadata,
#: and the ones added since).
TRAIN_OPTIONS_BEFORE = {
    "--recipe", "--dataset", "--model", "--epochs", "--batch-size", "--lr", "--optimizer",
    "--scheduler", "--normalize", "--no-normalize", "--weight-decay", "--label-smoothing",
    "--augment", "--precision", "--val-fraction", "--loader", "--seed", "--device",
    "--max-steps", "--dry-run", "--out", "--no-progress", "--resume", "--force",
    "--checkpoint-every", "--train-subset", "--nproc", "--data-root", "--mirror", "-h", "--help",
    "--deterministic", "--no-deterministic",  # added since (issue 14: the setting had no flag)
    "--early-stopping",
    "--tensorboard", "--keep-top", "--config", "--print-config",  # issue 14 items 3, 4
    "--pretrained", "--no-pretrained", "--freeze", "--weights",  # issue 12: ImageNet weights
    "--init",  # fine-tuning from a checkpoint (issue 14 item 1)
    "--outlier-exposure", "--outliers",  # added since (issue 11: outlier exposure)
    "--style-digits",  # generated digits of other writers' styles
    "--report", "--no-report",  # the report at the end of a run, or later on demand
}  # fmt: skip


def test_every_field_declares_help_and_math():
    check_settings(TrainConfig)  # raises TypeError naming any undeclared field
    for f in dataclasses.fields(TrainConfig):
        assert isinstance(f.metadata["math"], bool), f.name
        assert f.metadata["help"].strip(), f.name


def test_a_field_without_metadata_fails():
    @dataclasses.dataclass(frozen=True)
    class Config:
        declared: int = setting(1, help="declared", math=True)
        bare: int = 0
        half: int = dataclasses.field(default=0, metadata={"help": "no math"})

    with pytest.raises(TypeError, match="declare bare, half with mnistcnn.config.setting"):
        check_settings(Config)


def _train_option_names() -> set[str]:
    result = CliRunner().invoke(main, ["train", "--help"])
    assert result.exit_code == 0, result.output
    columns = [line.split("  ")[1] for line in result.output.splitlines() if line[:3] == "  -"]
    return {word.rstrip(",") for column in columns for word in column.split() if word[0] == "-"}


def test_generated_train_options_are_todays():
    assert _train_option_names() == TRAIN_OPTIONS_BEFORE


def test_train_options_follow_the_metadata():
    command = main.commands["train"]
    options = {p.name: p for p in command.params if isinstance(p, click.Option)}
    for f in dataclasses.fields(TrainConfig):
        if not f.metadata["cli"]:
            assert f.name not in options, f.name
            continue
        option = options[f.name]
        assert setting_flag(f.name) in option.opts
        assert option.help == f.metadata["help"] and option.default is None
    assert list(options["optimizer"].type.choices) == ["adam", "sgd", "adadelta"]
    assert options["epochs"].type.min == 1 and options["lr"].type.min_open
    assert options["normalize"].secondary_opts == ["--no-normalize"]


def _another_value(f: dataclasses.Field, value):
    """A valid value of field ``f`` other than ``value``."""
    if f.metadata["choices"] is not None and not callable(f.metadata["choices"]):
        return next(c for c in f.metadata["choices"] if c != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, dict):
        return {"note": 1}
    if value is None and field_kind(typing.get_type_hints(TrainConfig)[f.name])[0] is str:
        return "x"  # a path or folder (tensorboard, weights, init)
    if value is None or isinstance(value, int):
        return (value or 0) + 5
    return value / 2 if value else 0.5


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(TrainConfig)])
def test_resume_check_reads_the_metadata(name):
    f = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    # with a validation split, so that every field may take another value (early_stopping needs
    # it), and pretrained (freeze and weights need it)
    for base in (
        TrainConfig(val_fraction=0.1, pretrained=True),
        TrainConfig(scheduler="onecycle", val_fraction=0.1, pretrained=True),
    ):
        changed = base.replace(**{name: _another_value(f, getattr(base, name))})
        condition = f.metadata["math_if"]  # e.g. epochs: only under a whole-run schedule
        expected = f.metadata["math"] and (condition is None or condition(changed))
        assert bool(changed.math_differences(base)) == expected, name


def test_epochs_change_the_math_only_under_a_whole_run_schedule():
    assert changes_math("epochs", TrainConfig(scheduler="onecycle"))
    assert not changes_math("epochs", TrainConfig())
    assert changes_math("no_such_setting", TrainConfig())  # the safe side


def test_resume_refuses_a_math_setting_and_allows_another(monkeypatch, tmp_path):
    from mnistcnn.engine import resume

    recorded = TrainConfig(device="cpu")

    class Ckpt:
        config = recorded.to_dict()
        path = tmp_path / "last.pt"

    monkeypatch.setattr(resume, "load_checkpoint", lambda p: Ckpt())
    monkeypatch.setattr(resume, "resume_checkpoint_path", lambda p: tmp_path / "last.pt")
    with pytest.raises(SettingError, match=r"lr: 0\.01 -> 0\.5 \(resume anyway with force\)") as e:
        resume.checked_resume(tmp_path, recorded.replace(lr=0.5), force=False)
    assert e.value.setting == "force"
    assert resume.checked_resume(tmp_path, recorded.replace(lr=0.5), force=True)
    assert resume.checked_resume(tmp_path, recorded.replace(device="meta", num_workers=2), False)


def test_library_errors_share_a_base_and_keep_their_old_bases():
    from mnistcnn._io import ImageInputError
    from mnistcnn.artifact import CheckpointError as FromCheckpoint
    from mnistcnn.data import DataError
    from mnistcnn.engine.distributed import PeerFailure
    from mnistcnn.engine.loop import NonFiniteLossError
    from mnistcnn.engine.run_dir import RunDirError
    from mnistcnn.explain.conv_inputs import ConvInputError
    from mnistcnn.serve.inputs import InputError

    assert FromCheckpoint is CheckpointError and issubclass(CheckpointError, RuntimeError)
    for cls, old in [
        (DataError, RuntimeError),
        (RunDirError, RuntimeError),
        (PeerFailure, RuntimeError),
        (NonFiniteLossError, FloatingPointError),
        (ConvInputError, ValueError),
        (ImageInputError, ValueError),
        (InputError, Exception),
        (SettingError, ValueError),
    ]:
        assert issubclass(cls, MnistcnnError) and issubclass(cls, old), cls


def test_library_error_names_the_setting_and_the_cli_its_flag():
    from mnistcnn.engine.utils import select_device

    with pytest.raises(SettingError) as err:
        select_device("nonsense")
    assert err.value.setting == "device" and str(err.value).startswith("device 'nonsense'")
    assert "--device" not in str(err.value)
    assert cli_message(err.value).startswith("--device 'nonsense' is not a device")
    result = CliRunner().invoke(main, ["train", "--device", "nonsense", "--dry-run"])
    assert result.exit_code == 1 and "error: --device 'nonsense'" in result.output, result.output
    assert "Traceback" not in result.output


def test_cli_message_maps_settings_to_flags():
    exc = SettingError(
        "train_subset 9 is larger than the training split of mnist (5 images left after "
        "val_fraction 0.5); give at most 5",
        setting="train_subset",
    )
    assert cli_message(exc) == (
        "--train-subset 9 is larger than the training split of mnist (5 images left after "
        "--val-fraction 0.5); give at most 5"
    )
    # the first mention is the flag; a path or a "name:" label is not the setting
    exc = CheckpointError("resume runs/x: nothing to resume", setting="resume", path="runs/x")
    assert cli_message(exc) == "--resume runs/x: nothing to resume"
    exc = SettingError("out: exists; choose another out folder", setting="out", path="out")
    assert cli_message(exc) == "out: exists; choose another --out folder"
    exc = SettingError("runs/out/a: exists; choose another out folder", setting="out")
    assert cli_message(exc) == "runs/out/a: exists; choose another --out folder"
    assert setting_flag("resume") == "--resume" and setting_flag("batch_size") == "--batch-size"


def _raising(exc: BaseException) -> click.Command:
    @click.command()
    @user_errors
    def cmd() -> None:
        raise exc

    return cmd


def test_library_errors_are_one_line():
    result = CliRunner().invoke(_raising(SettingError("batch_size 0 is bad", setting="batch_size")))
    assert result.exit_code == 1 and result.output == "error: --batch-size 0 is bad\n"


@pytest.mark.parametrize("exc", [ValueError("a bug"), TypeError("another bug")])
def test_unexpected_exceptions_keep_their_traceback(exc):
    result = CliRunner().invoke(_raising(exc))
    assert result.exit_code == 1 and result.exception is exc  # not turned into a message
    assert "error:" not in result.output


def test_a_bug_inside_train_keeps_its_traceback(monkeypatch, tmp_path):
    def buggy(*args, **kwargs):
        raise ValueError("a bug, not a user error")

    import mnistcnn.engine

    monkeypatch.setattr(mnistcnn.engine, "train", buggy)  # what `mnistcnn train` calls
    args = ["train", "--dry-run", "--out", str(tmp_path / "run"), "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)
    assert "error:" not in result.output
    import subprocess
    import sys

    code = (
        "import sys, mnistcnn.engine as e\n"
        "def buggy(*a, **k): raise ValueError('a bug, not a user error')\n"
        "e.train = buggy\n"
        "from mnistcnn.cli import main\n"
        f"main(['train', '--dry-run', '--no-progress', '--out', {str(tmp_path / 'r')!r}])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.rstrip().endswith("ValueError: a bug, not a user error")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochs": "3"}, "epochs must be a whole number, got '3' (a string)"),
        ({"epochs": True}, "epochs must be a whole number, got True (a boolean)"),
        ({"lr": float("nan")}, "lr must be a finite number > 0, got nan"),
        ({"normalize": 1}, "normalize must be true or false, got 1 (a number)"),
        ({"precision": "fp16"}, "precision must be one of fp32, bf16, got 'fp16'"),
        ({"eval_batch_size": 0}, "eval_batch_size must be >= 1, got 0"),
        ({"warmup_fraction": 1.0}, "warmup_fraction must be in (0, 1), got 1.0"),
        ({"outlier_count": 0}, "outlier_count must be >= 1, got 0"),
        ({"seed": -1}, "seed must be in 0..4294967295, got -1"),
    ],
)
def test_a_python_call_is_checked_against_the_declaration(values, message):
    """Type, choices and range come from each field's setting(): the same check as a file's."""
    [(name, value)] = values.items()
    with pytest.raises(SettingError, match="^invalid training config: ") as err:
        TrainConfig(**values)
    assert message in str(err.value) and err.value.setting == name
    hint = typing.get_type_hints(TrainConfig)[name]
    meta = next(f.metadata for f in dataclasses.fields(TrainConfig) if f.name == name)
    assert check_value(name, value, hint, meta).message() == message


def test_numbers_of_other_libraries_are_numbers():
    import numpy as np

    config = TrainConfig(epochs=np.int64(2), lr=np.float32(0.5), seed=np.uint32(7))
    assert (config.epochs, config.lr, config.seed) == (2, 0.5, 7)
    assert TrainConfig(lr=1).lr == 1  # an int is a float
