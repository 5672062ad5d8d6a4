"""Hostile settings and a hostile environment: clean refusals, nothing already written damaged.

Bad flags exit with status 2 (click) or 1 (the library's ValueError) and a
one-line message, never a traceback; a diverging run stops with
NonFiniteLossError and keeps its last good checkpoint; an unwritable output
folder or a full disk fails with RunDirError and leaves the files written
before intact; a second SIGINT/SIGTERM stops at once. Example counts come
from the hypothesis profile (``tests/fuzzing.py``).
"""

from __future__ import annotations

import errno
import io
import math
import os
import re
import signal
import time
from collections.abc import Callable

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import fuzzing  # noqa: F401  (registers and loads the hypothesis profile)
from mnistcnn.cli import main
from mnistcnn.config import TrainConfig, recipe_config
from mnistcnn.data import list_datasets
from mnistcnn.engine import load_checkpoint, train
from mnistcnn.engine.loop import NonFiniteLossError
from mnistcnn.engine.run_dir import RunDirError, read_metrics
from mnistcnn.models import list_models

FEW = max(1, settings.default.max_examples // 4)  # each example runs the CLI (parsing only)
SMALL = {"train_subset": 256, "epochs": 2, "device": "cpu", "seed": 0}
BAD_INT = st.integers(-(2**31), 0)


@given(
    epochs=st.integers(-5, 5),
    batch_size=st.integers(-5, 5),
    lr=st.floats(allow_nan=True, allow_infinity=False),
    val_fraction=st.floats(-1, 2),
    label_smoothing=st.floats(-1, 2),
    optimizer=st.sampled_from(["adam", "sgd", "adadelta", "", "Adam", "lbfgs"]),
    scheduler=st.sampled_from(["none", "cosine", "onecycle", "step", "linear"]),
    ema_decay=st.floats(-1, 2),
)
def test_config_is_valid_or_names_every_problem(**values):
    try:
        config = TrainConfig(**values)
    except ValueError as exc:
        message = str(exc)
        assert message.startswith("invalid training config: ")
        bad = [name for name in values if not _valid(name, values[name])]
        assert bad and all(name in message for name in bad), (bad, message)
        return
    assert config.epochs >= 1 and config.batch_size >= 1 and config.lr > 0
    assert all(_valid(name, value) for name, value in values.items())


def _valid(name: str, value: object) -> bool:
    checks = {
        "epochs": lambda v: v >= 1,
        "batch_size": lambda v: v >= 1,
        "lr": lambda v: v > 0,
        "val_fraction": lambda v: 0 <= v < 1,
        "label_smoothing": lambda v: 0 <= v < 1,
        "optimizer": lambda v: v in ("adam", "sgd", "adadelta"),
        "scheduler": lambda v: v in ("none", "step", "cosine", "onecycle"),
        "ema_decay": lambda v: 0 <= v < 1,
    }
    return bool(checks[name](value))


@settings(max_examples=FEW)
@given(
    flag=st.sampled_from(["--epochs", "--batch-size", "--max-steps", "--train-subset", "--nproc"]),
    value=st.one_of(BAD_INT.map(str), st.sampled_from(["", "x", "1.5", "1e3", "--", "nan"])),
)
def test_bad_numeric_flags_exit_2_with_the_flag_named(flag, value):
    result = CliRunner().invoke(main, ["train", flag, value])
    assert result.exit_code == 2, result.output
    assert flag in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--lr", v) for v in ("0", "-1", "-1e-9", "x", "-inf", "nan")]
    + [("--val-fraction", v) for v in ("-1", "1", "1.5", "x", "inf", "nan")],
)
def test_bad_float_flags_are_clean_errors(flag, value):
    """click refuses (status 2) what its FloatRange sees; nan passes it and the config refuses."""
    result = CliRunner().invoke(main, ["train", flag, value])
    if value == "nan":
        # the config names the setting (val_fraction); the CLI shows its flag
        assert result.exit_code == 1 and f"{flag} must be" in result.output, result.output
    else:
        assert result.exit_code == 2 and flag in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("flag", "valid"), [("--model", list_models()), ("--dataset", list_datasets())]
)
def test_unknown_model_or_dataset_lists_the_valid_names(flag, valid, tmp_path):
    args = ["train", flag, "nope", "--out", str(tmp_path / "run"), "--data-root", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "nope" in result.output
    assert all(name in result.output for name in valid)
    assert not (tmp_path / "run").exists()


def test_batch_larger_than_the_training_split(mnist_root, tmp_path):
    config = recipe_config("tutorial", **SMALL, batch_size=257)
    with pytest.raises(ValueError, match=r"^batch_size 257 is larger than the training split"):
        train(config, out=tmp_path / "run", data_root=mnist_root, handle_signals=False)
    assert not (tmp_path / "run").exists()


def test_diverging_lr_stops_and_keeps_the_last_good_checkpoint(mnist_root, tmp_path):
    config = recipe_config("tutorial", **SMALL, optimizer="sgd", lr=1e6, momentum=0.0)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step (\d+) \(lr 1e\+06\)") as err:
        train(config, out=out, data_root=mnist_root, checkpoint_every=1, handle_signals=False)
    failed_step = int(re.search(r"step (\d+)", str(err.value)).group(1))  # type: ignore[union-attr]
    assert "lower the learning rate" in str(err.value) and err.value.setting == "lr"
    if failed_step > 1:
        good = load_checkpoint(out / "last.pt")
        assert good.step == failed_step - 1
        assert all(torch.isfinite(t).all() for t in good.state_dict.values())
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_diverging_run_from_the_cli_is_one_clean_line(mnist_root, tmp_path):
    args = ["train", "--train-subset", "256", "--device", "cpu", "--optimizer", "sgd",
            "--lr", "1e30", "--out", str(tmp_path / "run"), "--data-root", str(mnist_root),
            "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "error: training loss is" in result.output and "Traceback" not in result.output
    assert "(--lr 1e+30)" in result.output


def test_unwritable_output_folder_is_a_clean_error(mnist_root, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = recipe_config("tutorial", **SMALL)
    with pytest.raises(RunDirError, match="cannot write the run directory"):
        train(config, out=blocker / "run", data_root=mnist_root, handle_signals=False)
    assert blocker.read_text() == "not a folder"
    if os.geteuid() != 0:  # root ignores permissions
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(RunDirError):
            train(config, out=locked / "run", data_root=mnist_root, handle_signals=False)


class _DiskFull:
    """Replaces torch.save: the first ``ok`` calls work, later ones write half, then ENOSPC."""

    def __init__(self, ok: int) -> None:
        self.ok, self.calls, self.real = ok, 0, torch.save

    def __call__(self, obj: object, f: io.BufferedIOBase, *args: object, **kw: object) -> None:
        self.calls += 1
        if self.calls <= self.ok:
            return self.real(obj, f, *args, **kw)
        buf = io.BytesIO()
        self.real(obj, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_fails_cleanly_and_keeps_what_was_written(mnist_root, tmp_path, monkeypatch):
    out = tmp_path / "run"
    config = recipe_config("tutorial", **{**SMALL, "train_subset": 384, "epochs": 1})  # 6 steps
    monkeypatch.setattr(torch, "save", _DiskFull(ok=2))  # last.pt at steps 2, 4; full at 6
    with pytest.raises(RunDirError, match="No space left on device.*written before are intact"):
        train(config, out=out, data_root=mnist_root, checkpoint_every=2, handle_signals=False)
    monkeypatch.undo()
    kept = load_checkpoint(out / "last.pt")
    assert kept.step == 4 and (kept.position or {}).get("batch") == 4
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temp files left"
    assert (out / "config.json").read_text().strip().endswith("}")
    assert not (out / "metrics.csv").exists() or read_metrics(out / "metrics.csv") == []
    config_text = (out / "config.json").read_text()
    resumed = train(config, resume=out, data_root=mnist_root, handle_signals=False)
    assert resumed.history.last["epoch"] == 1 and math.isfinite(resumed.history.last["test_loss"])
    assert (out / "config.json").read_text() == config_text


def test_second_signal_stops_at_once():
    """The first SIGINT/SIGTERM only asks to stop; a second one stops now (status 143 for TERM)."""
    from mnistcnn.engine.signals import graceful_stop

    for sig, stopped in [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, SystemExit)]:
        with graceful_stop() as flag:
            os.kill(os.getpid(), sig)
            _wait_for(flag)
            assert flag.signal_name == sig.name
            with pytest.raises(stopped) as info:
                os.kill(os.getpid(), sig)
                time.sleep(5)  # the handler raises before this ends
            if sig == signal.SIGTERM:
                assert info.value.code == 143
        assert signal.getsignal(sig) is not None  # previous handlers are back


def _wait_for(flag: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not flag() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flag()
