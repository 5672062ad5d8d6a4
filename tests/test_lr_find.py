"""The LR finder (``engine.lr_find``, ``mnistcnn lr-find``) on synthetic data; one slow run
on real MNIST.

Synthetic sources replace ``engine.session.build_sources`` as in
``tests/test_train_session.py`` (no dataset is read).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from mnistcnn.cli import main
from mnistcnn.config import recipe_config
from mnistcnn.data.loaders import TensorSource
from mnistcnn.engine import session
from mnistcnn.engine.lr_find import (
    lr_find,
    lr_find_for_config,
    plot_lr_find,
    smooth,
    steepest_index,
    sweep_lrs,
)
from mnistcnn.engine.model import trained_model
from mnistcnn.evaluation.plots import save_figure
from test_train_session import synthetic


def _sources(batch_size: int = 32) -> session.DataSources:
    x, y = synthetic(256, 0)
    train = TensorSource(x, y, batch_size, shuffle=True, seed=0)
    classes = [str(i) for i in range(10)]
    return session.DataSources(train, {}, classes, [0.0], [1.0])


@pytest.fixture
def fake_sources(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    roots: list[object] = []

    def build_sources(config, device, *, data_root=None, mirror=None, rank=0, world_size=1):
        roots.append(data_root)
        return _sources(config.batch_size)

    monkeypatch.setattr(session, "build_sources", build_sources)
    return roots


def _model(config):
    torch.manual_seed(0)
    return trained_model(config, _sources(config.batch_size))


def test_sweep_is_exponential_from_start_to_end() -> None:
    lrs = sweep_lrs(1e-7, 10.0, 100)
    assert len(lrs) == 100
    assert lrs[0] == pytest.approx(1e-7) and lrs[-1] == pytest.approx(10.0)
    ratios = [b / a for a, b in zip(lrs, lrs[1:], strict=False)]
    assert all(r == pytest.approx(ratios[0]) for r in ratios)
    assert ratios[0] == pytest.approx(1e8 ** (1 / 99))
    for bad in ((1.0, 0.1, 10), (0.0, 1.0, 10), (1e-3, 1.0, 1)):
        with pytest.raises(ValueError):
            sweep_lrs(*bad)


def test_smoothing_is_the_bias_corrected_moving_average() -> None:
    assert smooth([2.0] * 5) == pytest.approx([2.0] * 5)  # bias correction: no ramp from 0
    losses = [3.0, 1.0, 2.0]
    b = 0.98
    avg1 = (1 - b) * 3.0
    avg2 = b * avg1 + (1 - b) * 1.0
    avg3 = b * avg2 + (1 - b) * 2.0
    want = [avg1 / (1 - b), avg2 / (1 - b**2), avg3 / (1 - b**3)]
    assert smooth(losses, b) == pytest.approx(want)


def test_steepest_index_is_the_steepest_descent_before_the_minimum() -> None:
    lrs = sweep_lrs(1e-4, 1.0, 40)
    # flat, a gentle then a steep descent (steepest from index 24), the minimum at 30,
    # then a rise and a fall after the divergence (steeper still, but not a descent)
    curve = [2.0] * 20 + [1.9, 1.8, 1.7, 1.6, 1.5, 1.0, 0.6, 0.5, 0.45, 0.42, 0.4]
    curve += [0.8, 1.6, 3.2, 3.0, 2.0, 1.0, 1.0, 1.0, 1.0]
    assert len(curve) == len(lrs)
    assert steepest_index(lrs, curve) == 24
    assert steepest_index(lrs[:2], [2.0, 1.0]) == 0
    assert steepest_index(lrs[:1], [2.0]) == 0


def test_lr_find_sweeps_a_copy_and_suggests_inside_the_sweep() -> None:
    config = recipe_config("tutorial", device="cpu", batch_size=32)
    model = _model(config)
    model.eval()
    before = copy.deepcopy(model.state_dict())
    result = lr_find(model, _sources().train, config, start_lr=1e-5, end_lr=1.0, steps=30)
    # the model given is not modified: same weights, same mode
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training
    n = len(result.lrs)
    assert 2 <= n <= 30 and len(result.losses) == len(result.smoothed) == n
    assert result.lrs == pytest.approx(sweep_lrs(1e-5, 1.0, 30)[:n])
    assert result.smoothed == pytest.approx(smooth(result.losses))
    assert 1e-5 <= result.suggestion <= 1.0
    assert result.suggestion == result.lrs[result.suggestion_index]
    assert result.method == "steep" and all(math.isfinite(v) for v in result.losses)
    assert result.losses[0] == pytest.approx(math.log(10), abs=0.3)  # an untrained model


def test_lr_find_stops_early_when_the_loss_diverges() -> None:
    config = recipe_config("tutorial", device="cpu", batch_size=32, optimizer="sgd")
    result = lr_find(_model(config), _sources().train, config, start_lr=1e-3, end_lr=1e6, steps=200)
    assert result.stopped_early and len(result.lrs) < 200
    if math.isfinite(result.losses[-1]) and len(result.smoothed) > 1:
        # stopped at the first step whose smoothed loss passed 4x the minimum so far
        assert result.smoothed[-1] > 4 * min(result.smoothed)
        for i in range(1, len(result.smoothed) - 1):
            assert result.smoothed[i] <= 4 * min(result.smoothed[: i + 1])
    assert result.lrs[-1] < 1e6
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]


def test_lr_find_cycles_through_epochs_for_many_steps() -> None:
    config = recipe_config("tutorial", device="cpu", batch_size=64)
    source = _sources(64).train  # 4 batches per epoch
    result = lr_find(_model(config), source, config, start_lr=1e-6, end_lr=1e-4, steps=10)
    assert len(result.lrs) == 10 and not result.stopped_early


def test_plot_and_config_entry_point(fake_sources, tmp_path: Path) -> None:
    config = recipe_config("tutorial", device="cpu", batch_size=32)
    result = lr_find_for_config(config, data_root=tmp_path, steps=20, start_lr=1e-5, end_lr=1.0)
    assert fake_sources == [tmp_path]
    assert result.extra["recipe_lr"] == 0.01 and result.extra["model"] == "tutorial"
    path = save_figure(plot_lr_find(result), tmp_path / "lr.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(result.to_json())


def test_cli_lr_find_writes_plot_json_and_one_line(fake_sources, tmp_path: Path) -> None:
    plot, out = tmp_path / "lr.png", tmp_path / "lr.json"
    r = CliRunner().invoke(
        main,
        ["lr-find", "--device", "cpu", "--batch-size", "32", "--steps", "25", "--start-lr",
         "1e-5", "--end-lr", "1", "--plot", str(plot), "--json", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("suggested lr ")
    assert "recipe tutorial uses 0.01" in lines[0]
    data = json.loads(out.read_text())
    assert set(data) >= {"lrs", "losses", "smoothed", "suggestion", "method", "stopped_early"}
    assert data["suggestion"] in data["lrs"] and data["method"] == "steep"
    assert plot.read_bytes()[:4] == b"\x89PNG"
    r = CliRunner().invoke(main, ["lr-find", "--steps", "5", "--no-plot", "--json", "-"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["steps"] == 5


def test_cli_lr_find_bad_flags(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["lr-find", "--start-lr", "1", "--end-lr", "0.1"])
    assert r.exit_code == 2 and "must be below --end-lr" in r.output
    r = CliRunner().invoke(main, ["lr-find", "--plot", str(tmp_path / "lr.nope")])
    assert r.exit_code == 2 and "--plot" in r.output
    r = CliRunner().invoke(main, ["lr-find", "--steps", "1"])
    assert r.exit_code == 2 and "--steps" in r.output


@pytest.mark.slow
def test_tutorial_suggestion_on_real_mnist_is_near_the_recipe_lr(mnist_root: Path) -> None:
    """100 steps of the tutorial recipe (Adam, batch 64) on 10,000 training images."""
    config = recipe_config("tutorial", device="cpu", train_subset=10_000)
    result = lr_find_for_config(config, data_root=mnist_root)
    assert len(result.lrs) >= 50
    assert config.lr / 10 <= result.suggestion <= config.lr * 10, result.suggestion


def test_a_sweep_whose_loss_never_falls_says_its_suggestion_is_unreliable():
    from mnistcnn.engine.lr_find import LRFindResult

    flat = LRFindResult([1e-3, 1e-2, 1e-1], [2.3] * 3, [2.30, 2.29, 2.31], 1e-2, 1, False,
                        1e-3, 1e-1, 3)  # fmt: skip
    assert "hardly fell (2.3 -> at best 2.29)" in flat.warning
    assert flat.to_json()["warning"] == flat.warning
    falling = LRFindResult([1e-3, 1e-2], [2.3, 1.0], [2.3, 1.5], 1e-2, 1, False, 1e-3, 1e-2, 2)
    assert falling.warning is None


def test_an_unreliable_sweep_says_which_bound_to_change():
    from mnistcnn.engine.lr_find import LRFindResult

    lrs = [10 ** (-4 + i / 4) for i in range(12)]
    flat = [2.30] * 12
    short = LRFindResult(lrs, flat, flat, lrs[1], 1, False, 1e-4, 1e-1, 12)
    assert short.warning.endswith(
        "the loss stayed flat up to the end of the sweep: raise end_lr (now 0.1; try 10)"
    )
    rising = [2.30 + 0.2 * i for i in range(12)]
    high = LRFindResult(lrs, rising, rising, lrs[0], 0, True, 1e-4, 10.0, 12)
    assert high.warning.endswith(
        "the loss rose from the first steps, so the sweep starts too high: lower start_lr "
        "(now 0.0001; try 1e-06)"
    )
    noisy = [2.30, 2.32, 2.29, 2.31] * 3
    wide = LRFindResult(lrs, noisy, noisy, lrs[2], 2, False, 1e-7, 10.0, 12)
    assert wide.warning.endswith("sweep more steps or on more images")


def test_cli_lr_find_names_the_flag_of_the_bound(monkeypatch):
    from click.testing import CliRunner

    import mnistcnn.engine.lr_find as engine_lr_find
    from mnistcnn.cli import main
    from mnistcnn.engine.lr_find import LRFindResult

    lrs = [10 ** (-4 + i / 4) for i in range(12)]
    flat = LRFindResult(lrs, [2.3] * 12, [2.3] * 12, lrs[1], 1, False, 1e-4, 1e-1, 12)
    monkeypatch.setattr(engine_lr_find, "lr_find_for_config", lambda *a, **k: flat)
    args = ["lr-find", "--start-lr", "1e-4", "--end-lr", "0.1", "--no-plot"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "warning: the smoothed loss hardly fell" in r.stderr
    assert "raise --end-lr (now 0.1; try 10)" in r.stderr
