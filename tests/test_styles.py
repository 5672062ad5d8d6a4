"""Generated digits of other writers' styles (mnistcnn.data.styles) and their evaluation."""

from __future__ import annotations

import pytest
import torch

from mnistcnn.artifact import TrainedModel
from mnistcnn.config import recipe_config
from mnistcnn.data.loaders import TensorSource
from mnistcnn.data.style_templates import FAMILIES, PLAIN, WRITER
from mnistcnn.data.styles import (
    STYLES,
    StyleMixSource,
    style_digits,
    styles_set,
    writer_digits,
)
from mnistcnn.errors import SettingError
from mnistcnn.evaluation.styles import styles_accuracy


def _centre_of_mass(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.float()
    i = torch.arange(28.0)
    total = x.sum((1, 2))
    return (x.sum(2) * i).sum(1) / total, (x.sum(1) * i).sum(1) / total


def test_digits_in_mnist_geometry() -> None:
    images, labels = style_digits(60, seed=3)
    assert images.shape == (60, 28, 28) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and set(labels.tolist()) <= set(range(10))
    rows, cols = _centre_of_mass(images)
    assert (rows - 14).abs().max() < 0.6 and (cols - 14).abs().max() < 0.6
    for image in images:  # the ink (above 1/3) inside the 20 px box plus its soft edge
        r, c = torch.nonzero(image > 85, as_tuple=True)
        assert int(r.max() - r.min()) + 1 <= 21 and int(c.max() - c.min()) + 1 <= 21
        assert int(image.max()) >= 200  # a pen, not a smudge
    inner = images[:, 2:-2, 2:-2].float().sum()
    assert inner / images.float().sum() > 0.99  # a margin, as MNIST's


def test_same_seed_and_index_same_picture() -> None:
    a, la = style_digits(12, seed=5)
    b, lb = style_digits(20, seed=5)
    assert torch.equal(a, b[:12]) and torch.equal(la, lb[:12])
    c, _ = style_digits(12, seed=6)
    assert not torch.equal(a, c)


def test_evaluation_variants_are_never_trained_on() -> None:
    for name, family in FAMILIES.items():
        train, held = family.split("train"), family.split("eval")
        assert train and held, name
        assert sorted(train + held) == list(range(family.variants)), name
        assert set(held) == set(family.evaluation)


def test_styles_set_groups_and_pens() -> None:
    data = styles_set(per_style=10)
    assert data.names == list(STYLES) and len(data.images) == 10 * len(STYLES)
    groups = dict(data.groups())
    for name, (families, _) in STYLES.items():
        labels = data.labels[groups[name]]
        assert len(labels) == 10
        if len(families) == 1:  # one style of one digit
            assert set(labels.tolist()) == {FAMILIES[families[0]].label}
        else:  # the ten digits in turn
            assert labels.tolist() == list(range(10))
    ink = {n: (data.images[groups[n]] > 128).float().sum((1, 2)).mean() for n in STYLES}
    assert ink["pen-thin"] < ink["plain"] < ink["pen-thick"]
    assert torch.equal(styles_set(per_style=10).images, data.images)  # deterministic


def test_writer_digits_one_hand() -> None:
    images, labels = writer_digits(2, seed=1)
    assert labels.tolist() == [d for d in range(10) for _ in range(2)]
    assert len(WRITER) == 10 and [FAMILIES[n].label for n in WRITER] == list(range(10))
    assert set(PLAIN) < set(FAMILIES)
    assert images.shape == (20, 28, 28)


def test_style_mix_source_appends_labelled_digits() -> None:
    x = torch.zeros(64, 28, 28, dtype=torch.uint8)
    y = torch.full((64,), 3)
    base = TensorSource(x, y, 16, shuffle=True, seed=0)
    pool_x, pool_y = style_digits(40, seed=1)
    mix = StyleMixSource(base, pool_x, pool_y, 4, seed=0)
    batches = list(mix)
    assert len(batches) == len(base) == 4
    images, labels = batches[0]
    assert images.shape == (20, 1, 28, 28) and labels.shape == (20,)
    assert (labels[:16] == 3).all() and images[:16].sum() == 0
    extra = images[16:]
    assert extra.sum() > 0  # generated digits, with their own labels
    for image, label in zip(extra, labels[16:], strict=True):
        match = (pool_x.float().div(255) == image[0]).flatten(1).all(1)
        assert match.any() and int(pool_y[match.nonzero()[0, 0]]) == int(label)
    again = list(StyleMixSource(base, pool_x, pool_y, 4, seed=0))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches, again, strict=True))
    mix.set_epoch(1)
    assert not torch.equal(list(mix)[0][0][16:], extra)


def test_style_settings() -> None:
    config = recipe_config("robust-styles")
    assert config.style_digits == 0.2 and config.augment == "robust"
    assert recipe_config("robust").style_digits == 0.0
    with pytest.raises(SettingError, match="style_digits"):
        recipe_config("robust", style_digits=1.5)
    with pytest.raises(SettingError, match="style_digits draws digits for mnist"):
        recipe_config("robust-styles", dataset="fashion-mnist", outliers="drawings")


class _Always(torch.nn.Module):
    """Logits that always say ``digit``."""

    def __init__(self, digit: int) -> None:
        super().__init__()
        self.digit = digit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), 10)
        logits[:, self.digit] = 10.0
        return logits


def test_styles_accuracy_per_style() -> None:
    report = styles_accuracy(TrainedModel(_Always(1)), per_style=10)
    scores = {s.name: s for s in report.scores}
    assert scores["1-flag"].accuracy == 1.0 and scores["1-base"].accuracy == 1.0
    assert scores["7-crossbar"].accuracy == 0.0
    assert scores["7-crossbar"].mistakes == {"7->1": 10}
    assert scores["pen-thin"].accuracy == pytest.approx(0.1)  # one digit in ten is a 1
    assert scores["plain"].unsure == 0.0
    assert report.mean == pytest.approx((2 + 3 * 0.1) / len(STYLES))
