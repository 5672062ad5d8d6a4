"""``mnistcnn runs``: the run folders of a directory with their progress and status.

Real runs are trained on synthetic data (``session.build_sources`` replaced,
the final report stubbed, as in ``tests/test_train_session.py``); failed,
stopped and validation runs are also made by hand with known metrics, so the
table's values are checked exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnistcnn.cli import main
from mnistcnn.config import recipe_config
from mnistcnn.data.loaders import TensorSource
from mnistcnn.engine import session
from mnistcnn.engine.loop import TrainingInterrupted
from mnistcnn.engine.run_dir import RunLock, read_metrics
from mnistcnn.engine.run_list import (
    TABLE_COLUMNS,
    format_table,
    list_runs,
    lock_holder,
    summarize_run,
    table_rows,
)
from test_train_session import synthetic

HEADER = "epoch,train_loss,train_accuracy,test_loss,test_accuracy,lr,train_seconds,eval_seconds"


def _stub_report(run_dir, history, **kw):
    path = Path(run_dir) / "report.html"
    path.write_text("<html>stub</html>")
    return path


@pytest.fixture
def fake_data(monkeypatch):
    """Synthetic sources for ``session.train`` and a stub report (no dataset is read)."""

    def build_sources(config, device, *, data_root=None, mirror=None, rank=0, world_size=1):
        x, y = synthetic(128, 0)
        xt, yt = synthetic(64, 1)
        train = TensorSource(x, y, config.batch_size, shuffle=True, seed=config.seed, device=device)
        test = TensorSource(xt, yt, 64, device=device)
        return session.DataSources(train, {"test": test}, [str(i) for i in range(10)], [0.0], [1.0])

    monkeypatch.setattr(session, "build_sources", build_sources)
    monkeypatch.setattr(session, "write_run_report", _stub_report)
    monkeypatch.setattr("mnistcnn.engine.finish.write_run_report", _stub_report)
    monkeypatch.delenv("MNISTCNN_DATA", raising=False)
    monkeypatch.delenv("MNISTCNN_MIRROR", raising=False)


def train_cli(*args: str) -> None:
    result = CliRunner().invoke(
        main, ["train", "--no-progress", "--device", "cpu", "--batch-size", "32", *args]
    )
    assert result.exit_code == 0, result.output


def runs_cli(*args: str):
    return CliRunner().invoke(main, ["runs", *args])


def hand_made(folder: Path, config: dict, metrics: str | None = None, files=()) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    if metrics is not None:
        (folder / "metrics.csv").write_text(metrics)
    for name in files:
        (folder / name).write_bytes(b"x")
    return folder


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


@pytest.fixture
def runs_dir(fake_data, tmp_path) -> Path:
    """runs/ with a finished, a stopped, a failed and a validation run (and ``latest``)."""
    base = tmp_path / "runs"
    train_cli("--epochs", "2", "--seed", "0", "--out", str(base / "a-finished"))
    config = recipe_config("tutorial", epochs=3, batch_size=32, device="cpu", seed=0)
    with pytest.raises(TrainingInterrupted):  # stopped during its first epoch
        session.train(config, out=base / "b-stopped", stop=lambda: True, handle_signals=False)
    hand_made(base / "c-failed", {"model": "fastcnn", "dataset": "kmnist", "epochs": 5})
    hand_made(
        base / "d-val",
        {"model": "bncnn", "dataset": "fashion-mnist", "recipe": "best", "epochs": 3},
        f"{HEADER},val_loss,val_accuracy\n"
        "1,0.5,0.8,0.4,0.85,0.01,61,2,0.41,0.84\n"
        "2,0.3,0.9,0.35,0.88,0.01,58,4,0.30,0.90\n",
        files=["last.pt", "best.pt"],
    )
    (base / "notes").mkdir()  # no config.json: not a run
    (base / "latest").symlink_to("a-finished")  # a link: not listed twice
    return base


def test_table_lists_each_run_with_exact_values(runs_dir):
    rows = read_metrics(runs_dir / "a-finished" / "metrics.csv")
    best = max(rows, key=lambda r: r["test_accuracy"])
    seconds = sum(r["train_seconds"] + r["eval_seconds"] for r in rows)
    result = runs_cli(str(runs_dir))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == list(TABLE_COLUMNS)
    assert [line.split()[0] for line in lines[1:]] == [
        "a-finished",
        "b-stopped",
        "c-failed",
        "d-val",
    ]
    runs = list_runs(runs_dir)
    cells = table_rows(runs)
    assert cells[0] == (
        "a-finished",
        "tutorial",
        "mnist",
        "tutorial",
        "2/2",
        pct(rows[-1]["test_accuracy"]),
        f"{pct(best['test_accuracy'])} (epoch {best['epoch']})",
        f"{seconds:.1f}s",
        "finished",
    )
    assert cells[1] == (
        "b-stopped",
        "tutorial",
        "mnist",
        "tutorial",
        "0/3",
        "-",
        "-",
        "-",
        "stopped",
    )
    assert cells[2] == ("c-failed", "fastcnn", "kmnist", "?", "0/5", "-", "-", "-", "failed")
    assert cells[3] == (
        "d-val",
        "bncnn",
        "fashion-mnist",
        "best",
        "2/3",
        "88.00%",
        "90.00% val (epoch 2)",
        "2m05s",
        "stopped",
    )
    # the printed table holds the same cells, aligned in columns
    assert result.output.rstrip("\n") == format_table(runs)
    for line, row in zip(lines[1:], cells):
        assert line.split("  ")[0] == row[0]
        assert line.rstrip().endswith(row[-1])


def test_json_gives_the_numbers(runs_dir):
    result = runs_cli(str(runs_dir), "--json")
    assert result.exit_code == 0, result.output
    data = {run["name"]: run for run in json.loads(result.output)}
    assert list(data) == ["a-finished", "b-stopped", "c-failed", "d-val"]
    d = data["d-val"]
    assert d == {
        "name": "d-val",
        "path": str(runs_dir / "d-val"),
        "status": "stopped",
        "model": "bncnn",
        "dataset": "fashion-mnist",
        "recipe": "best",
        "epochs_done": 2,
        "epochs_planned": 3,
        "final_accuracy": 0.88,
        "best_accuracy": 0.9,
        "best_epoch": 2,
        "best_metric": "val_accuracy",
        "seconds": 125.0,
        "pid": None,
    }
    a = data["a-finished"]
    assert (a["status"], a["epochs_done"], a["epochs_planned"]) == ("finished", 2, 2)
    assert (
        a["final_accuracy"]
        == read_metrics(runs_dir / "a-finished" / "metrics.csv")[-1]["test_accuracy"]
    )
    assert data["c-failed"]["status"] == "failed" and data["c-failed"]["final_accuracy"] is None


def test_finished_needs_a_complete_report(runs_dir):
    (runs_dir / "a-finished" / "report.html").unlink()  # cut short while writing the report
    assert summarize_run(runs_dir / "a-finished").status == "stopped"


def test_a_run_told_to_write_no_report_is_finished_without_one(runs_dir):
    """The fast recipe writes its report on demand: all its epochs done, it is finished."""
    import json

    run = runs_dir / "a-finished"
    (run / "report.html").unlink()
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    (run / "config.json").write_text(json.dumps({**config, "report": False}), encoding="utf-8")
    assert summarize_run(run).status == "finished"
    (run / "metrics.csv").write_text(
        (run / "metrics.csv").read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8"
    )
    assert summarize_run(run).status == "stopped"  # epochs left: not finished


def test_a_run_being_trained_is_running_and_nothing_is_written(runs_dir):
    run = runs_dir / "b-stopped"
    before = sorted(p.name for p in run.iterdir())
    assert lock_holder(run) is None
    with RunLock(run):  # another open file description: conflicts like another process
        summary = summarize_run(run)
        assert (summary.status, summary.pid) == ("running", __import__("os").getpid())
        assert "running" in runs_cli(str(runs_dir)).output.splitlines()[2]
    assert summarize_run(run).status == "stopped"
    (run / ".lock").write_text("12345\n")  # a stale lock file: its process died
    assert summarize_run(run).status == "stopped"
    (run / ".lock").unlink()
    assert sorted(p.name for p in run.iterdir()) == before


def test_plot_overlays_the_runs(runs_dir, tmp_path):
    out = tmp_path / "compare.png"
    result = runs_cli(str(runs_dir), "--plot", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from mnistcnn.engine.run_list import plot_runs

    fig = plot_runs(list_runs(runs_dir))
    acc_ax, loss_ax = fig.axes
    assert [line.get_label() for line in acc_ax.get_lines()] == ["a-finished", "d-val"]
    assert list(acc_ax.get_lines()[1].get_ydata()) == [85.0, 88.0]
    assert list(loss_ax.get_lines()[1].get_ydata()) == [0.4, 0.35]


def test_empty_missing_and_single_run_folders(runs_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runs_cli(str(empty))
    assert (result.exit_code, result.output) == (
        0,
        f"no runs in {empty} (a run is a folder with a config.json)\n",
    )
    result = runs_cli(str(tmp_path / "nope"))
    assert result.exit_code == 1 and "error:" in result.output and "nope" in result.output
    result = runs_cli(str(runs_dir), "--plot", str(tmp_path / "x.nope"))
    assert result.exit_code == 2 and "unknown picture format" in result.output
    # a run folder itself lists that run
    assert [r.name for r in list_runs(runs_dir / "d-val")] == ["d-val"]


def test_default_folder_is_runs(runs_dir, monkeypatch):
    monkeypatch.chdir(runs_dir.parent)
    result = runs_cli()
    assert result.exit_code == 0
    assert len(result.output.splitlines()) == 5


def test_unreadable_files_still_list_the_run(tmp_path):
    hand_made(tmp_path / "r", {"model": 3}, "not,a\ncsv,file\n")
    (summary,) = list_runs(tmp_path)
    assert (summary.model, summary.epochs_done, summary.status) == (None, 0, "failed")
    assert table_rows([summary])[0][1:5] == ("?", "?", "?", "0/?")
