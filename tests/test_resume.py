"""Crash-safe, exact resume: killed or stopped runs continue to bitwise the same weights."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from mnistcnn.artifact import Checkpoint, save_checkpoint
from mnistcnn.config import recipe_config
from mnistcnn.engine import load_checkpoint, train
from mnistcnn.engine.loop import TrainingInterrupted

pytestmark = pytest.mark.slow

FLAGS = ["--train-subset", "6400", "--epochs", "2", "--loader", "tensor", "--seed", "3",
         "--no-progress", "--checkpoint-every", "10"]  # fmt: skip


def cli(args, root, **kw):
    env = {**os.environ, "MNISTCNN_DATA": str(root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "mnistcnn", "train", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kw)  # fmt: skip


def final_weights(run_dir):
    return load_checkpoint(run_dir / "last.pt").state_dict


def assert_bitwise_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def reference(mnist_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = cli([*FLAGS, "--out", str(out)], mnist_root)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    return out


def wait_for_step(path, min_step, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training ended before step {min_step}: {proc.stdout.read()}")
        if path.exists():
            try:
                if load_checkpoint(path).step >= min_step:
                    return
            except Exception:
                pass  # being replaced right now: rename is atomic, retry
        time.sleep(0.05)
    pytest.fail("no checkpoint appeared")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_resumes_to_bitwise_equal_weights(sig, reference, mnist_root, tmp_path):
    out = tmp_path / "run"
    proc = cli([*FLAGS, "--out", str(out)], mnist_root)
    wait_for_step(out / "last.pt", 20, proc)
    time.sleep(random.Random(sig).uniform(0.0, 0.5))  # a random step after a mid-epoch checkpoint
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=120)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130, output
        assert "resume with: " in output and f"mnistcnn train --resume {out}" in output
    stopped = load_checkpoint(out / "last.pt")
    assert 0 < stopped.step < 200, "the run must be stopped mid-way for this test to mean anything"
    resumed = cli(["--resume", str(out), "--no-progress"], mnist_root)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert_bitwise_equal(final_weights(out), final_weights(reference))
    ref_rows = (reference / "metrics.csv").read_text().splitlines()
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # header + 2 epochs, no duplicate rows
    for ours, theirs in zip(rows, ref_rows):  # same losses and accuracies; seconds differ
        assert ours.split(",")[:6] == theirs.split(",")[:6]


def test_in_process_stop_and_resume(mnist_root, tmp_path):
    config = recipe_config("tutorial", train_subset=6400, epochs=2, loader="tensor", seed=3)
    # The reference runs in this process too: the thread count changes float sums.
    uninterrupted = train(config, out=tmp_path / "ref", data_root=mnist_root).run_dir
    calls = {"n": 0}

    def stop_after_137():
        calls["n"] += 1
        return calls["n"] >= 137  # mid-epoch 2: polled after every step and every evaluation

    with pytest.raises(TrainingInterrupted) as info:
        train(config, out=tmp_path / "run", data_root=mnist_root, stop=stop_after_137)
    assert info.value.checkpoint == tmp_path / "run" / "last.pt"
    ckpt = load_checkpoint(info.value.checkpoint)
    # 100 steps and the evaluation of epoch 1 are 101 polls: the 137th is after step 136
    assert (ckpt.step, ckpt.position["epoch"], ckpt.position["batch"]) == (136, 2, 36)
    result = train(config, resume=tmp_path / "run", data_root=mnist_root)
    assert result.history.steps == 200 and len(result.history.rows) == 2
    assert_bitwise_equal(final_weights(tmp_path / "run"), final_weights(uninterrupted))


def test_resume_refuses_changed_math_unless_forced(reference, mnist_root, tmp_path):
    proc = cli(["--resume", str(reference), "--lr", "0.5"], mnist_root)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "would change the result: lr: 0.01 -> 0.5" in output
    assert "--force" in output


def test_crash_during_checkpoint_write_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt = Checkpoint(
        path, "tutorial", {}, {}, ["0", "1"], {"mean": [0.0], "std": [1.0]}, [1, 28, 28]
    )
    save_checkpoint(path, ckpt.replace(epoch=1))
    before = path.read_bytes()

    def half_then_crash(obj, fh):
        fh.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_crash)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, ckpt.replace(epoch=2))
    assert path.read_bytes() == before
    assert load_checkpoint(path).epoch == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # the temp file is gone
