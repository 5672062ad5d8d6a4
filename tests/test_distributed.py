"""Data-parallel training: sharding, and 2 gloo processes on 127.0.0.1 against 1 process."""

from __future__ import annotations

import itertools
import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from mnistcnn.data.loaders import DataLoaderSource, TensorSource, epoch_permutation, rank_batches
from mnistcnn.engine.distributed import DistContext, init_distributed, rank_device

# Few steps on a 509-image subset (8 global batches of 64; the last holds 61, so the two
# ranks get 31 and 30 samples: the uneven tail is part of the test).
CONFIG = {
    "train_subset": 509,
    "epochs": 2,
    "batch_size": 64,
    "optimizer": "sgd",
    "lr": 0.1,
    "normalize": True,
    "momentum": 0.9,
    "device": "cpu",
    "seed": 5,
    "tensorboard": "<run>/tensorboard",  # rank 0 alone logs (and keeps the top checkpoint)
    "keep_top": 1,
}
RUN_FILES = {
    "tensorboard",
    "top",
    "config.json",
    "metrics.csv",
    "last.pt",
    "best.pt",
    "curves.png",
    "report.html",
    "worst_errors.png",
    "confused_pairs.png",
    "per_class_accuracy.png",
    "confusion_matrix.png",
}  # fmt: skip  (the library writes the report, as the CLI did)


@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("n", [0, 1, 5, 64, 65, 509, 1000])
@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_rank_batches_cover_every_index_exactly_once(world_size, n, batch_size):
    order = epoch_permutation(n, seed=3, epoch=1)
    parts = [list(rank_batches(order, batch_size, r, world_size)) for r in range(world_size)]
    steps = -(-n // batch_size)
    assert all(len(p) == steps for p in parts), "every rank must take the same number of steps"
    seen = torch.cat([b for p in parts for b in p]) if n else torch.empty(0, dtype=torch.long)
    assert sorted(seen.tolist()) == list(range(n)), "each index once, nothing padded or dropped"
    for k in range(steps):
        shards = [p[k] for p in parts]
        glob = order[k * batch_size : (k + 1) * batch_size]
        assert sorted(torch.cat(shards).tolist()) == sorted(glob.tolist())
        sizes = [len(s) for s in shards]
        assert max(sizes) - min(sizes) <= 1
        if len(glob) == batch_size and batch_size % world_size == 0:
            assert sizes == [batch_size // world_size] * world_size


def test_rank_batches_rejects_bad_ranks():
    with pytest.raises(ValueError, match="rank"):
        list(rank_batches(torch.arange(4), 2, rank=2, world_size=2))


def _source_batches(make, world_size):
    per_rank = []
    for r in range(world_size):
        src = make(r)
        src.set_epoch(2)
        per_rank.append([(x.clone(), y.clone()) for x, y in src])
    return per_rank


@pytest.mark.parametrize("kind", ["tensor", "dataloader"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_sources_shard_global_batches(kind, shuffle):
    """Both loader paths: ranks' batches are strided parts of the 1-process batches.

    10 images in batches of 4 on 3 ranks: the tail of 2 leaves rank 2 an empty batch.
    """
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 28, 28)
    labels = torch.arange(10)

    def make(rank, world_size=3):
        kw = {"shuffle": shuffle, "seed": 1, "rank": rank, "world_size": world_size}
        if kind == "tensor":
            return TensorSource(images.contiguous(), labels, 4, **kw)
        data = [(images[i].float() / 255, int(labels[i])) for i in range(10)]
        return DataLoaderSource(data, 4, **kw)  # type: ignore[arg-type]

    assert len(make(0)) == 3 and make(2).num_samples == 10
    (single,) = _source_batches(lambda r: make(r, 1), 1)
    ranks = _source_batches(make, 3)
    assert [len(r) for r in ranks] == [3, 3, 3]
    for k, (gx, gy) in enumerate(single):
        for r in range(3):
            x, y = ranks[r][k]
            assert torch.equal(y, gy[r::3]) and torch.equal(x, gx[r::3])
    assert ranks[2][2][0].shape == (0, 1, 28, 28) and ranks[2][2][1].dtype == torch.int64


def test_single_process_context_without_torchrun_env():
    ctx = init_distributed("cpu", env={})
    assert not ctx.distributed and ctx.is_main and ctx.world_size == 1
    assert ctx.sum([1.5, 2]) == [1.5, 2.0] and ctx.any(True) and not ctx.any(False)
    model = torch.nn.Linear(2, 2)
    assert ctx.wrap(model) is model
    ctx.barrier()
    ctx.close()
    assert not init_distributed("cpu", env={"WORLD_SIZE": "1", "RANK": "0"}).distributed


def test_bad_torchrun_env_and_devices_are_clear_errors():
    with pytest.raises(ValueError, match=r"RANK='5' must be in 0..1"):
        init_distributed("cpu", env={"WORLD_SIZE": "2", "RANK": "5"})
    assert rank_device("cpu", 3) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert rank_device("auto", 1) == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            rank_device("cuda", 0)


def test_global_mean_loss_divides_the_sum_by_the_global_count():
    ctx = DistContext(torch.device("cpu"))  # one rank: world_size / global count = 1 / 3
    loss, finite = ctx.global_mean_loss(torch.tensor(6.0), 3)
    assert finite and float(loss) == 2.0
    assert not ctx.global_mean_loss(torch.tensor(float("nan")), 3)[1]


# --- two real processes --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, tmp: str, root: str) -> None:
    """One rank: join the group, train (A) fully, (B) until stopped, (B) resumed."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    tmp_path = Path(tmp)
    writes: list[str] = []
    if rank > 0:
        os.chdir(tmp_path / f"cwd{rank}")

        def audit(event, args):  # files this rank creates or opens for writing in tmp_path
            if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
                mode, flags = args[1], args[2] or 0
                write = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
                if write or (mode and any(c in str(mode) for c in "wax+")):
                    writes.append(os.path.abspath(os.fsdecode(args[0])))
            elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.symlink"):
                writes.append(os.path.abspath(os.fsdecode(args[0])))

        sys.addaudithook(audit)
    import torch.distributed as dist

    from mnistcnn.config import recipe_config
    from mnistcnn.engine import train
    from mnistcnn.engine.loop import TrainingInterrupted

    dist.init_process_group("gloo", rank=rank, world_size=world)  # train() reuses it
    config = recipe_config("tutorial", **CONFIG)
    kw = {"data_root": root, "checkpoint_every": 3}
    result = train(config, out=tmp_path / "A", **kw)
    assert result.is_main == (rank == 0)
    calls = itertools.count()
    try:  # polled after every step: stop after the 5th
        train(config, out=tmp_path / "B", stop=lambda: next(calls) >= 4, **kw)
        raise AssertionError("not interrupted")
    except TrainingInterrupted:
        pass
    train(config, resume=tmp_path / "B", **kw)
    dist.barrier()
    dist.destroy_process_group()
    if rank > 0:
        recorded = [w for w in writes if w.startswith(str(tmp_path))]
        writes.clear()
        (tmp_path / f"writes{rank}.json").write_text(json.dumps(recorded))


def _spawn(world: int, tmp_path: Path, root: Path, timeout: float = 240) -> None:
    for r in range(1, world):
        (tmp_path / f"cwd{r}").mkdir()
    ctx = mp.start_processes(
        _worker,
        args=(world, _free_port(), str(tmp_path), str(root)),
        nprocs=world,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"{world} processes did not finish in {timeout} s")


def test_two_gloo_processes_match_one_process_and_only_rank0_writes(
    mnist_root, tmp_path, monkeypatch
):
    """2 processes x 32 samples per step == 1 process x 64, within float32 rounding.

    Tolerance atol 1e-6, rtol 1e-5 (weights are ~0.1): each step the two ranks'
    gradients are summed by gloo in another order than one 64-sample backward
    sums them, so every step differs by float32 rounding (~1e-7 relative);
    plain SGD + momentum is linear in the gradient, so over 16 steps these add
    up, they do not grow. (Adam divides by sqrt(v): for near-zero gradients the
    same rounding changes an update by up to lr, so it is compared loosely in
    docs/distributed.md, not here.) Measured difference: ~1e-8.
    """
    from mnistcnn.config import recipe_config
    from mnistcnn.engine import load_checkpoint, train

    _spawn(2, tmp_path, mnist_root)
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    try:
        train(recipe_config("tutorial", **CONFIG), out=tmp_path / "one", data_root=mnist_root)
    finally:
        torch.set_num_threads(os.cpu_count() or 1)
    one = load_checkpoint(tmp_path / "one" / "last.pt")
    two = load_checkpoint(tmp_path / "A" / "last.pt")
    assert one.step == two.step == 16
    for k, w in one.state_dict.items():
        assert torch.allclose(two.state_dict[k], w, atol=1e-6, rtol=1e-5), k
    metrics = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
    for a, b in zip(one.history, two.history, strict=True):  # gathered evaluation
        for key in metrics:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=2e-4), key

    resumed = load_checkpoint(tmp_path / "B" / "last.pt")  # stopped after step 5, resumed
    assert resumed.step == 16
    for a, b in zip(resumed.history, two.history, strict=True):  # partial sums kept once
        assert [a[k] for k in metrics] == [b[k] for k in metrics]
    for k, w in two.state_dict.items():
        assert torch.equal(resumed.state_dict[k], w), f"resume not exact: {k}"
    for run in ("A", "B"):
        assert {p.name for p in (tmp_path / run).iterdir()} == RUN_FILES
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logged = EventAccumulator(str(tmp_path / "B" / "tensorboard"))  # stopped, then resumed
    logged.Reload()
    test_accuracy = [(e.step, e.value) for e in logged.Scalars("accuracy/test")]
    expected = [(r["epoch"], r["test_accuracy"]) for r in two.history]
    assert test_accuracy == [(s, pytest.approx(v, rel=1e-6)) for s, v in expected]
    assert json.loads((tmp_path / "writes1.json").read_text()) == [], "rank 1 wrote files"
    assert list((tmp_path / "cwd1").iterdir()) == []


@pytest.mark.slow
def test_nproc_cli_prints_once_stops_on_sigterm_and_resumes(mnist_root, tmp_path):
    """``mnistcnn train --nproc 2``: torchrun forwards SIGTERM once; the ranks agree to stop."""
    import signal
    import subprocess

    from mnistcnn.engine import load_checkpoint

    out = tmp_path / "run"
    env = {**os.environ, "MNISTCNN_DATA": str(mnist_root), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "mnistcnn", "train", "--nproc", "2", "--device", "cpu"]
    flags = ["--train-subset", "12800", "--epochs", "1", "--checkpoint-every", "5"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, "env": env}
    proc = subprocess.Popen([*args, *flags, "--out", str(out), "--no-progress"], **pipes)
    deadline = time.monotonic() + 180
    while not (out / "last.pt").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert output.count("recipe tutorial:") == 1, "only rank 0 prints"
    assert "resume with: " in output and f"mnistcnn train --nproc 2 --resume {out}" in output
    assert output.count("interrupted:") == 1, "only rank 0 says it stopped"
    stopped = load_checkpoint(out / "last.pt")
    assert 0 < stopped.step < 200
    done = subprocess.run([*args, "--resume", str(out), "--no-progress"], timeout=300, **pipes)
    assert done.returncode == 0, done.stdout
    assert done.stdout.count("final test accuracy") == 1
    assert load_checkpoint(out / "last.pt").step == 200


def _setup_failure_worker(rank: int, world: int, port: int, tmp: str, root: str) -> None:
    """Both ranks train into a folder that holds a run; write what each raised."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))  # fmt: skip
    torch.set_num_threads(1)
    from mnistcnn.config import recipe_config
    from mnistcnn.engine import train

    try:
        train(recipe_config("tutorial", **CONFIG), out=Path(tmp) / "taken", data_root=root)
        outcome = "trained"
    except Exception as exc:  # noqa: BLE001 - the outcome is the test's result
        outcome = f"{type(exc).__name__}: {exc}"
    (Path(tmp) / f"outcome{rank}.txt").write_text(outcome)


def test_rank0_setup_failure_stops_every_rank_cleanly(mnist_root, tmp_path):
    """Rank 0 refuses a used output folder; rank 1 learns it and stops (no gloo error)."""
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "last.pt").write_bytes(b"a previous run")
    ctx = mp.start_processes(
        _setup_failure_worker,
        args=(2, _free_port(), str(tmp_path), str(mnist_root)),
        nprocs=2,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the ranks did not stop")
    rank0 = (tmp_path / "outcome0.txt").read_text()
    assert rank0.startswith("RunDirError: ") and "already exists and is not empty" in rank0
    assert (tmp_path / "outcome1.txt").read_text().startswith("PeerFailure: another rank failed")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["last.pt"]


def test_nproc_from_python_reports_each_epoch_in_the_caller(mnist_root, tmp_path, monkeypatch):
    """``mnistcnn.train(config, nproc=2)``: the workers train; the caller's callbacks see
    rank 0's start and epochs; it returns rank 0's result, the same as the run folder's."""
    import mnistcnn
    from mnistcnn.config import recipe_config
    from mnistcnn.engine import load_checkpoint

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = recipe_config("tutorial", **{**CONFIG, "tensorboard": None, "keep_top": None})
    starts, rows = [], []
    result = mnistcnn.train(
        config, nproc=2, out=tmp_path / "run", data_root=mnist_root, report=False,
        on_start=starts.append, on_epoch_end=rows.append,
    )  # fmt: skip
    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    assert [s.run_dir for s in starts] == [tmp_path / "run"] and not starts[0].resumed
    assert [r["epoch"] for r in rows] == [1, 2] and rows == saved.history
    assert result.run_dir == tmp_path / "run" and result.history.rows == rows
    assert result.history.steps == saved.step == 16 and result.is_main
    assert json.loads((tmp_path / "run" / "config.json").read_text())["world_size"] == 2
    again = mnistcnn.train(config, nproc=2, resume=tmp_path / "run", report=False)
    assert again.already_complete and again.history.steps == 16  # no workers: nothing to do
