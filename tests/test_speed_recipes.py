"""The on-device tensor path, batched augmentation, the fast tutorial forward, and the recipes."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mnistcnn.config import RECIPES, recipe_config
from mnistcnn.data.augment import (
    RandomAffine,
    RandomErasing,
    augment_generator,
    build_augment,
)
from mnistcnn.data.loaders import TensorSource
from mnistcnn.engine.loop import fit
from mnistcnn.engine.session import train
from mnistcnn.engine.sources import build_sources
from mnistcnn.engine.utils import seed_everything
from mnistcnn.models import create_model, set_fast_path, supports_fast_path
from mnistcnn.models.fused_ops import relu_avg_pool2x2, spread_matrix
from mnistcnn.models.tutorial import FAST_MIN_BATCH


def _data(n: int = 103, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, 28, 28) random images whose labels are their own index."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen), torch.arange(n)


def _epoch(src: TensorSource, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    src.set_epoch(epoch)
    return list(src)


# --- the tensor path -------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 10, 103, 200])
def test_tensor_path_yields_every_sample_exactly_once_per_epoch(batch_size):
    x, y = _data()
    src = TensorSource(x, y, batch_size, shuffle=True, seed=3)
    for epoch in (1, 2):
        batches = _epoch(src, epoch)
        assert len(batches) == len(src) == math.ceil(103 / batch_size)
        seen = torch.cat([labels for _, labels in batches])
        assert torch.equal(seen.sort().values, torch.arange(103))  # each index once
        for images, labels in batches:  # and each image travels with its label
            assert torch.equal(images[:, 0], x[labels].float() / 255)


def test_tensor_path_same_seed_same_batches_other_seed_other_order():
    x, y = _data()
    a, b = (
        TensorSource(x, y, 16, shuffle=True, seed=7),
        TensorSource(x, y, 16, shuffle=True, seed=7),
    )
    for epoch in (1, 2):
        for (xa, ya), (xb, yb) in zip(_epoch(a, epoch), _epoch(b, epoch), strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    order = [ys for _, ys in _epoch(a, 1)]
    assert not all(torch.equal(p, q) for p, q in zip(order, [ys for _, ys in _epoch(a, 2)]))
    other = TensorSource(x, y, 16, shuffle=True, seed=8)
    assert not torch.equal(torch.cat(order), torch.cat([ys for _, ys in _epoch(other, 1)]))


# --- augmentation ----------------------------------------------------------------------


def test_affine_augmentation_keeps_labels_shapes_and_is_seeded():
    x, y = _data(40)
    aug = build_augment("affine", degrees=15, translate=0.1, scale=0.1)
    plain = TensorSource(x, y, 8, shuffle=True, seed=1)
    augmented = TensorSource(x, y, 8, shuffle=True, seed=1, augment=aug)
    again = TensorSource(x, y, 8, shuffle=True, seed=1, augment=aug)
    changed = False
    for (xp, yp), (xa, ya), (xr, yr) in zip(
        _epoch(plain, 1), _epoch(augmented, 1), _epoch(again, 1)
    ):
        assert torch.equal(yp, ya)  # labels untouched, same order
        assert xa.shape == xp.shape and xa.dtype == torch.float32
        assert xa.min() >= 0 and xa.max() <= 1 + 1e-6  # bilinear mix of 0..1 pixels
        assert torch.equal(xa, xr) and torch.equal(ya, yr)  # same seed -> same warps
        changed |= not torch.allclose(xa, xp)
    assert changed
    epoch2 = torch.cat([xa for xa, _ in _epoch(augmented, 2)])
    assert not torch.allclose(epoch2, torch.cat([xa for xa, _ in _epoch(again, 2)]) + 1)


def test_affine_identity_when_ranges_are_zero():
    x = torch.rand(5, 1, 28, 28)
    out = RandomAffine(degrees=0, translate=0, scale=0)(x, augment_generator(0, 1))
    assert torch.allclose(out, x, atol=1e-5)


def test_hflip_mirrors_exactly_and_leaves_the_other_draws_unchanged():
    x = torch.rand(64, 1, 28, 28)
    flipped = RandomAffine(degrees=0, translate=0, scale=0, hflip=1.0)(x, augment_generator(0, 1))
    assert torch.allclose(flipped, x.flip(-1), atol=1e-5)  # a mirror, pixel for pixel
    some = RandomAffine(degrees=0, translate=0, scale=0, hflip=0.5)(x, augment_generator(0, 1))
    mirrored = [torch.allclose(a, b.flip(-1), atol=1e-5) for a, b in zip(some, x)]
    kept = [torch.allclose(a, b, atol=1e-5) for a, b in zip(some, x)]
    assert all(m != k for m, k in zip(mirrored, kept))  # each image one or the other
    assert 16 <= sum(mirrored) <= 48  # about half of 64
    # hflip draws after the other parameters: with hflip=0 the warps are the old ones
    theta0 = RandomAffine(hflip=0.0).matrices(8, augment_generator(3, 2))
    theta1 = RandomAffine(hflip=1.0).matrices(8, augment_generator(3, 2))
    assert torch.equal(theta1[:, :, 0], -theta0[:, :, 0])
    assert torch.equal(theta1[:, :, 1:], theta0[:, :, 1:])


def test_random_erasing_blanks_one_rectangle_per_chosen_image():
    x = torch.rand(200, 1, 28, 28) + 0.5  # no zeros anywhere before erasing
    erase = RandomErasing(p=0.5)
    out = erase(x, augment_generator(0, 1))
    again = erase(x, augment_generator(0, 1))
    assert torch.equal(out, again) and out.shape == x.shape
    n_erased = 0
    for before, after in zip(x, out):
        zero = after[0] == 0
        if not zero.any():
            assert torch.equal(before, after)
            continue
        n_erased += 1
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w  # contiguous
        assert zero.sum() == h * w  # a full rectangle
        assert 0.02 * 784 - 28 <= h * w <= 0.33 * 784 + 28  # area in range (rounding)
        assert torch.equal(after[0][~zero], before[0][~zero])  # the rest untouched
    assert 70 <= n_erased <= 130  # p = 0.5 of 200
    assert not RandomErasing(p=0.0)(x, augment_generator(0, 1)).eq(0).any()
    with pytest.raises(ValueError, match="area"):
        RandomErasing(area=(0.5, 0.1))


def test_flip_erase_policy_keeps_labels_and_shapes():
    x, y = _data(40)
    aug = build_augment("affine-flip-erase", degrees=0, translate=0.1, scale=0.1)
    src = TensorSource(x, y, 8, shuffle=True, seed=1, augment=aug)
    plain = TensorSource(x, y, 8, shuffle=True, seed=1)
    for (xa, ya), (xp, yp) in zip(_epoch(src, 1), _epoch(plain, 1)):
        assert torch.equal(ya, yp) and xa.shape == xp.shape and xa.dtype == torch.float32
    with pytest.raises(ValueError, match="affine-flip-erase"):
        build_augment("flip")


def test_augmentation_is_off_at_evaluation(monkeypatch):
    x, y = _data(64)
    monkeypatch.setattr("mnistcnn.data.load_arrays", lambda name, train, **kw: (x, y))
    config = recipe_config("best", device="cpu", val_fraction=0.25, batch_size=8)
    sources = build_sources(config, torch.device("cpu"))
    assert sources.train.augment is not None
    assert set(sources.evals) == {"test", "val"}
    assert all(src.augment is None for src in sources.evals.values())


# --- the fast tutorial forward ---------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 10, 28, 28), (2, 20, 10, 10), (1, 1, 4, 6)])
def test_relu_avg_pool_equals_reference_forward_and_backward(shape):
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    g = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2, dtype=torch.float64)
    ours = relu_avg_pool2x2(x)
    ref = F.avg_pool2d(F.relu(x), 2)
    assert torch.allclose(ours, ref, atol=1e-12)
    (g_ours,) = torch.autograd.grad(ours, x, g)
    (g_ref,) = torch.autograd.grad(ref, x, g)
    assert torch.allclose(g_ours, g_ref, atol=1e-12)
    with torch.no_grad():
        assert torch.allclose(relu_avg_pool2x2(x), ref, atol=1e-12)


def test_relu_avg_pool_rejects_odd_sizes_and_spread_matrix_is_a_quarter():
    with pytest.raises(ValueError, match="even"):
        relu_avg_pool2x2(torch.zeros(1, 1, 5, 4))
    m = spread_matrix(6, torch.float32, torch.device("cpu"))
    assert m.shape == (3, 12) and torch.equal(m.sum(1), torch.ones(3))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_fast_tutorial_forward_equals_plain_sequential(dtype, tol):
    torch.manual_seed(0)
    model = create_model("tutorial").to(dtype)
    assert model.fast_path is False  # opt-in
    plain = nn.Sequential(*model.children())  # the same layers, run one by one
    assert sum(p.numel() for p in model.parameters()) == 156_640
    x, y = torch.rand(16, 1, 28, 28, dtype=dtype), torch.randint(0, 10, (16,))
    assert torch.equal(model(x), plain(x))  # the default forward is the layer-by-layer one
    fast_loss = F.cross_entropy(model.fast_forward(x), y)
    assert set_fast_path(model, True) is model and model.fast_path
    assert torch.allclose(F.cross_entropy(model(x), y), fast_loss, atol=tol)
    plain_loss = F.cross_entropy(plain(x), y)
    assert torch.allclose(fast_loss, plain_loss, atol=tol)
    fast_grads = torch.autograd.grad(fast_loss, list(model.parameters()))
    plain_grads = torch.autograd.grad(plain_loss, list(model.parameters()))
    for a, b in zip(fast_grads, plain_grads, strict=True):
        assert torch.allclose(a, b, atol=tol, rtol=tol)
    model.eval()
    with torch.inference_mode():
        assert torch.allclose(model(x), plain(x), atol=tol)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::FutureWarning")
def test_fast_path_is_opt_in_so_hooks_see_every_layer_by_default():
    model = create_model("tutorial")
    calls = []
    model.pool1.register_forward_hook(lambda m, i, o: calls.append(int(o.shape[0])))
    model(torch.rand(32, 1, 28, 28))  # a batch that would take the fast path if it were on
    assert calls == [32]  # the pool layer really ran
    set_fast_path(model, True)
    model(torch.rand(32, 1, 28, 28))  # fused: pool1 is not called
    model(torch.rand(FAST_MIN_BATCH - 1, 1, 28, 28))  # too small for the fast path
    torch.jit.trace(model, torch.rand(32, 1, 28, 28), check_trace=False)  # never traced
    assert calls == [32, FAST_MIN_BATCH - 1, 32]
    set_fast_path(model, False)
    model(torch.rand(32, 1, 28, 28))
    assert calls[-1] == 32 and len(calls) == 4


def test_set_fast_path_reaches_nested_models_and_checks_its_argument():
    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = create_model("tutorial")
            self.other = create_model("fastcnn")  # no fast path: left alone

    wrapper = set_fast_path(Wrapper(), True)
    assert wrapper.net.fast_path and not supports_fast_path(wrapper.other)
    assert not hasattr(wrapper.other, "fast_path")
    with pytest.raises(TypeError, match="bool"):
        set_fast_path(wrapper, 1)


def test_fit_turns_the_fast_path_on():
    config = recipe_config("tutorial", device="cpu", batch_size=16, epochs=1, max_steps=1)
    x, y = _data(32)
    model = create_model("tutorial")
    fit(model, TensorSource(x, y % 10, 16, shuffle=True), {}, config)
    assert model.fast_path


# --- recipes ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_builds_and_its_model_trains_a_few_steps(name):
    config = recipe_config(name, device="cpu", batch_size=16, epochs=1, max_steps=3)
    assert config.recipe == name
    seed_everything(0)
    x, y = _data(256)  # 16 steps per epoch: enough for a one-cycle schedule
    y = y % 10
    aug = build_augment(config.augment)
    src = TensorSource(x, y, config.batch_size, shuffle=True, augment=aug, mean=[0.13], std=[0.3])
    model = create_model(config.model)
    before = [p.detach().clone() for p in model.parameters()]
    history = fit(model, src, {"test": TensorSource(x, y, 32)}, config)
    assert history.steps == 3
    assert math.isfinite(history.last["train_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_recipes_differ_where_documented():
    fast, best = recipe_config("fast"), recipe_config("best")
    assert recipe_config("tutorial").model == "tutorial"
    assert fast.model == "s2dcnn" and fast.scheduler == "onecycle" and not fast.report
    assert best.model == "bncnn" and best.augment == "affine" and best.precision == "bf16"
    assert best.label_smoothing > 0 and best.val_fraction == 0  # final epoch, no test picking
    fashion = recipe_config("best-fashion")
    assert fashion.dataset == "fashion-mnist" and fashion.model == "bncnn" and fashion.epochs == 20
    assert fashion.augment == "affine-flip-erase" and fashion.aug_degrees == 0
    assert best.report and recipe_config("tutorial").report  # only fast leaves it for later


# --- both loader paths, real data ------------------------------------------------------


@pytest.mark.slow
def test_tutorial_recipe_same_metrics_on_both_loader_paths(mnist_root, tmp_path):
    rows = {}
    for loader in ("dataloader", "tensor"):
        config = recipe_config(
            "tutorial", loader=loader, epochs=1, train_subset=2000, device="cpu", seed=3
        )
        result = train(config, out=tmp_path / loader, data_root=mnist_root, handle_signals=False)
        rows[loader] = result.history.last
    a, b = rows["dataloader"], rows["tensor"]
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        assert a[key] == pytest.approx(b[key], abs=1e-4), key
