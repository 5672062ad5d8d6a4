"""engine/optim.py: the learning-rate schedules on runs of any length."""

from __future__ import annotations

import pytest
import torch

from mnistcnn.config import recipe_config
from mnistcnn.engine.optim import build_optimizer, build_scheduler


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 8, 40])
@pytest.mark.parametrize("warmup", [0.2, 0.25, 0.5])
def test_onecycle_runs_every_step_of_a_short_run(steps, warmup):
    """4 steps at warm-up 0.25 once divided by zero in OneCycleLR (its warm-up ended at step 0)."""
    net = torch.nn.Linear(2, 2)
    config = recipe_config("fast", epochs=1, warmup_fraction=warmup)
    optimizer = build_optimizer(net, config)
    scheduler, per_batch = build_scheduler(optimizer, config, steps_per_epoch=steps)
    assert scheduler is not None and per_batch
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if len(lrs) < steps:
            scheduler.step()
    assert all(0 < lr <= config.lr for lr in lrs)
    if steps >= 8:  # a real cycle: up to the peak, then down to (almost) nothing
        assert max(lrs) == pytest.approx(config.lr, rel=0.05) and lrs[-1] < lrs[0]


def _trajectory(opt_cls, name, seed=0, steps=5):
    """Weights, optimizer state dict after ``steps`` steps of a small net on fixed data."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    kw = {"lr": 0.01, "weight_decay": 1e-4, "fused": True}
    opt = (
        opt_cls(net.parameters(), momentum=0.9, **kw)
        if name == "sgd"
        else opt_cls(net.parameters(), **kw)
    )
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return [p.detach().clone() for p in net.parameters()], opt.state_dict()


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_optimizers_are_torchs_update_bit_for_bit_with_its_state_dict(name):
    """The dynamo-free subclasses compute torch's update exactly and save the same state."""
    from mnistcnn.engine import optim

    ours_cls, torch_cls = {
        "adam": (optim.Adam, torch.optim.Adam),
        "sgd": (optim.SGD, torch.optim.SGD),
    }[name]
    ours, ours_state = _trajectory(ours_cls, name)
    theirs, theirs_state = _trajectory(torch_cls, name)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert ours_state["param_groups"] == theirs_state["param_groups"]
    for k, state in theirs_state["state"].items():
        assert state.keys() == ours_state["state"][k].keys()
        assert all(torch.equal(state[s], ours_state["state"][k][s]) for s in state)
    config = recipe_config("fast", optimizer=name)
    net = torch.nn.Linear(6, 3)
    built = build_optimizer(net, config)
    assert isinstance(built, torch_cls) and isinstance(built, ours_cls)
    built.load_state_dict(built.state_dict())  # the round trip of a resume
