"""The ``robust`` augmentation, outlier exposure in training and the ``robust`` recipe."""

import dataclasses
import math
import os
import re

import numpy as np
import pytest
import torch
from torch import nn

from mnistcnn.config import recipe_config
from mnistcnn.config.training import AUGMENTATIONS as CONFIG_AUGMENTATIONS
from mnistcnn.config.training import TrainConfig
from mnistcnn.data import outliers
from mnistcnn.data.augment import AUGMENTATIONS, augment_generator, build_augment
from mnistcnn.data.augment_robust import HandwritingAugment
from mnistcnn.data.loaders import TensorSource
from mnistcnn.data.outlier_pool import (
    OUTLIER_LABEL,
    TRAIN_SEED,
    OutlierMixSource,
    mnist_style,
    outlier_pool,
)
from mnistcnn.engine.loop import fit
from mnistcnn.engine.outlier_exposure import exposure_loss, uniform_cross_entropy
from mnistcnn.engine.sources import build_sources
from mnistcnn.engine.utils import seed_everything
from mnistcnn.errors import SettingError
from mnistcnn.models import create_model

#: Every step of HandwritingAugment off: the identity.
OFF = dict(p_stroke=0, p_elastic=0, degrees=0, shear=0, scale=0, aspect=0, translate=0,
           p_blur=0, p_contrast=0, p_noise=0)  # fmt: skip


def _strokes(n: int = 8) -> torch.Tensor:
    """float (n, 1, 28, 28) on 0..1: a vertical bar 3 px wide and a horizontal one (a plus)."""
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 6:22, 13:16] = 1.0
    x[:, :, 12:15, 8:20] = 1.0
    return x


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- augmentation -----------------------------------------------------------------------


def test_robust_is_a_named_policy_in_both_places():
    assert "robust" in AUGMENTATIONS and AUGMENTATIONS == CONFIG_AUGMENTATIONS
    aug = build_augment("robust", degrees=7.0, translate=0.05, scale=0.2)
    assert isinstance(aug, HandwritingAugment)
    assert (aug.degrees, aug.translate, aug.scale) == (7.0, 0.05, 0.2)


def test_robust_augmentation_is_seeded_keeps_shape_and_range():
    aug, x = HandwritingAugment(), _strokes(64)
    a, b = aug(x, augment_generator(0, 1)), aug(x, augment_generator(0, 1))
    c = aug(x, augment_generator(0, 2))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert not torch.equal(a[0], a[1])  # every sample gets its own parameters
    assert torch.equal(x, _strokes(64))  # the input is not changed in place


def test_robust_augmentation_with_every_step_off_is_the_identity():
    x = _strokes()
    out = HandwritingAugment(**OFF)(x, _gen())
    assert torch.allclose(out, x, atol=1e-5)


def test_stroke_width_step_thickens_or_thins_the_ink():
    x = _strokes(64)
    out = HandwritingAugment(**{**OFF, "p_stroke": 1.0})(x, _gen(3))
    ink_change = out.sum((1, 2, 3)) - x.sum((1, 2, 3))  # (64,)
    assert (ink_change > 1).sum() > 10 and (ink_change < -1).sum() > 10  # both directions
    # a 3x3 dilation adds at most one pixel on each side: 2 * (16 + 12) + corners
    assert float(ink_change.max()) <= 2 * (16 + 12) + 12 + 1e-4


def test_elastic_step_moves_pixels_by_a_few_px_and_keeps_the_ink():
    x = _strokes(32)
    out = HandwritingAugment(**{**OFF, "p_elastic": 1.0})(x, _gen(1))
    moved = (out - x).abs().sum((1, 2, 3))
    assert (moved > 1).float().mean() > 0.8  # almost every sample is distorted
    # a smooth displacement of a few px keeps the amount of ink within a third
    ratio = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert float(ratio.min()) > 0.67 and float(ratio.max()) < 1.33
    zero = HandwritingAugment(**{**OFF, "p_elastic": 1.0, "elastic_alpha": 0.0})(x, _gen(1))
    assert torch.allclose(zero, x, atol=1e-5)


def test_affine_slant_shears_rows_in_opposite_directions():
    x = torch.zeros(1, 1, 28, 28)
    x[:, :, 4:24, 13:15] = 1.0  # a vertical bar
    aug = HandwritingAugment(**{**OFF, "shear": 0.5})
    out = aug(x.repeat(16, 1, 1, 1), _gen(2))
    cols = torch.arange(28.0)

    def centre(img: torch.Tensor, row: int) -> float:
        return float((img[0, row] * cols).sum() / img[0, row].sum())

    tilt = torch.tensor([centre(o, 6) - centre(o, 21) for o in out])  # top minus bottom column
    assert float(tilt.abs().max()) > 3  # a slant of up to 0.5 moves the top ~7 px from the bottom


def test_blur_contrast_and_noise_steps():
    x = _strokes(32)
    blurred = HandwritingAugment(**{**OFF, "p_blur": 1.0})(x, _gen())
    assert bool((blurred[:, 0, 18, 12] > 0.001).all())  # ink spreads beside the bar
    assert float(blurred.amax((1, 2, 3)).mean()) < 1.0  # and the peaks come down
    assert torch.allclose(blurred.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.05)
    faint = HandwritingAugment(**{**OFF, "p_contrast": 1.0})(x, _gen())
    ink, paper = faint[:, :, 13, 14], faint[:, :, 0, 0]  # (32, 1)
    assert float(ink.min()) >= 0.4 - 1e-6 and float(paper.max()) <= 0.2 + 1e-6
    assert bool((ink >= 2 * paper).all())
    noisy = HandwritingAugment(**{**OFF, "p_noise": 1.0})(x, _gen())
    background_std = noisy[:, :, :4, :].std((1, 2, 3))
    assert 0.0 < float(background_std.max()) < 0.15


def test_robust_augmentation_bad_settings_are_refused():
    with pytest.raises(ValueError, match="out of its range"):
        HandwritingAugment(p_blur=1.5)


# --- outlier exposure loss --------------------------------------------------------------


def test_uniform_cross_entropy_is_log_c_for_equal_logits_and_larger_otherwise():
    equal = torch.zeros(3, 10)
    assert torch.allclose(uniform_cross_entropy(equal), torch.full((3,), math.log(10)))
    peaked = torch.tensor([[5.0] + [0.0] * 9])
    expected = -torch.log_softmax(peaked, 1).mean(1)
    assert torch.allclose(uniform_cross_entropy(peaked), expected)
    assert float(uniform_cross_entropy(peaked)) > math.log(10)


def test_exposure_loss_splits_the_batch_and_adds_the_weighted_term():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [1.0, 1.0, 1.0], [4.0, 0.0, 0.0]])
    labels = torch.tensor([0, 1, OUTLIER_LABEL, OUTLIER_LABEL])
    digits, digit_labels, loss = exposure_loss(nn.CrossEntropyLoss(), logits, labels, 0.5)
    assert torch.equal(digits, logits[:2]) and torch.equal(digit_labels, labels[:2])
    ce = nn.functional.cross_entropy(logits[:2], labels[:2])
    oe = (math.log(3) + float(-torch.log_softmax(logits[3], 0).mean())) / 2
    assert float(loss) == pytest.approx(float(ce) + 0.5 * oe, rel=1e-6)
    # summed digit loss (distributed runs): the outlier term is scaled by the digit count
    _, _, summed = exposure_loss(nn.CrossEntropyLoss(reduction="sum"), logits, labels, 0.5)
    assert float(summed) == pytest.approx(2 * (float(ce) + 0.5 * oe), rel=1e-6)
    # no outliers in the batch: the plain loss
    _, _, plain = exposure_loss(nn.CrossEntropyLoss(), logits[:2], labels[:2], 0.5)
    assert float(plain) == pytest.approx(float(ce))


# --- outlier pictures and batches -------------------------------------------------------


def test_mnist_style_fits_the_drawing_into_20px_centred_light_on_dark():
    images = mnist_style(outliers.drawings(6, seed=3))
    assert images.shape == (6, 28, 28) and images.dtype == np.uint8
    for img in images:
        rows, cols = np.nonzero(img > 30)
        assert max(np.ptp(rows), np.ptp(cols)) <= 21  # the 20 px box (plus dilation rounding)
        w = img.astype(float)
        com = (w.sum(1) @ np.arange(28) / w.sum(), w.sum(0) @ np.arange(28) / w.sum())
        assert abs(com[0] - 14) <= 1.5 and abs(com[1] - 14) <= 1.5
        assert img[0].max() == 0 and img[:, 0].max() == 0  # dark background


def test_outlier_pool_uses_training_seeds_not_the_evaluation_ones():
    pools = outlier_pool(["noise", "letters"], 6, seed=2)
    assert [tuple(p.shape) for p in pools] == [(6, 28, 28), (6, 28, 28)]
    assert torch.equal(pools[0], torch.from_numpy(outliers.noise(6, TRAIN_SEED + 2)))
    assert not torch.equal(pools[0], torch.from_numpy(outliers.noise(6, 0)))  # evaluation's set
    with pytest.raises(ValueError, match="unknown outlier kind"):
        outlier_pool(["cats"], 3)


def test_outlier_mix_source_appends_seeded_outliers_to_every_batch():
    x, y = torch.zeros(40, 28, 28, dtype=torch.uint8), torch.arange(40) % 10
    pools = [torch.full((5, 28, 28), 100, dtype=torch.uint8),
             torch.full((50, 28, 28), 200, dtype=torch.uint8)]  # fmt: skip

    def source(seed: int = 0) -> OutlierMixSource:
        base = TensorSource(x, y, 16, shuffle=True, seed=seed)
        return OutlierMixSource(base, pools, 8, seed=seed)

    src = source()
    assert len(src) == 3 and src.num_samples == 40
    batches = list(src)
    images, labels = batches[0]
    assert images.shape == (24, 1, 28, 28) and labels.shape == (24,)
    assert (labels[16:] == OUTLIER_LABEL).all() and (labels[:16] >= 0).all()
    assert len(batches[-1][1]) == 8 + 8  # the last, short batch gets its outliers too
    levels = torch.cat([b[0][-8:].amax((1, 2, 3)) for b in batches])  # 100/255 or 200/255
    assert 0.1 < float((levels < 0.5).float().mean()) < 0.9  # kinds drawn evenly, not by size
    again = list(source())
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))  # replayable (resume)
    src.set_epoch(1)
    assert not torch.equal(next(iter(src))[0][16:], images[16:])
    half = OutlierMixSource(TensorSource(x, y, 16), pools, 8, rank=1, world_size=2)
    assert len(next(iter(half))[1]) == 16 + 4


def test_fit_with_outlier_exposure_flattens_the_softmax_on_outliers():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(512) % 4
    x = torch.zeros(512, 28, 28, dtype=torch.uint8)
    for k in range(4):  # class k: a bright bar in quadrant k
        r, c = divmod(k, 2)
        x[y == k, 2 + 14 * r : 12 + 14 * r, 2 + 14 * c : 12 + 14 * c] = 255
    noise = torch.randint(0, 256, (200, 28, 28), generator=gen, dtype=torch.uint8)

    def train(weight: float) -> float:
        config = TrainConfig(epochs=2, batch_size=32, lr=3e-3, outlier_exposure=weight,
                             outliers="noise", device="cpu")  # fmt: skip
        base = TensorSource(x, y, 32, shuffle=True)
        src = OutlierMixSource(base, [noise], 16) if weight > 0 else base
        seed_everything(0)
        model = create_model("tutorial", num_classes=4)
        history = fit(model, src, {"test": TensorSource(x[:64], y[:64], 64)}, config)
        assert history.last["test_accuracy"] == 1.0  # the digits are still learned
        model.eval()
        with torch.no_grad():
            probs = torch.softmax(model(noise[:100, None].float() / 255), 1)
        return float(probs.amax(1).mean())

    with_oe, without = train(1.0), train(0.0)
    assert with_oe < 0.4 < without  # uniform over 4 classes is 0.25


# --- settings and recipe ----------------------------------------------------------------


def test_robust_recipe_resolves_to_best_plus_augmentation_and_outliers():
    robust, best = recipe_config("robust"), recipe_config("best")
    assert robust.augment == "robust" and robust.outlier_exposure == 0.5
    assert set(robust.outliers.split(",")) == {"fashion-mnist", "drawings", "letters", "noise"}
    same = ("model", "optimizer", "lr", "scheduler", "label_smoothing", "precision", "batch_size")
    assert all(getattr(robust, k) == getattr(best, k) for k in same)
    assert best.outlier_exposure == 0  # the other recipes are unchanged


def test_outlier_settings_are_checked_and_count_for_resume_only_when_on():
    with pytest.raises(SettingError, match="outliers must name kinds"):
        TrainConfig(outlier_exposure=0.5, outliers="fashion-mnist,cats")
    with pytest.raises(SettingError, match="training dataset"):
        TrainConfig(dataset="fashion-mnist", outlier_exposure=0.5)
    with pytest.raises(SettingError, match="outlier_exposure"):
        TrainConfig(outlier_exposure=-1.0)
    off, on = TrainConfig(), TrainConfig(outlier_exposure=0.5)
    assert off.replace(outliers="noise").math_differences(off) == []
    assert on.replace(outliers="noise").math_differences(on) == [
        "outliers: 'fashion-mnist,drawings,letters,noise' -> 'noise'"
    ]
    assert "outlier_exposure" in on.math_differences(off)[0]
    assert {f.name for f in dataclasses.fields(TrainConfig)} >= {"outlier_batch_size"}


def test_build_sources_mixes_fashion_mnist_train_images_into_real_batches(
    mnist_root, shared_datasets
):
    config = recipe_config("robust", train_subset=256, outlier_count=4, device="cpu",
                           outliers="fashion-mnist,noise")  # fmt: skip
    sources = build_sources(config, torch.device("cpu"), data_root=mnist_root,
                            mirror=shared_datasets)  # fmt: skip
    assert isinstance(sources.train, OutlierMixSource)
    assert len(sources.train.images) == 60_000 + 4  # Fashion-MNIST's train split + 4 noise
    images, labels = next(iter(sources.train))
    assert images.shape == (128 + 64, 1, 28, 28)
    assert int((labels == OUTLIER_LABEL).sum()) == 64
    assert not any(isinstance(s, OutlierMixSource) for s in sources.evals.values())


# --- the held-out kind: symbols -------------------------------------------------------


def test_symbols_are_seeded_varied_and_not_a_training_kind():
    from mnistcnn.config import OUTLIER_KINDS
    from mnistcnn.data.outlier_symbols import SYMBOLS, symbols

    a, b = symbols(len(SYMBOLS), seed=0), symbols(3, seed=0)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
    assert not np.array_equal(np.asarray(symbols(1, seed=1)[0]), np.asarray(a[0]))
    inked = [int((np.asarray(p.convert("L")) < 128).sum()) for p in a]
    assert min(inked) > 20  # every symbol is drawn (no missing glyph)
    assert "symbols" not in OUTLIER_KINDS
    with pytest.raises(ValueError):
        symbols(-1)


def test_ood_scores_know_the_symbols_set(monkeypatch):
    import mnistcnn.data
    from mnistcnn.artifact import TrainedModel
    from mnistcnn.predict.ood import OOD_SETS, ood_scores

    monkeypatch.setattr(mnistcnn.data, "load_arrays",
                        lambda *a, **kw: (torch.zeros(8, 28, 28, dtype=torch.uint8) + 9,
                                          torch.zeros(8, dtype=torch.int64)))  # fmt: skip
    torch.manual_seed(0)
    model = TrainedModel(create_model("tutorial"), dataset="mnist").eval()
    report = ood_scores(model, ["symbols"], threshold=0.5, limit=6)
    assert "symbols" in OOD_SETS and report.results[0].name == "symbols"
    assert report.results[0].count == 6 and 0 <= report.results[0].auroc_msp <= 1


# --- resume -----------------------------------------------------------------------------


@pytest.mark.slow  # three short runs with their reports: about a minute
def test_a_stopped_outlier_exposure_run_resumes_to_bitwise_the_same_weights(mnist_root, tmp_path):
    from mnistcnn.engine import load_checkpoint, train
    from mnistcnn.engine.loop import TrainingInterrupted

    config = recipe_config("tutorial", train_subset=640, epochs=2, batch_size=64, seed=3,
                           augment="robust", outlier_exposure=0.5, outliers="drawings,noise",
                           outlier_count=24, outlier_batch_size=16, device="cpu")  # fmt: skip
    ref = train(config, out=tmp_path / "ref", data_root=mnist_root, handle_signals=False)
    polls = {"n": 0}

    def stop_mid_epoch_2() -> bool:
        polls["n"] += 1
        return polls["n"] >= 15  # 10 steps and an evaluation, then 4 steps of epoch 2

    with pytest.raises(TrainingInterrupted):
        train(config, out=tmp_path / "run", data_root=mnist_root, stop=stop_mid_epoch_2,
              handle_signals=False)  # fmt: skip
    assert load_checkpoint(tmp_path / "run" / "last.pt").position["batch"] == 4
    train(config, resume=tmp_path / "run", data_root=mnist_root, handle_signals=False)
    a = load_checkpoint(tmp_path / "run" / "last.pt").state_dict
    b = load_checkpoint(ref.run_dir / "last.pt").state_dict
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- predict's unsure rule ----------------------------------------------------------------


def test_predict_defaults_to_threshold_0_4_for_an_outlier_exposure_checkpoint(tmp_path):
    from ckpt_files import write_checkpoint
    from mnistcnn.predict import DEFAULT_THRESHOLD, Predictor
    from mnistcnn.predict.unsure import OUTLIER_EXPOSURE_THRESHOLD, unsure_threshold

    torch.manual_seed(0)
    plain = write_checkpoint(tmp_path / "a.pt", create_model("tutorial"),
                             config=TrainConfig().to_dict())  # fmt: skip
    exposed = write_checkpoint(tmp_path / "b.pt", create_model("tutorial"),
                               config=recipe_config("robust").to_dict())  # fmt: skip
    assert Predictor.from_checkpoint(plain).threshold == DEFAULT_THRESHOLD == 0.5
    assert Predictor.from_checkpoint(exposed).threshold == OUTLIER_EXPOSURE_THRESHOLD == 0.4
    assert Predictor.from_checkpoint(exposed, threshold=0.7).threshold == 0.7  # a flag wins
    assert unsure_threshold(None, 0.5) == 0.5


# --- the recipe offline ---------------------------------------------------------------


def test_robust_recipe_without_fashion_mnist_says_what_it_needs_and_how(
    shared_datasets, tmp_path, monkeypatch
):
    """Offline and without Fashion-MNIST, ``train --recipe robust`` says why it needs it
    and names the offline ways (Debian's package, --mirror) and the way around it."""
    from click.testing import CliRunner

    from mnistcnn.cli import main
    from mnistcnn.data import _fetch, sources
    from mnistcnn.data.outlier_pool import fashion_needed_message
    from mnistcnn.data.specs import get_spec

    system = get_spec("fashion-mnist").system_dirs
    assert system == ("/usr/share/datasets/fashion-mnist",)
    if any(os.path.isdir(d) for d in system):
        pytest.skip(f"{system[0]} is installed here: the recipe finds Fashion-MNIST there")

    def offline(base, f, run):
        raise _fetch.Missing(f"{base}: cannot connect (offline)")

    monkeypatch.setattr(sources, "from_url", offline)
    monkeypatch.delenv("MNISTCNN_MIRROR", raising=False)
    mirror = tmp_path / "mirror"  # MNIST only
    mirror.mkdir()
    (mirror / "MNIST").symlink_to(shared_datasets / "MNIST", target_is_directory=True)
    args = ["train", "--recipe", "robust", "--max-steps", "1", "--no-progress"]
    args += ["--data-root", str(tmp_path / "data"), "--mirror", str(mirror)]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "run")])

    assert result.exit_code == 1, result.output
    first = result.output.split("error: ", 1)[1].splitlines()[0]
    assert first == fashion_needed_message()
    for needed in (
        "recipe robust",
        "Fashion-MNIST's train split",
        "`apt-get install dataset-fashion-mnist`",
        "/usr/share/datasets/fashion-mnist",
        "--mirror DIR",
        "--outliers drawings,letters,noise",
    ):
        assert needed in first
    assert "could not obtain 4 of the 4 files of dataset 'fashion-mnist'" in result.output
    assert "Traceback" not in result.output


def test_train_help_says_what_the_robust_recipe_needs():
    from click.testing import CliRunner

    from mnistcnn.cli import main

    output = CliRunner().invoke(main, ["train", "--help"]).output
    text = " ".join(re.sub(r"-\n\s+", "-", output).split())  # click breaks lines at hyphens
    assert "robust (the model for predict and serve) also needs Fashion-MNIST" in text
    assert "`apt-get install dataset-fashion-mnist` or --mirror DIR" in text
