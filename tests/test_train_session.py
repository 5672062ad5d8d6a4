"""Whole training jobs on synthetic data: the run lock, runs/latest, resume of a finished
run, the recorded data root, flag checks and message wording.

``engine.session.build_sources`` is replaced by synthetic batch sources (no
dataset is read or fetched) and the final report by a stub, so every job here
takes a second or two; the CLI is invoked in-process with click's runner.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from mnistcnn._text import plural
from mnistcnn.cli import main
from mnistcnn.config import MAX_SEED, TrainConfig, recipe_config
from mnistcnn.data.loaders import TensorSource
from mnistcnn.engine import load_checkpoint, session
from mnistcnn.engine.finish import write_run_report as REAL_RUN_REPORT
from mnistcnn.engine.loop import NonFiniteLossError, TrainingInterrupted
from mnistcnn.engine.run_dir import LOCK_NAME, RunDirError, RunLock
from mnistcnn.errors import SettingError

SMALL = {"epochs": 1, "batch_size": 32, "device": "cpu", "seed": 0}


def synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, 28, 28) images, labels 0..9 (the label's row of the image is bright)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = torch.randint(0, 30, (n, 28, 28), generator=g, dtype=torch.uint8)
    for i, lab in enumerate(labels.tolist()):
        images[i, 2 * lab + 3] = 250
    return images, labels


@pytest.fixture
def fake_data(monkeypatch):
    """Synthetic sources for ``session.train``; returns the data roots it was asked for."""
    roots: list[object] = []

    def build_sources(config, device, *, data_root=None, mirror=None, rank=0, world_size=1):
        roots.append(data_root)
        x, y = synthetic(128, 0)
        xt, yt = synthetic(64, 1)
        train = TensorSource(x, y, config.batch_size, shuffle=True, seed=config.seed, device=device)
        test = TensorSource(xt, yt, 64, device=device)
        classes = [str(i) for i in range(10)]
        return session.DataSources(train, {"test": test}, classes, [0.0], [1.0])

    monkeypatch.setattr(session, "build_sources", build_sources)
    monkeypatch.setattr(session, "write_run_report", _stub_report)  # no real test split
    monkeypatch.setattr("mnistcnn.engine.finish.write_run_report", _stub_report)
    monkeypatch.delenv("MNISTCNN_DATA", raising=False)
    monkeypatch.delenv("MNISTCNN_MIRROR", raising=False)
    return roots


def _stub_report(run_dir, history, **kw):
    path = Path(run_dir) / "report.html"
    path.write_text("<html>stub</html>")
    return path


@pytest.fixture
def no_report(monkeypatch):
    """The final report.html without evaluating on a real test split."""
    monkeypatch.setattr(session, "write_run_report", _stub_report)
    monkeypatch.setattr("mnistcnn.engine.finish.write_run_report", _stub_report)


def cli(*args: str) -> object:
    return CliRunner().invoke(main, ["train", "--no-progress", "--device", "cpu", *args])


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


def interrupted_run(out: Path, **kw: object) -> Path:
    """A run stopped after its first step (resumable last.pt, no metrics row yet)."""
    config = recipe_config("tutorial", **{**SMALL, "epochs": 2})
    with pytest.raises(TrainingInterrupted):
        session.train(config, out=out, stop=lambda: True, handle_signals=False, **kw)
    return out


# --- 1. one writer per run directory ---------------------------------------------------


def test_run_lock_names_the_holder_and_is_released(tmp_path):
    run = tmp_path / "run"
    with RunLock(run, new=True) as lock:
        assert (run / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(RunDirError, match=rf"{run}: .*\(PID {os.getpid()}\) is training"):
            RunLock(run).acquire()  # flock: a second open file conflicts, same process or not
        assert lock.held
    assert not run.exists(), "a folder the lock created and nothing wrote into is removed"
    run.mkdir()
    (run / "config.json").write_text("{}")
    with RunLock(run):
        pass
    assert [p.name for p in run.iterdir()] == ["config.json"], "the lock file is removed"
    with pytest.raises(RunDirError, match="not empty"):
        RunLock(run, new=True).acquire()


def _hold_lock(run: Path) -> subprocess.Popen:
    code = (
        "import sys, time; from mnistcnn.engine.run_dir import RunLock\n"
        "lock = RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_resume_of_a_run_being_trained_is_refused_and_a_killed_holder_does_not_block(
    fake_data, no_report, tmp_path
):
    run = interrupted_run(tmp_path / "run")
    holder = _hold_lock(run)  # another process "training" into the run
    before = snapshot(run)
    try:
        result = cli("--resume", str(run))
        assert result.exit_code == 1, result.output
        assert f"error: {run}: another mnistcnn process (PID {holder.pid})" in result.output
        assert "Traceback" not in result.output
        assert snapshot(run) == before, "the refused resume wrote nothing"
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the kernel releases the flock
        holder.wait()
    assert (run / LOCK_NAME).exists(), "the stale lock file of the killed holder"
    result = cli("--resume", str(run))
    assert result.exit_code == 0, result.output
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # header + 2 epochs: one writer, no duplicate rows
    assert not (run / LOCK_NAME).exists()


# --- 2. --nproc with an output folder that holds a run -----------------------------------


def test_nproc_into_an_existing_run_fails_before_starting_workers(tmp_path, monkeypatch):
    import mnistcnn.engine.distributed as distributed

    def no_launch(*args, **kwargs):
        raise AssertionError("workers started")

    monkeypatch.setattr(distributed, "launch_local", no_launch)
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"a previous run")
    result = cli("--nproc", "2", "--out", str(out))
    assert result.exit_code == 1, result.output
    assert f"error: {out}: already exists and is not empty" in result.output
    assert result.output.count("error:") == 1 and "Traceback" not in result.output
    assert (out / "last.pt").read_bytes() == b"a previous run"


# --- 3. resume uses the data root the run recorded ---------------------------------------


def test_resume_uses_the_recorded_data_root_unless_one_is_given(fake_data, tmp_path):
    root = tmp_path / "my-data"
    run = interrupted_run(tmp_path / "run", data_root=root)
    assert json.loads((run / "config.json").read_text())["data_root"] == str(root)
    interrupted = load_checkpoint(run / "last.pt")
    config = TrainConfig.from_dict(interrupted.config)
    with pytest.raises(TrainingInterrupted):  # resumed (recorded root), stopped again
        session.train(config, resume=run, stop=lambda: True, handle_signals=False)
    assert fake_data[-1] == str(root)
    other = tmp_path / "other-data"
    result = session.train(config, resume=run, data_root=other, handle_signals=False)
    assert fake_data[-1] == other and result.data_root == other


# --- 4. runs/latest only moves to runs that started training -----------------------------


def test_latest_moves_only_to_runs_that_wrote_a_checkpoint(
    fake_data, no_report, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    latest = tmp_path / "runs" / "latest"
    assert cli("--epochs", "1").exit_code == 0
    good = os.readlink(latest)
    assert (latest / "last.pt").is_file()
    result = cli("--dry-run")
    assert result.exit_code == 0, result.output
    assert os.readlink(latest) == good, "a dry run does not move latest"
    assert "dry run: its temporary run folder was removed" in result.output  # issue 13.13
    config = recipe_config("tutorial", **SMALL, optimizer="sgd", lr=1e30, momentum=0.0)
    with pytest.raises(NonFiniteLossError):  # fails at its first step
        session.train(config, runs_dir=tmp_path / "runs", handle_signals=False)
    assert os.readlink(latest) == good, "a run that failed before a checkpoint does not"
    assert len(list((tmp_path / "runs").iterdir())) == 3  # the link, good, failed: no dry run


def test_a_dry_run_from_python_keeps_nothing_unless_given_a_folder(
    fake_data, no_report, tmp_path, monkeypatch
):
    """``train(config, dry_run=True)``: one epoch of at most 10 steps, as ``--dry-run``."""
    import mnistcnn

    monkeypatch.chdir(tmp_path)
    config = recipe_config("tutorial", **{**SMALL, "epochs": 3, "batch_size": 8})
    result = mnistcnn.train(config, dry_run=True)
    assert result.history.steps == 10 and len(result.history.rows) == 1
    assert result.config.epochs == 1 and result.config.max_steps == 10
    assert not result.run_dir.exists() and not (tmp_path / "runs").exists()
    kept = mnistcnn.train(config.replace(max_steps=4), dry_run=True, out=tmp_path / "kept")
    assert kept.history.steps == 4 and (tmp_path / "kept" / "last.pt").is_file()
    assert not (tmp_path / "runs").exists(), "a dry run does not move latest"


def test_nproc_is_refused_under_torchrun_and_with_a_net(monkeypatch):
    config = recipe_config("tutorial", **SMALL)
    with pytest.raises(SettingError, match="nproc .*net and stop cannot cross") as err:
        session.train(config, nproc=2, net=torch.nn.Linear(784, 10))
    assert err.value.setting == "nproc"
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SettingError, match="leave it out under torchrun"):
        session.train(config, nproc=2)


# --- 5. an interrupted report leaves complete files and no temporary ones ----------------


def _report(seed: int):
    from mnistcnn.evaluation import summarize
    from mnistcnn.evaluation.report import build_report

    images, labels = synthetic(40, seed)
    probs = torch.softmax(torch.randn(40, 10, generator=torch.Generator().manual_seed(seed)), 1)
    rows = [{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "test_loss": 1.0,
             "test_accuracy": 0.5}]  # fmt: skip
    classes = [str(i) for i in range(10)]
    return build_report(summarize(probs, labels, classes), images, title=f"r{seed}", history=rows)


@pytest.mark.parametrize("interrupt_at", [1, 3, 6], ids=["first-png", "third-png", "html"])
def test_ctrl_c_while_writing_the_report_leaves_no_temp_file(tmp_path, monkeypatch, interrupt_at):
    from mnistcnn.evaluation.report import save_report

    save_report(_report(0), tmp_path)
    before = snapshot(tmp_path)
    assert len(before) == 6  # report.html and its five pictures
    real_replace, calls = os.replace, {"n": 0}

    def replace(src, dst):
        calls["n"] += 1
        if calls["n"] == interrupt_at:
            raise KeyboardInterrupt  # Ctrl-C (or torchrun forwarding SIGINT) right here
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        save_report(_report(1), tmp_path)
    monkeypatch.undo()
    after = snapshot(tmp_path)
    assert sorted(after) == sorted(before), "no temporary file is left"
    changed = [name for name in after if after[name] != before[name]]
    assert len(changed) == interrupt_at - 1  # the files renamed before Ctrl-C are the new ones
    assert after["report.html"] == before["report.html"]  # the previous complete report


# --- 6. flags that were ignored or wrongly accepted --------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--force"], "--force only applies with --resume"),
        (["--seed", str(2**64)], "'--seed': 18446744073709551616 is not in the range"),
        (["--seed", "-1"], "'--seed': -1 is not in the range"),
    ],
)
def test_ignored_or_out_of_range_flags_exit_2(args, message):
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_out_with_resume_is_refused(fake_data, tmp_path):
    run = interrupted_run(tmp_path / "run")
    before = snapshot(run)
    result = cli("--resume", str(run), "--out", str(tmp_path / "elsewhere"))
    assert result.exit_code == 2, result.output
    assert "--out" in result.output and "cannot be used when resuming" in result.output
    assert snapshot(run) == before and not (tmp_path / "elsewhere").exists()
    with pytest.raises(ValueError, match="^out .* cannot be used when resuming"):
        session.train(TrainConfig(**SMALL), resume=run, out=tmp_path / "elsewhere")


@pytest.mark.parametrize("lr", ["inf", "nan", "1e400"])
def test_non_finite_lr_is_refused_naming_the_field(lr):
    result = cli("--lr", lr)
    assert result.exit_code == 1, result.output
    assert "lr must be a finite number > 0" in result.output


def test_seed_range_is_checked_by_the_config():
    assert TrainConfig(seed=MAX_SEED).seed == MAX_SEED
    for seed in (-1, MAX_SEED + 1, 2**70):
        with pytest.raises(ValueError, match=r"seed must be in 0\.\.4294967295"):
            TrainConfig(seed=seed)


def test_train_subset_larger_than_the_training_split(monkeypatch):
    from mnistcnn import data as mdata

    monkeypatch.setattr(mdata, "load_arrays", lambda name, train, **kw: synthetic(100, 0))
    config = recipe_config("tutorial", train_subset=101, device="cpu")
    with pytest.raises(ValueError, match=r"^train_subset 101 is larger than the training split "
                       r"of mnist \(100 images\)"):  # fmt: skip
        session.build_sources(config, torch.device("cpu"))
    config = config.replace(val_fraction=0.5)
    with pytest.raises(ValueError, match=r"\(50 images left after val_fraction 0.5\)"):
        session.build_sources(config, torch.device("cpu"))
    assert session.build_sources(config.replace(train_subset=50), torch.device("cpu"))


# --- 7. "1 epoch", not "1 epochs" ------------------------------------------------------


def test_plural():
    assert [plural(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
    assert plural(1, "image") == "1 image" and plural(3, "class", "classes") == "3 classes"


def test_messages_say_1_epoch(fake_data, no_report, tmp_path):
    result = cli("--epochs", "1", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert "tutorial on mnist, 1 epoch, batch 64" in result.output
    assert "after 1 epoch on cpu" in result.output and "1 epochs" not in result.output


# --- 8. resuming a finished run changes nothing -----------------------------------------


def test_resume_of_a_complete_run_leaves_every_file_untouched(fake_data, no_report, tmp_path):
    run = tmp_path / "run"
    assert cli("--epochs", "2", "--out", str(run)).exit_code == 0
    before = snapshot(run)
    calls = len(fake_data)
    time.sleep(0.01)  # a rewrite would show in the modification times
    result = cli("--resume", str(run))
    assert result.exit_code == 0, result.output
    assert f"{run}: the run is already complete (2 epochs of 2); nothing to do" in result.output
    assert snapshot(run) == before, "byte-identical, not even rewritten"
    assert len(fake_data) == calls, "no data loaded"
    result = cli("--resume", str(run / "last.pt"), "--epochs", "3")  # more epochs: trains on
    assert result.exit_code == 0, result.output
    assert "epoch   3" in result.output


# --- 9. a report cut short is rebuilt by --resume -----------------------------------------


@pytest.fixture
def real_run_report(monkeypatch):
    """The library's own end-of-run report (engine.finish), on the synthetic test split."""
    import mnistcnn.data
    import mnistcnn.engine.finish

    real = REAL_RUN_REPORT  # fake_data replaced the module's with a stub
    monkeypatch.setattr(mnistcnn.data, "load_arrays", lambda *a, **kw: synthetic(64, 1))
    monkeypatch.setattr(session, "write_run_report", real)
    monkeypatch.setattr(mnistcnn.engine.finish, "write_run_report", real)


@pytest.fixture
def picture_report(monkeypatch, real_run_report):
    """A stub report with one picture (report.html written last, as save_report does).

    ``calls`` counts the writes; set ``interrupt`` to make the next one stop
    like a Ctrl-C before report.html is renamed into place.
    """
    import mnistcnn.evaluation.report

    state = {"calls": 0, "interrupt": False}

    def save_report(report, folder):  # what the library's end-of-run report calls to write
        state["calls"] += 1
        (Path(folder) / "worst_errors.png").write_bytes(b"png")
        if state["interrupt"]:
            state["interrupt"] = False
            raise KeyboardInterrupt
        path = Path(folder) / "report.html"
        path.write_text('<html><img src="worst_errors.png"></html>')
        return path

    monkeypatch.setattr(mnistcnn.evaluation.report, "save_report", save_report)
    return state


REPORT_FILES = {"report.html", "worst_errors.png"}


def test_resume_rebuilds_a_report_cut_short_and_touches_nothing_else(
    fake_data, picture_report, tmp_path
):
    run = tmp_path / "run"
    picture_report["interrupt"] = True  # Ctrl-C while the final report is written
    result = cli("--epochs", "1", "--out", str(run))
    assert result.exit_code == 130, result.output
    assert "stopped while writing the report; training is complete" in result.output
    assert f"mnistcnn train --resume {run}" in result.output
    assert not (run / "report.html").exists()
    before = {k: v for k, v in snapshot(run).items() if k not in REPORT_FILES}
    stale = run / ".curves.png.4242.tmp.png"  # what a SIGKILL mid-write leaves behind
    stale.write_bytes(b"half a picture")
    time.sleep(0.01)
    result = cli("--resume", str(run))
    assert not stale.exists()  # removed once the lock is held
    assert result.exit_code == 0, result.output
    assert "report is missing or incomplete" in result.output
    assert f"report written to {run / 'report.html'}" in result.output
    after = snapshot(run)
    assert set(after) >= REPORT_FILES
    assert {k: v for k, v in after.items() if k not in REPORT_FILES} == before
    # a report whose picture is gone is incomplete too; a complete one is left alone
    (run / "worst_errors.png").unlink()
    assert "writing it now" in cli("--resume", str(run)).output
    calls = picture_report["calls"]
    result = cli("--resume", str(run))
    assert "nothing to do, no file changed" in result.output
    assert picture_report["calls"] == calls


def test_report_is_complete_checks_the_page_and_its_pictures(tmp_path):
    from mnistcnn.evaluation.report import report_is_complete

    assert not report_is_complete(tmp_path)
    (tmp_path / "report.html").write_text('<img src="a.png"><img src="b&amp;c.png">')
    (tmp_path / "a.png").write_bytes(b"")
    assert not report_is_complete(tmp_path)
    (tmp_path / "b&c.png").write_bytes(b"")
    assert report_is_complete(tmp_path)


# --- 10. calibrate is refused while the run is being trained -----------------------------


def test_calibrate_is_refused_while_the_run_is_trained_and_names_split_test(fake_data, tmp_path):
    run = tmp_path / "run"
    session.train(recipe_config("tutorial", **SMALL), out=run, handle_signals=False)
    before = snapshot(run)
    with RunLock(run):  # `mnistcnn train` still writing into the run
        result = CliRunner().invoke(main, ["calibrate", str(run / "best.pt"), "--split", "test"])
    assert result.exit_code == 1, result.output
    assert (
        "another mnistcnn process" in result.output and "is training into this run" in result.output
    )
    assert snapshot(run) == before, "best.pt not rewritten"
    result = CliRunner().invoke(main, ["calibrate", str(run / "best.pt")])  # no val split
    assert result.exit_code == 1 and "--split test" in result.output, result.output
    assert not (run / LOCK_NAME).exists()


# --- 11. a stop during the last evaluation stops, and says so ----------------------------


def test_stop_during_the_final_evaluation_stops_with_a_true_message(
    fake_data, tmp_path, monkeypatch
):
    train_mod = sys.modules["mnistcnn.engine.loop"]
    run = tmp_path / "run"
    evaluate = train_mod.evaluate_batches
    asked = {"stop": False}

    def evaluate_then_ctrl_c(model, source):  # Ctrl-C arrives during the evaluation
        result = evaluate(model, source)
        asked["stop"] = True
        return result

    monkeypatch.setattr(train_mod, "evaluate_batches", evaluate_then_ctrl_c)
    config = recipe_config("tutorial", **SMALL)
    with pytest.raises(TrainingInterrupted) as info:
        session.train(config, out=run, stop=lambda: asked["stop"], handle_signals=False)
    message = str(info.value)
    assert "stopped after the last epoch (1): training is complete" in message
    assert f"resume it (resume={run}) to write its report" in message  # the library's words
    assert info.value.complete and info.value.checkpoint == run / "last.pt"
    from mnistcnn.cli.common import interrupted_message

    assert f"to write its report: {sys.executable} -m mnistcnn train --resume {run}" in (
        interrupted_message(info.value)
    ) or f"to write its report: mnistcnn train --resume {run}" in interrupted_message(info.value)
    assert load_checkpoint(run / "last.pt").epoch == 1


def test_stop_flag_message_says_when_it_stops(caplog):
    from mnistcnn.engine.signals import graceful_stop

    with graceful_stop() as flag, caplog.at_level("WARNING"):
        signal.raise_signal(signal.SIGINT)
        assert flag()
    assert "stopping after the current step or evaluation" in caplog.text
    assert "at the next step" not in caplog.text


def test_ctrl_c_before_the_command_runs_is_interrupted_130(monkeypatch):
    def importing(*args, **kwargs):  # Ctrl-C in user_errors's own imports (torch, ~2 s)
        raise KeyboardInterrupt

    monkeypatch.setattr(main.commands["train"], "callback", importing)
    result = CliRunner().invoke(main, ["train", "--dry-run"])
    assert result.exit_code == 130
    assert "interrupted" in result.output and "Aborted" not in result.output


# --- 12. distributed: one "interrupted" line, and --nproc in the resume command ----------


def test_only_rank_0_reports_an_interrupt_and_the_hint_keeps_nproc(monkeypatch, tmp_path):
    from mnistcnn.engine import distributed
    from mnistcnn.engine.loop import resume_nproc

    dist = distributed.DistContext(torch.device("cpu"), rank=1, world_size=2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert resume_nproc(dist) == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")  # several machines: each resumes with torchrun
    assert resume_nproc(dist) == 1
    assert resume_nproc(distributed.DistContext(torch.device("cpu"))) == 1

    def interrupted(config, **kw):
        raise TrainingInterrupted("stopped at epoch 1, step 3; resume with: ...", None)

    monkeypatch.setattr(session, "train", interrupted)
    import mnistcnn.engine

    monkeypatch.setattr(mnistcnn.engine, "train", interrupted)
    for rank, expected in (("1", ""), ("0", "interrupted: stopped at epoch 1")):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")
        result = CliRunner().invoke(main, ["train", "--dry-run", "--out", str(tmp_path / "x")])
        assert result.exit_code == 130
        assert result.output.count("interrupted") == (1 if expected else 0), result.output
        assert expected in result.output


# --- 13. file modes and --out checks ------------------------------------------------------


def test_checkpoints_and_config_get_the_usual_file_mode(fake_data, tmp_path):
    old = os.umask(0o022)
    try:
        run = tmp_path / "run"
        session.train(recipe_config("tutorial", **SMALL), out=run, handle_signals=False)
        from mnistcnn.engine.run_dir import RunDir

        RunDir(run, existing=True).rewrite_metrics(load_checkpoint(run / "last.pt").history)
    finally:
        os.umask(old)
    for name in ("best.pt", "last.pt", "config.json", "metrics.csv"):
        assert (run / name).stat().st_mode & 0o777 == 0o644, name


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_out_must_be_a_nonempty_folder_path(command, tmp_path):
    args = [command] + (["--dry-run"] if command == "train" else [str(tmp_path)])
    result = CliRunner().invoke(main, [*args, "--out", ""])
    assert result.exit_code == 2 and "an empty path" in result.output, result.output
    result = CliRunner().invoke(main, [*args, "--out", os.devnull])
    assert result.exit_code == 2, result.output
    assert "is not a directory" in result.output and "not empty" not in result.output


def test_run_dir_that_is_a_file_is_named_as_such(tmp_path):
    from mnistcnn.engine.run_dir import ensure_new_run_dir

    (tmp_path / "f").write_text("x")
    with pytest.raises(RunDirError, match="exists and is not a directory"):
        ensure_new_run_dir(tmp_path / "f")


# --- 14. evaluate: the dataset's classes, and honest ensembles ----------------------------


def test_evaluate_refuses_a_dataset_and_ensemble_members_of_other_classes(
    fake_data, tmp_path, monkeypatch, caplog
):
    import mnistcnn.data
    from mnistcnn.artifact import load_checkpoint, save_checkpoint
    from mnistcnn.data import get_spec

    monkeypatch.setattr(mnistcnn.data, "load_arrays", lambda *a, **kw: synthetic(64, 1))
    runs = [tmp_path / "a", tmp_path / "b"]
    for seed, run in enumerate(runs):
        config = recipe_config("tutorial", **{**SMALL, "seed": seed})
        session.train(config, out=run, handle_signals=False)
    a, b = (str(r / "best.pt") for r in runs)

    def evaluate(*args: str):
        return CliRunner().invoke(main, ["evaluate", *args, "--device", "cpu"])

    result = evaluate(a, "--dataset", "fashion-mnist")
    assert result.exit_code == 1
    assert "the model's classes (trained on mnist) are not fashion-mnist's" in result.output
    fashion = load_checkpoint(a).replace(classes=list(get_spec("fashion-mnist").classes))
    save_checkpoint(tmp_path / "fashion.pt", fashion)
    result = evaluate(a, str(tmp_path / "fashion.pt"))
    assert result.exit_code == 1 and "an ensemble needs models of the same classes" in result.output
    # the same file twice: a one-line warning
    with caplog.at_level("WARNING", logger="mnistcnn"):
        result = evaluate(a, str(runs[0]), "--out", str(tmp_path / "twice"))
    assert result.exit_code == 0, result.output
    warnings = [r for r in caplog.records if "given more than once" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()
    # the ensemble's configuration shows every member, not the first as if for all
    result = evaluate(a, b, "--out", str(tmp_path / "ens"))
    assert result.exit_code == 0, result.output
    page = (tmp_path / "ens" / "report.html").read_text()
    config = page.split("<h2>Configuration</h2>")[1]
    assert f"1: {a}" in config and f"2: {b}" in config
    assert "<td>seed</td><td>differs</td><td>0</td><td>1</td>" in config
    assert "<td>lr</td><td>same</td>" in config


def test_sigterm_while_writing_the_report_says_how_to_finish_it(
    fake_data, real_run_report, monkeypatch, tmp_path
):
    import signal

    import mnistcnn.evaluation.report

    def save_report(*args, **kw):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
        raise AssertionError("SIGTERM did not stop the report")

    monkeypatch.setattr(mnistcnn.evaluation.report, "save_report", save_report)
    before = signal.getsignal(signal.SIGTERM)
    result = cli("--epochs", "1", "--out", str(tmp_path / "run"))
    assert result.exit_code == 130, result.output
    assert "stopped while writing the report; training is complete" in result.output
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back


def test_a_run_that_diverges_says_so_and_suggests_a_lower_lr(fake_data, tmp_path):
    """Finite but exploding loss (lr 1000): exit 0 as before, and a clear warning."""
    result = cli("--epochs", "1", "--lr", "1000", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert "warning: training diverged: after epoch 1 the training loss is" in result.output
    assert "lower the learning rate (now 1000; try 100) with --lr" in result.output
    calm = cli("--epochs", "1", "--out", str(tmp_path / "calm"))
    assert calm.exit_code == 0 and "diverged" not in calm.output


def test_divergence_rule():
    from mnistcnn.engine.finish import divergence

    row = {"epoch": 3, "train_loss": 0.2, "test_accuracy": 0.97}
    assert divergence([row], 10, 0.01) is None
    assert "1.9e+19 nats" in divergence([{**row, "train_loss": 1.9e19}], 10, 1000)
    assert "chance: 2.30 nats, 10.00%" in divergence(
        [{**row, "train_loss": 2.31, "test_accuracy": 0.098}], 10, 5.0
    )
    assert divergence([{**row, "train_loss": 2.31, "test_accuracy": 0.5}], 10, 5.0) is None
    assert divergence([], 10, 0.01) is None
    at_chance = {**row, "train_loss": 2.31, "test_accuracy": 0.098}  # after 3 steps: expected
    assert divergence([at_chance], 10, 0.015, cut_short=True) is None
    assert "1.9e+19" in divergence([{**row, "train_loss": 1.9e19}], 10, 1000, cut_short=True)
    # at chance without the loss growing: no time to fall (2 steps) is not a failure ...
    assert divergence([at_chance], 10, 0.01, steps=2) is None
    # ... after enough steps it did not learn, which is not "diverged" either
    stuck = divergence([at_chance], 10, 0.01, steps=500)
    assert stuck.startswith("training did not learn: after epoch 3 the training loss is 2.31")
    # the loss grew from epoch 1 and ended at chance: diverged, whatever the steps
    first = {**at_chance, "epoch": 1, "train_loss": 0.4, "test_accuracy": 0.9}
    grew = divergence([first, at_chance], 10, 0.1, steps=20)
    assert grew.startswith("training diverged: after epoch 3 the training loss is 2.31 nats")
    assert "(epoch 1: 0.4)" in grew and "try 0.01" in grew
    fell = {**first, "train_loss": 2.4, "test_accuracy": 0.1}
    assert divergence([fell, at_chance], 10, 0.1, steps=20) is None  # fell, a little


@pytest.mark.parametrize("scheduler", ["onecycle", "cosine"])
def test_extending_a_scheduled_run_replans_the_schedule_and_says_so(
    fake_data, tmp_path, caplog, scheduler
):
    """Issue 13.5: onecycle raised "Tried to step 31 times"; cosine's lr climbed back up."""
    run = tmp_path / "run"
    first = cli("--scheduler", scheduler, "--epochs", "3", "--out", str(run))
    assert first.exit_code == 0, first.output
    lr_before = float(first.output.split("lr ")[-1].split()[0])  # the last epoch's lr
    with caplog.at_level("WARNING", logger="mnistcnn"):
        more = cli("--resume", str(run), "--epochs", "5", "--force")
    assert more.exit_code == 0, more.output
    assert "Traceback" not in more.output
    [warning] = [r.getMessage() for r in caplog.records if "re-planned" in r.getMessage()]
    assert f"the {scheduler} schedule was planned for 6 steps and now spans 10" in warning
    assert "(epochs 3 -> 5)" in warning and "at step 6 the learning rate goes from" in warning
    rows = load_checkpoint(run / "last.pt").history
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
    lrs = [r["lr"] for r in rows[3:]]
    assert lrs[1] <= lrs[0] or scheduler == "onecycle"  # cosine keeps annealing, no jump back
    assert lrs[-1] < 1e-3 and lr_before < 1e-2  # both plans end near zero


def test_max_steps_is_named_in_the_header_the_summary_and_the_resume(fake_data, tmp_path):
    """Issue 13.6: after --max-steps, resume must not suggest --epochs (only --max-steps helps)."""
    run = tmp_path / "r"
    first = cli("--epochs", "10", "--max-steps", "3", "--out", str(run))
    assert first.exit_code == 0, first.output
    assert "10 epochs (at most 3 steps), batch 64" in first.output
    assert "after 2 epochs (stopped at --max-steps 3) on cpu" in first.output
    again = cli("--resume", str(run))
    assert again.exit_code == 0, again.output
    assert "the run stopped at --max-steps 3 (2 epochs of 10, 3 steps)" in again.output
    assert (
        "pass a larger --max-steps to train on" in again.output and "--epochs" not in again.output
    )
    more = cli("--resume", str(run), "--max-steps", "6")
    assert more.exit_code == 0 and "epoch   3" in more.output


def test_resume_says_where_it_continues_and_a_refusal_prints_no_header(fake_data, tmp_path):
    """Issue 13.7: a resume prints "resuming ... at epoch E, step S"; a refused one no header."""
    run = interrupted_run(tmp_path / "run")
    refused = cli("--resume", str(run), "--lr", "0.5")
    assert refused.exit_code == 1 and "recipe" not in refused.output, refused.output
    resumed = cli("--resume", str(run))
    assert resumed.exit_code == 0, resumed.output
    ckpt_line = [line for line in resumed.output.splitlines() if line.startswith("resuming")]
    assert ckpt_line and f"resuming {run} at epoch 1, step " in ckpt_line[0]
    assert "done in this epoch)" in ckpt_line[0]
    lines = resumed.output.splitlines()
    assert lines[0].startswith("recipe tutorial:") and lines[1].startswith("resuming")


def test_the_result_says_which_checkpoint_and_how_it_was_chosen(
    fake_data, real_run_report, tmp_path
):
    """Issue 13.8: best.pt's epoch and its selection on the test split, in terminal and report."""
    run = tmp_path / "run"
    result = cli("--epochs", "2", "--out", str(run))
    assert result.exit_code == 0, result.output
    best = load_checkpoint(run / "best.pt")
    epoch = best.best["epoch"]
    assert "final test accuracy" in result.output and "(fp32) after 2 epochs" in result.output
    assert f"best.pt: epoch {epoch}, test accuracy " in result.output
    assert "chosen on the test split, so optimistic; --val-fraction 0.1" in result.output
    page = (run / "report.html").read_text(encoding="utf-8")
    assert f"This report shows best.pt: epoch {epoch} of 2" in page
    assert "chosen on the test split itself" in page
    assert "%</td>" in page.split("Training history")[1]  # accuracies in percent there too


def test_curves_label_a_smoothed_training_loss_as_such():
    from mnistcnn.evaluation.plots import plot_curves

    rows = [{"epoch": 1, "train_loss": 0.9, "train_accuracy": 0.8, "test_loss": 0.4,
             "test_accuracy": 0.9}]  # fmt: skip
    fig = plot_curves(rows, label_smoothing=0.1)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["train (label smoothing 0.1)", "test"]
    assert plot_curves(rows).axes[0].get_legend_handles_labels()[1] == ["train", "test"]


def test_deterministic_flag_reaches_the_config(fake_data, tmp_path, monkeypatch):
    """Issue 14.4: the setting existed without a flag."""
    seen = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda on: seen.append(on))
    result = cli("--deterministic", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert seen == [True]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["deterministic"] is True


def test_a_resume_records_its_new_plan_in_config_json(fake_data, tmp_path):
    """`runs` said 4/3 epochs after `--resume --epochs 4`: config.json records the new plan."""
    run = tmp_path / "run"
    assert cli("--epochs", "1", "--out", str(run)).exit_code == 0
    assert cli("--resume", str(run), "--epochs", "2").exit_code == 0
    assert json.loads((run / "config.json").read_text())["epochs"] == 2


def test_latest_waits_for_best_pt(fake_data, tmp_path, monkeypatch):
    """A run stopped in its first epoch has no best.pt: runs/latest stays where it was."""
    monkeypatch.chdir(tmp_path)
    assert cli("--epochs", "1").exit_code == 0
    good = os.readlink(tmp_path / "runs" / "latest")
    config = recipe_config("tutorial", **{**SMALL, "epochs": 2})
    with pytest.raises(TrainingInterrupted):
        session.train(config, runs_dir=tmp_path / "runs", stop=lambda: True, handle_signals=False)
    assert os.readlink(tmp_path / "runs" / "latest") == good
    assert (tmp_path / "runs" / "latest" / "best.pt").is_file()


def test_early_stopping_on_the_validation_loss(monkeypatch, tmp_path):
    """Issue 14.4: stops once val_loss has not improved for PATIENCE epochs; refused without a
    validation split; a resume of a stopped run has nothing left to do."""
    from mnistcnn.engine.loop_state import epochs_without_improvement

    rows = [{"val_loss": v} for v in (1.0, 0.8, 0.9, 0.85, 0.95)]
    assert epochs_without_improvement(rows) == 3 and epochs_without_improvement(rows[:2]) == 0
    with pytest.raises(SettingError, match="early_stopping needs a validation split"):
        recipe_config("tutorial", early_stopping=2)
    refused = cli("--early-stopping", "2", "--out", str(tmp_path / "x"))
    assert refused.exit_code == 1 and "--early-stopping needs a validation split" in refused.output

    def build_sources(config, device, **kw):
        x, y = synthetic(96, 0)
        xv, yv = synthetic(32, 2)
        xt, yt = synthetic(48, 1)
        train = TensorSource(x, y, 32, shuffle=True, seed=0, device=device)
        val, test = TensorSource(xv, yv, 32, device=device), TensorSource(xt, yt, 48, device=device)
        return session.DataSources(train, {"test": test, "val": val}, [str(i) for i in range(10)],
                                   [0.0], [1.0])  # fmt: skip

    monkeypatch.setattr(session, "build_sources", build_sources)
    monkeypatch.setattr(session, "write_run_report", _stub_report)
    val_losses = iter([1.0, 0.5, 0.7, 0.8, 0.6, 0.9])  # best at epoch 2, then 2 worse ones
    train_mod = sys.modules["mnistcnn.engine.loop"]  # the epoch loop's module
    real = train_mod.evaluate_batches

    def evaluate(model, source):  # the validation source (32 images) gets the scripted losses
        loss, acc = real(model, source)
        return (next(val_losses), acc) if source.num_samples == 32 else (loss, acc)

    monkeypatch.setattr(train_mod, "evaluate_batches", evaluate)
    run = tmp_path / "run"
    result = cli(
        "--epochs", "6", "--val-fraction", "0.1", "--early-stopping", "2", "--out", str(run)
    )
    assert result.exit_code == 0, result.output
    assert "after 4 epochs (stopped early: the validation loss did not improve for 2 epochs)" in (
        result.output
    )
    again = cli("--resume", str(run))
    assert again.exit_code == 0 and "nothing to do" in again.output
