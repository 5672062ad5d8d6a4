"""``train --tensorboard [DIR]`` (mnistcnn.engine.tblog) and ``train --keep-top K``
(mnistcnn.engine.top_k): on synthetic data (128 training, 64 test pictures), a few
steps each."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from mnistcnn.cli import main
from mnistcnn.config import TrainConfig, recipe_config
from mnistcnn.data.loaders import TensorSource
from mnistcnn.engine import load_checkpoint, session
from mnistcnn.engine.loop import TrainingInterrupted
from mnistcnn.engine.run_dir import read_metrics
from mnistcnn.engine.tblog import DEFAULT_LOG_DIR, log_dir, scalar_tag
from mnistcnn.engine.top_k import top_file_name

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

SMALL = {"batch_size": 32, "device": "cpu", "seed": 0}


def synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, 28, 28) pictures whose label's row is bright, labels 0..9."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = torch.randint(0, 30, (n, 28, 28), generator=g, dtype=torch.uint8)
    for i, lab in enumerate(labels.tolist()):
        images[i, 2 * lab + 3] = 250
    return images, labels


def _stub_report(run_dir, history, **kw):
    path = Path(run_dir) / "report.html"
    path.write_text("<html>stub</html>")
    return path


@pytest.fixture
def fake_data(monkeypatch):
    """Synthetic batch sources for ``session.train``; no real report."""

    def build_sources(config, device, *, data_root=None, mirror=None, rank=0, world_size=1):
        x, y = synthetic(128, 0)
        xt, yt = synthetic(64, 1)
        train = TensorSource(x, y, config.batch_size, shuffle=True, seed=config.seed, device=device)
        test = TensorSource(xt, yt, 64, device=device)
        return session.DataSources(train, {"test": test}, [str(i) for i in range(10)], [0.0], [1.0])

    monkeypatch.setattr(session, "build_sources", build_sources)
    monkeypatch.setattr(session, "write_run_report", _stub_report)
    monkeypatch.setattr("mnistcnn.engine.finish.write_run_report", _stub_report)


def cli(*args: str):
    return CliRunner().invoke(main, ["train", "--no-progress", "--device", "cpu", *args])


def stop_after(epoch: int):
    """(on_epoch_end, stop): stop once epoch ``epoch``'s row and checkpoint are written."""
    done = []
    return (lambda row: done.append(row["epoch"])), (lambda: epoch in done)


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_same_as_metrics(run: Path, tb: Path) -> None:
    """Every metrics.csv column but epoch is a scalar tag, with the csv's values at its epochs."""
    rows = read_metrics(run / "metrics.csv")
    logged = scalars(tb)
    columns = [c for c in rows[0] if c != "epoch"]
    assert sorted(logged) == sorted(scalar_tag(c) for c in columns)
    for column in columns:
        expected = [(int(r["epoch"]), r[column]) for r in rows]
        got = logged[scalar_tag(column)]
        assert [s for s, _ in got] == [s for s, _ in expected], column
        # metrics.csv keeps 6 significant digits (rel. error <= 5e-6), TensorBoard float32 (6e-8)
        assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=5.1e-6), column


# --- tensorboard ------------------------------------------------------------------------


def test_tensorboard_logs_what_metrics_csv_has_and_a_sample_grid(fake_data, tmp_path):
    run = tmp_path / "run"
    result = cli("--epochs", "2", "--batch-size", "32", "--tensorboard", "--out", str(run))
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["tensorboard"] == DEFAULT_LOG_DIR
    tb = run / "tensorboard"
    assert_same_as_metrics(run, tb)
    assert scalar_tag("test_accuracy") == "accuracy/test" and scalar_tag("lr") == "lr"
    acc = EventAccumulator(str(tb), size_guidance={"images": 0, "histograms": 0})
    acc.Reload()
    assert acc.Tags()["images"] == ["samples/train"]
    image = acc.Images("samples/train")[0]
    assert image.step == 0 and (image.width, image.height) == (8 * 30 + 2, 4 * 30 + 2)  # 32 pics
    weights = [t for t in acc.Tags()["histograms"] if t.startswith("weights/")]
    assert "weights/net.conv1.weight" in weights
    assert [e.step for e in acc.Histograms("weights/net.conv1.weight")] == [1, 2]
    conv1 = load_checkpoint(run / "last.pt").state_dict["net.conv1.weight"]
    assert acc.Histograms("weights/net.conv1.weight")[-1].histogram_value.num == conv1.numel()


def test_tensorboard_changes_no_number_of_the_run(fake_data, tmp_path):
    config = recipe_config("tutorial", epochs=2, **SMALL)
    plain = session.train(config, out=tmp_path / "plain", handle_signals=False)
    logged = session.train(
        config.replace(tensorboard=str(tmp_path / "tb")), out=tmp_path / "tb-run",
        handle_signals=False,
    )  # fmt: skip

    def numbers(rows):
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]

    assert numbers(logged.history.rows) == numbers(plain.history.rows)
    assert_same_as_metrics(tmp_path / "tb-run", tmp_path / "tb")  # a DIR of one's own


def test_resumed_run_continues_the_log_without_repeating_steps(fake_data, tmp_path):
    run = tmp_path / "run"
    config = recipe_config("tutorial", epochs=3, tensorboard=DEFAULT_LOG_DIR, **SMALL)
    on_epoch_end, stop = stop_after(1)
    with pytest.raises(TrainingInterrupted):
        session.train(config, out=run, stop=stop, on_epoch_end=on_epoch_end, handle_signals=False)
    # what a run killed after logging epochs 2 and 3 (but before their checkpoints) leaves
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run / "tensorboard")) as stray:
        for step in (2, 3):
            stray.add_scalar("loss/train", 99.0, step)
    result = session.train(config, resume=run, handle_signals=False)  # the recorded setting
    assert [r["epoch"] for r in result.history.rows] == [1, 2, 3]
    assert_same_as_metrics(run, run / "tensorboard")  # epochs 1, 2, 3 once each, no 99
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 3


def test_tensorboard_missing_names_the_extra_and_makes_no_run(fake_data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    result = cli("--epochs", "1", "--tensorboard", "--out", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert "--tensorboard logging needs the tensorboard package" in result.output
    assert "pip install 'mnistcnn[tensorboard]'" in result.output
    assert not (tmp_path / "run").exists()


def test_log_dir_reads_the_run_prefix(tmp_path):
    assert log_dir("<run>/tensorboard", tmp_path) == tmp_path / "tensorboard"
    assert log_dir("<run>", tmp_path) == tmp_path
    assert log_dir("logs/tb", tmp_path) == Path("logs/tb")
    flag = next(p for p in main.commands["train"].params if p.name == "tensorboard")
    assert flag.flag_value == DEFAULT_LOG_DIR and TrainConfig().tensorboard is None


# --- keep-top ---------------------------------------------------------------------------


def expected_top(run: Path, k: int) -> list[str]:
    rows = read_metrics(run / "metrics.csv")
    ranked = sorted(rows, key=lambda r: (-r["test_accuracy"], r["epoch"]))[:k]
    return [top_file_name(int(r["epoch"]), r["test_accuracy"]) for r in ranked]


def test_keep_top_keeps_the_k_best_epochs(fake_data, tmp_path):
    run = tmp_path / "run"
    result = cli("--epochs", "5", "--batch-size", "32", "--lr", "0.001", "--keep-top", "2",
                 "--out", str(run))  # fmt: skip
    assert result.exit_code == 0, result.output
    kept = expected_top(run, 2)
    # test accuracy 10.94, 42.19, 31.25, 42.19, 42.19 %: epoch 3 came in and dropped out,
    # epoch 5 ties epochs 2 and 4 and stays out (best.pt moves on a strict gain only)
    assert kept == ["epoch-002-acc-42.19.pt", "epoch-004-acc-42.19.pt"]
    assert sorted(p.name for p in (run / "top").iterdir()) == sorted([*kept, "top.json"])
    record = json.loads((run / "top" / "top.json").read_text())
    assert [e["file"] for e in record["kept"]] == kept and record["monitor"] == "test_accuracy"
    rows = {int(r["epoch"]): r for r in read_metrics(run / "metrics.csv")}
    for entry in record["kept"]:
        ckpt = load_checkpoint(run / "top" / entry["file"])
        assert ckpt.epoch == entry["epoch"]  # that epoch's weights, complete
        assert ckpt.metrics["test_accuracy"] == rows[entry["epoch"]]["test_accuracy"]
    best = load_checkpoint(run / "best.pt")  # best.pt is the first of the top
    assert best.epoch == record["kept"][0]["epoch"]


def test_keep_top_resumes_with_its_record_and_never_deletes_what_it_did_not_write(
    fake_data, tmp_path
):
    run = tmp_path / "run"
    config = recipe_config("tutorial", epochs=5, lr=0.002, keep_top=1, **SMALL)
    on_epoch_end, stop = stop_after(2)
    with pytest.raises(TrainingInterrupted):
        session.train(config, out=run, stop=stop, on_epoch_end=on_epoch_end, handle_signals=False)
    (kept,) = expected_top(run, 1)
    assert kept == "epoch-002-acc-31.25.pt"  # test accuracy 23.44, 31.25 %
    assert sorted(p.name for p in (run / "top").iterdir()) == [kept, "top.json"]
    mine = run / "top" / "epoch-000-acc-100.00.pt"  # the user's file, in the same folder
    mine.write_bytes(b"not mnistcnn's")
    session.train(config, resume=run, handle_signals=False)
    rows = read_metrics(run / "metrics.csv")
    (best,) = expected_top(run, 1)
    assert best == "epoch-005-acc-71.88.pt"  # then 31.25, 39.06, 71.88 %: epoch 2's file went
    assert sorted(p.name for p in (run / "top").iterdir()) == sorted({best, mine.name, "top.json"})
    assert mine.read_bytes() == b"not mnistcnn's" and len(rows) == 5
    assert [e["file"] for e in json.loads((run / "top" / "top.json").read_text())["kept"]] == [best]


def test_keep_top_leaves_a_kept_file_changed_since(tmp_path):
    from mnistcnn.engine.top_k import TopCheckpoints

    (tmp_path / "last.pt").write_bytes(b"epoch 1")
    top = TopCheckpoints(tmp_path, 1, "val_accuracy")
    top({"epoch": 1, "val_accuracy": 0.5})
    first = tmp_path / "top" / top_file_name(1, 0.5)
    assert first.read_bytes() == b"epoch 1"
    first.write_bytes(b"edited by hand")  # no longer the file the run wrote
    (tmp_path / "last.pt").write_bytes(b"epoch 2")
    top({"epoch": 2, "val_accuracy": 0.75})
    top({"epoch": 3, "val_accuracy": 0.75})  # a tie keeps the earlier epoch
    top({"epoch": 4, "val_accuracy": float("nan")})  # an epoch without batches: no candidate
    assert first.read_bytes() == b"edited by hand"
    assert sorted(p.name for p in (tmp_path / "top").iterdir()) == sorted(
        [first.name, top_file_name(2, 0.75), "top.json"]
    )
    assert top.files() == [tmp_path / "top" / "epoch-002-acc-75.00.pt"]


def test_keep_top_on_resume_forgets_epochs_to_train_again_and_a_smaller_k(tmp_path):
    from mnistcnn.engine.top_k import TopCheckpoints

    (tmp_path / "last.pt").write_bytes(b"weights")
    top = TopCheckpoints(tmp_path, 3, "test_accuracy")
    for epoch, value in [(1, 0.5), (2, 0.7), (3, 0.6)]:
        top({"epoch": epoch, "test_accuracy": value})

    def names():
        return sorted(p.name for p in (tmp_path / "top").iterdir())

    assert names() == ["epoch-001-acc-50.00.pt", "epoch-002-acc-70.00.pt",
                       "epoch-003-acc-60.00.pt", "top.json"]  # fmt: skip
    TopCheckpoints(tmp_path, 3, "test_accuracy", resume_epoch=3)  # epoch 3 is trained again
    assert names() == ["epoch-001-acc-50.00.pt", "epoch-002-acc-70.00.pt", "top.json"]
    again = TopCheckpoints(tmp_path, 1, "test_accuracy", resume_epoch=3)  # --keep-top 1 now
    assert names() == ["epoch-002-acc-70.00.pt", "top.json"]
    assert again.files() == [tmp_path / "top" / "epoch-002-acc-70.00.pt"]
