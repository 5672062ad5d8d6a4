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
