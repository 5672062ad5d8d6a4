"""The training loop, loaders and checkpoints on small synthetic data (no dataset needed)."""

import csv
import math
import os

import pytest
import torch
from torch.utils.data import Dataset

from mnistcnn.artifact import CheckpointError, TrainedModel, load_checkpoint, load_model
from mnistcnn.config import TrainConfig, recipe_config
from mnistcnn.data.loaders import DataLoaderSource, TensorSource, epoch_permutation, split_indices
from mnistcnn.engine.loop import NonFiniteLossError, fit
from mnistcnn.engine.run_dir import RunDir, RunDirError, read_metrics
from mnistcnn.engine.utils import seed_everything
from mnistcnn.models import create_model


def synthetic_digits(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, 28, 28) images whose label (0..3) is the quadrant holding a bright square."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    images = torch.randint(0, 40, (n, 28, 28), generator=g, dtype=torch.uint8)
    for i, lab in enumerate(labels.tolist()):
        r, c = divmod(lab, 2)
        images[i, 14 * r + 3 : 14 * r + 11, 14 * c + 3 : 14 * c + 11] = 250
    return images, labels


class ToTensorDataset(Dataset):
    """What torchvision's MNIST + ToTensor yields, from uint8 arrays."""

    def __init__(self, images, labels):
        from PIL import Image
        from torchvision.transforms import ToTensor

        self.pil = [Image.fromarray(im.numpy(), mode="L") for im in images]
        self.labels = labels.tolist()
        self.tf = ToTensor()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.tf(self.pil[i]), self.labels[i]


def make_model(config):
    """The model to train: 4 classes, what its checkpoints record."""
    return TrainedModel(
        create_model(config.model, num_classes=4),
        classes=["a", "b", "c", "d"],
        model_name=config.model,
        model_kwargs={"num_classes": 4, "in_chans": 1},
        dataset="synthetic",
        precision=config.precision,
    )


def run_fit(tmp_path, config, loader="tensor", name="run"):
    x, y = synthetic_digits(512)
    xt, yt = synthetic_digits(200, seed=1)
    if loader == "tensor":
        train = TensorSource(x, y, config.batch_size, shuffle=True, seed=config.seed)
        test = TensorSource(xt, yt, 64)
    else:
        train = DataLoaderSource(
            ToTensorDataset(x, y), config.batch_size, shuffle=True, seed=config.seed
        )
        test = DataLoaderSource(ToTensorDataset(xt, yt), 64)
    seed_everything(config.seed)
    model = make_model(config)
    run = RunDir(tmp_path / name)
    history = fit(model, train, {"test": test}, config, run=run)
    return model, history, run


def test_fit_learns_and_writes_run_dir(tmp_path):
    config = TrainConfig(epochs=3, batch_size=32, lr=1e-3)
    model, history, run = run_fit(tmp_path, config)
    assert [r["epoch"] for r in history.rows] == [1, 2, 3]
    assert history.last["test_accuracy"] >= 0.95
    assert history.steps == 3 * 16
    rows = read_metrics(run.metrics_csv)
    with open(run.metrics_csv) as fh:
        assert next(csv.reader(fh)) == [
            "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr",
            "train_seconds", "eval_seconds",
        ]  # fmt: skip
    assert len(rows) == 3
    assert rows[-1]["test_accuracy"] == pytest.approx(history.last["test_accuracy"], abs=1e-6)
    # reload last.pt: same weights, same accuracy
    reloaded, ckpt = load_model(run.last)
    assert ckpt.epoch == 3 and ckpt.step == 48 and ckpt.classes == ["a", "b", "c", "d"]
    for (k, v), (k2, v2) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert ckpt.optimizer is not None and ckpt.rng is not None
    assert run.best.exists()


def test_same_seed_same_metrics_and_loader_paths_agree(tmp_path):
    config = TrainConfig(epochs=2, batch_size=32, lr=1e-3, seed=3)
    _, h1, _ = run_fit(tmp_path, config, "tensor", "a")
    _, h2, _ = run_fit(tmp_path, config, "tensor", "b")
    _, h3, _ = run_fit(tmp_path, config, "dataloader", "c")
    keys = ["train_loss", "train_accuracy", "test_loss", "test_accuracy"]
    for r1, r2, r3 in zip(h1.rows, h2.rows, h3.rows):
        assert [r1[k] for k in keys] == [r2[k] for k in keys]
        for k in keys:
            assert r3[k] == pytest.approx(r1[k], rel=1e-5, abs=1e-6)


def test_both_loader_paths_give_identical_batches():
    x, y = synthetic_digits(100)
    a = TensorSource(x, y, 32, shuffle=True, seed=5)
    b = DataLoaderSource(ToTensorDataset(x, y), 32, shuffle=True, seed=5)
    for epoch in (1, 2):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        batches_a, batches_b = list(a), list(b)
        assert [len(t[1]) for t in batches_a] == [32, 32, 32, 4]
        for (xa, ya), (xb, yb) in zip(batches_a, batches_b):
            assert torch.equal(ya, yb)
            assert torch.equal(xa, xb)


def test_epoch_permutation_covers_every_index_once_and_varies():
    p1, p2 = epoch_permutation(1000, 0, 1), epoch_permutation(1000, 0, 2)
    assert sorted(p1.tolist()) == list(range(1000))
    assert not torch.equal(p1, p2)
    assert torch.equal(p1, epoch_permutation(1000, 0, 1))
    tr, va = split_indices(1000, 0.1, 0)
    assert len(va) == 100 and len(tr) == 900
    assert sorted(torch.cat([tr, va]).tolist()) == list(range(1000))


def test_tensor_source_normalizes_like_totensor_normalize():
    from torchvision import transforms

    x, y = synthetic_digits(8)
    src = TensorSource(x, y, 8, mean=[0.1307], std=[0.3081])
    batch = next(iter(src))[0]
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.1307], [0.3081])])
    ref = torch.stack([tf(im.numpy()) for im in x])
    assert torch.equal(batch, ref)


def test_non_finite_loss_names_epoch_step_lr_and_keeps_checkpoint(tmp_path):
    config = TrainConfig(epochs=3, batch_size=32, lr=1e-3, optimizer="sgd")
    x, y = synthetic_digits(64)
    src = TensorSource(x, y, 32, shuffle=True)
    model = make_model(config)
    run = RunDir(tmp_path / "run")

    def poison(row):  # after epoch 1 is saved, make the next forward produce NaN
        with torch.no_grad():
            model.net.fc3.bias.fill_(float("nan"))

    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 3 \(lr 0.001\)"):
        fit(
            model,
            src,
            {"test": src},
            config,
            run=run,
            on_epoch_end=poison,
        )
    ckpt = load_checkpoint(run.last)
    assert ckpt.epoch == 1
    assert all(torch.isfinite(v).all() for v in ckpt.state_dict.values())


def test_run_dir_refuses_to_overwrite(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "last.pt").write_bytes(b"precious")
    with pytest.raises(RunDirError, match="not empty"):
        RunDir(tmp_path / "old")
    assert (tmp_path / "old" / "last.pt").read_bytes() == b"precious"


def test_config_validation_messages():
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="unknown recipe 'x'; valid recipes: "):
        recipe_config("x")
    config = recipe_config("tutorial", epochs=None, lr=0.5)
    assert config.epochs == 10 and config.lr == 0.5 and config.batch_size == 64
    assert TrainConfig.from_dict(config.to_dict()) == config


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the bare pickle
def test_checkpoint_refuses_code_execution_and_foreign_files(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "mnistcnn.checkpoint", "x": _Evil(str(marker))}, evil)
    marker.unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    assert not marker.exists()
    torch.load(evil, weights_only=False)  # control: the payload really does run code
    assert marker.exists()

    bare = tmp_path / "bare.pt"
    torch.save(create_model("tutorial").state_dict(), bare)
    with pytest.raises(CheckpointError, match="not an mnistcnn checkpoint"):
        load_checkpoint(bare)

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"hello")
    with pytest.raises(CheckpointError, match="junk.pt: a text file, not an mnistcnn checkpoint"):
        load_checkpoint(junk)
    binary = tmp_path / "binary.pt"
    binary.write_bytes(b"\x80\x04garbage")  # looks like a pickle: left to torch.load
    with pytest.raises(CheckpointError, match=r"refused to load.*: Unsupported operand") as err:
        load_checkpoint(binary)
    assert "Please file an issue" not in str(err.value)  # torch's advice is not ours to give


def test_checkpoint_truncated_wrong_arch_and_future_version(tmp_path):
    config = TrainConfig(epochs=1, batch_size=32, lr=1e-3)
    _, _, run = run_fit(tmp_path, config)
    data = run.last.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(cut)

    raw = torch.load(run.last, weights_only=True)
    raw["state_dict"].pop("net.conv1.weight")
    torch.save(raw, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"do not fit architecture 'tutorial'.*conv1\.weight"):
        load_model(tmp_path / "missing.pt")

    raw = torch.load(run.last, weights_only=True)
    raw["format_version"] = 99
    torch.save(raw, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(tmp_path / "future.pt")


def test_checkpoint_loads_from_run_directory(tmp_path):
    config = TrainConfig(epochs=1, batch_size=64, lr=1e-3)
    _, history, run = run_fit(tmp_path, config)
    ckpt = load_checkpoint(run.path)
    assert ckpt.path.name == "best.pt"
    assert math.isclose(ckpt.metrics["test_accuracy"], history.last["test_accuracy"])


def test_latest_link_follows_the_newest_run(tmp_path):
    from mnistcnn.engine.run_dir import update_latest_link

    for name in ("20260101-000000-tutorial-mnist", "20260102-000000-tutorial-mnist"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "best.pt").write_bytes(name.encode())
        link = update_latest_link(tmp_path / name)
        assert link == tmp_path / "latest"
        assert (tmp_path / "latest" / "best.pt").read_bytes() == name.encode()
    assert os.readlink(tmp_path / "latest") == "20260102-000000-tutorial-mnist"  # relative
    (tmp_path / "other").mkdir()
    (tmp_path / "latest").unlink()
    (tmp_path / "latest").mkdir()  # a user's own folder named latest is left alone
    assert update_latest_link(tmp_path / "other") is None
    assert (tmp_path / "latest").is_dir() and not (tmp_path / "latest").is_symlink()


def test_metrics_row_is_never_half_written_on_a_full_disk(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    run.append_metrics({"epoch": 1, "train_loss": 0.5, "test_accuracy": 0.9})
    before = run.metrics_csv.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run.append_metrics({"epoch": 2, "train_loss": 0.4, "test_accuracy": 0.95})
    assert run.metrics_csv.read_bytes() == before
    assert [r["epoch"] for r in read_metrics(run.metrics_csv)] == [1]
