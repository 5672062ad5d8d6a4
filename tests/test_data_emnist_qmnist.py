"""EMNIST and QMNIST through the verified data chain, on generated files in their real formats.

EMNIST: a fake official ``gzip.zip`` (``gzip/emnist-<split>-...-ubyte.gz`` members,
images stored transposed, letters labelled 1..26). QMNIST: ``.gz`` IDX files with
8-column int32 labels. The specs are the registry's with small counts and the
md5 sums of the generated files patched in, as ``tests/conftest.py`` does for MNIST.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import idx_bytes
from mnistcnn.data import (
    DatasetSpec,
    IDXError,
    SourceError,
    dataset_info,
    dataset_normalization,
    fetch_dataset,
    get_spec,
    list_datasets,
    load_arrays,
    load_dataset,
    pixel_stats,
)
from mnistcnn.data import datasets as datasets_module
from mnistcnn.data import specs as specs_module
from mnistcnn.data.specs import IdxFileSpec, SplitFiles

COUNTS = {"train": 40, "test": 12}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MNISTCNN_MIRROR", raising=False)
    monkeypatch.delenv("MNISTCNN_DATA", raising=False)
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")


def glyph_l(rng: np.random.Generator) -> np.ndarray:
    """An upright "L": uint8 (28, 28), a vertical bar on the left and a foot at the bottom.

    Asymmetric under transposition (the transpose is a bar on top and a foot on the right).
    """
    img = rng.integers(0, 20, (28, 28), dtype=np.uint8)
    img[4:24, 6:9] = 255  # vertical stroke, left
    img[21:24, 6:20] = 255  # horizontal foot, bottom
    return img


def small_files(spec: DatasetSpec, counts: dict[str, int]) -> dict[str, SplitFiles]:
    return {
        s: SplitFiles(
            images=replace(spec.files[s].images, count=counts[s]),
            labels=replace(spec.files[s].labels, count=counts[s]),
        )
        for s in ("train", "test")
    }


class FakeEmnist:
    """A fake ``gzip.zip`` with the ``letters`` and ``digits`` splits, and their upright truth."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.upright: dict[str, np.ndarray] = {}  # file name -> upright images or 0-based labels
        members: dict[str, bytes] = {}
        for split, n_classes, offset in (("letters", 26, 1), ("digits", 10, 0)):
            for part in ("train", "test"):
                n = COUNTS[part]
                images = np.stack([glyph_l(rng) for _ in range(n)])
                labels = rng.integers(0, n_classes, n).astype(np.uint8)
                labels[:n_classes] = np.arange(n_classes)[:n]  # every class at least once
                stem = f"emnist-{split}-{part}"
                self.upright[f"{stem}-images-idx3-ubyte"] = images
                self.upright[f"{stem}-labels-idx1-ubyte"] = labels.astype(np.int64)
                stored = np.ascontiguousarray(images.transpose(0, 2, 1))  # as EMNIST stores
                members[f"{stem}-images-idx3-ubyte.gz"] = gzip.compress(idx_bytes(stored), mtime=0)
                members[f"{stem}-labels-idx1-ubyte.gz"] = gzip.compress(
                    idx_bytes(labels + offset), mtime=0
                )
            members[f"emnist-{split}-mapping.txt"] = b"1 65 97\n"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for name, data in members.items():
                zf.writestr(f"gzip/{name}", data)
        self.zip_bytes = buf.getvalue()
        self.md5 = hashlib.md5(self.zip_bytes).hexdigest()

    def spec(self, split: str, md5: str | None = None, urls: tuple[str, ...] = ()) -> DatasetSpec:
        real = get_spec(f"emnist-{split}")
        assert real.archive is not None
        archive = replace(real.archive, md5=md5 or self.md5, urls=urls)
        return replace(real, files=small_files(real, COUNTS), archive=archive)


@pytest.fixture
def emnist() -> FakeEmnist:
    return FakeEmnist(np.random.default_rng(0))


def test_registry_names_classes_and_sizes() -> None:
    names = list_datasets()
    for split in ("digits", "letters", "balanced", "byclass", "bymerge", "mnist"):
        assert f"emnist-{split}" in names
    assert "qmnist" in names
    letters = get_spec("EMNIST_letters")
    assert letters.name == "emnist-letters" and letters.folder == "EMNIST"
    assert letters.classes == tuple("abcdefghijklmnopqrstuvwxyz") and letters.num_classes == 26
    assert letters.label_offset == 1 and letters.transposed
    assert letters.files["train"].images.count == 124_800
    assert letters.files["test"].labels.name == "emnist-letters-test-labels-idx1-ubyte"
    balanced = get_spec("emnist-balanced")
    assert balanced.num_classes == 47 and balanced.classes[:11] == (*"0123456789", "A")
    assert balanced.classes[36:] == tuple("abdefghnqrt")
    assert get_spec("emnist-byclass").num_classes == 62
    assert get_spec("emnist-bymerge").num_classes == 47
    assert get_spec("emnist-digits").classes == tuple("0123456789")
    assert get_spec("emnist-mnist").files["train"].images.count == 60_000
    arch = letters.archive
    assert arch is not None and arch.name == "gzip.zip"
    assert arch.md5 == "58c8d27c78d21e728a6bc7b3cc06412e"
    assert arch.urls == ("https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",)
    q = get_spec("qmnist")
    assert q.num_classes == 10 and q.folder == "QMNIST"
    assert [f.name for f in q.all_files()] == [
        "qmnist-train-images-idx3-ubyte",
        "qmnist-train-labels-idx2-int",
        "qmnist-test-images-idx3-ubyte",
        "qmnist-test-labels-idx2-int",
    ]
    assert [f.count for f in q.all_files()] == [60_000] * 4
    assert q.files["train"].images.gz_md5 == "ed72d4157d28c017586c42bc6afe6370"
    assert q.files["test"].labels.gz_md5 == "5b5b05890a5e13444e108efe57b788aa"
    assert q.files["train"].labels.kind == "extended-labels"
    with pytest.raises(ValueError, match="emnist-letters"):
        get_spec("emnist")  # ambiguous: the split must be named


@pytest.mark.parametrize("layout", ["torchvision", "flat"])
def test_emnist_zip_in_mirror_dir_reads_upright_with_0_based_letters(
    emnist: FakeEmnist, tmp_path: Path, layout: str
) -> None:
    mirror = tmp_path / "mirror"
    folder = mirror / "EMNIST" / "raw" if layout == "torchvision" else mirror
    folder.mkdir(parents=True)
    (folder / "gzip.zip").write_bytes(emnist.zip_bytes)
    root = tmp_path / "root"
    spec = emnist.spec("letters")
    result = fetch_dataset("emnist-letters", root, mirror, allow_download=False, spec=spec)
    assert result.raw_dir == root / "EMNIST" / "raw"
    for name, desc in result.sources.items():
        assert desc.startswith(f"extracted from {folder}/gzip.zip:gzip/{name}.gz"), desc
    assert not (result.raw_dir / "gzip.zip").exists()  # a mirror's archive is only read
    for train in (True, False):
        part = "train" if train else "test"
        images, labels = load_arrays("emnist-letters", train, root, mirror, spec=spec)
        truth = emnist.upright[f"emnist-letters-{part}-images-idx3-ubyte"]
        assert images.dtype == torch.uint8 and tuple(images.shape) == (COUNTS[part], 28, 28)
        assert torch.equal(images, torch.from_numpy(truth))
        # the "L" reads upright: a vertical stroke on the left, the foot at the bottom
        assert images[0, 4:24, 6:9].min() == 255 and images[0, 21:24, 6:20].min() == 255
        assert images[0, 6:9, 4:20].float().mean() < 200  # the transposed bar is not there
        want = emnist.upright[f"emnist-letters-{part}-labels-idx1-ubyte"]
        assert labels.dtype == torch.int64 and labels.tolist() == want.tolist()
        assert labels.min() == 0 and labels.max() <= 25
    assert sorted(set(labels.tolist()) | set(range(12))) == list(range(12))
    ds = load_dataset("emnist-letters", True, root, mirror, spec=spec)
    image, label = ds[0]
    assert np.array_equal(
        np.asarray(image), emnist.upright["emnist-letters-train-images-idx3-ubyte"][0]
    )
    assert label == int(emnist.upright["emnist-letters-train-labels-idx1-ubyte"][0])
    assert ds.classes[0] == "a" and len(ds.classes) == 26
    # the same archive serves another split
    digits = emnist.spec("digits")
    images, labels = load_arrays("emnist-digits", False, root, mirror, spec=digits)
    assert torch.equal(
        images, torch.from_numpy(emnist.upright["emnist-digits-test-images-idx3-ubyte"])
    )
    assert labels.tolist() == emnist.upright["emnist-digits-test-labels-idx1-ubyte"].tolist()


def test_emnist_zip_with_wrong_md5_is_refused(emnist: FakeEmnist, tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "gzip.zip").write_bytes(emnist.zip_bytes)
    spec = emnist.spec("letters", md5="0" * 32)
    with pytest.raises(SourceError) as info:
        fetch_dataset("emnist-letters", tmp_path / "root", tmp_path / "mirror",
                      allow_download=False, spec=spec)  # fmt: skip
    message = str(info.value)
    assert f"expected md5 {'0' * 32} (the official gzip.zip), found {emnist.md5}" in message
    assert "Or put the official gzip.zip" in message
    assert not any((tmp_path / "root" / "EMNIST" / "raw").glob("emnist-*"))


def test_emnist_letters_label_0_is_refused(emnist: FakeEmnist, tmp_path: Path) -> None:
    """A letters file with a label 0 (stored labels are 1..26) is not the official file."""
    name = "emnist-letters-train-labels-idx1-ubyte"
    bad = np.zeros(COUNTS["train"], dtype=np.uint8)
    raw = tmp_path / "root" / "EMNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(bad)))
    with pytest.raises(SourceError, match=r"expected labels in 1\.\.26, found 0"):
        fetch_dataset("emnist-letters", tmp_path / "root", allow_download=False,
                      spec=emnist.spec("letters"))  # fmt: skip


class _ZipServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _ZipHandler)
        self.files, self.hits = files, []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/cs_links/EMNIST/"


class _ZipHandler(BaseHTTPRequestHandler):
    server: _ZipServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.hits.append(self.path)
        body = self.server.files.get(self.path.rsplit("/", 1)[-1])
        code, body = (404, b"not found") if body is None else (200, body)
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def zip_server(emnist: FakeEmnist) -> Iterator[_ZipServer]:
    srv = _ZipServer({"gzip.zip": emnist.zip_bytes})
    threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_emnist_zip_downloaded_once_and_kept(
    emnist: FakeEmnist, tmp_path: Path, zip_server: _ZipServer
) -> None:
    url = zip_server.url + "gzip.zip"
    root = tmp_path / "root"
    result = fetch_dataset("emnist-letters", root, spec=emnist.spec("letters", urls=(url,)))
    assert zip_server.hits == ["/cs_links/EMNIST/gzip.zip"]  # once for the four files
    kept = result.raw_dir / "gzip.zip"
    first, *rest = result.sources.values()
    assert first.endswith(f"(downloaded from {url})"), first
    assert all(d.startswith(f"extracted from {kept}:gzip/") for d in rest), rest
    assert kept.read_bytes() == emnist.zip_bytes
    # another split comes from the kept archive, without the network
    other = fetch_dataset("emnist-digits", root, spec=emnist.spec("digits", urls=(url,)))
    assert zip_server.hits == ["/cs_links/EMNIST/gzip.zip"]
    assert all(d.startswith(f"extracted from {kept}:gzip/") for d in other.sources.values())
    # a URL mirror is tried before the official URL
    fresh = tmp_path / "fresh"
    unreachable = ("http://127.0.0.1:9/none/gzip.zip",)
    fetch_dataset(
        "emnist-digits", fresh, zip_server.url, spec=emnist.spec("digits", urls=unreachable)
    )
    assert zip_server.hits[1:] == [
        "/cs_links/EMNIST/emnist-digits-train-images-idx3-ubyte.gz",  # per-file .gz first (404)
        "/cs_links/EMNIST/gzip.zip",  # then the archive, kept for the other three files
    ]


def test_emnist_downloaded_zip_with_wrong_md5_is_refused(
    emnist: FakeEmnist, tmp_path: Path, zip_server: _ZipServer
) -> None:
    url = zip_server.url + "gzip.zip"
    spec = emnist.spec("letters", md5="f" * 32, urls=(url,))
    with pytest.raises(SourceError, match=f"{url}: expected md5 f{{32}}"):
        fetch_dataset("emnist-letters", tmp_path / "root", spec=spec)
    assert zip_server.hits == ["/cs_links/EMNIST/gzip.zip"]  # not downloaded again per file
    assert not (tmp_path / "root" / "EMNIST" / "raw" / "gzip.zip").exists()


class FakeQmnist:
    """QMNIST ``.gz`` files: uint8 images and (N, 8) int32 extended labels."""

    def __init__(self, rng: np.random.Generator) -> None:
        real = get_spec("qmnist")
        counts = {"train": 30, "test": 20}
        self.arrays: dict[str, np.ndarray] = {}
        self.gz: dict[str, bytes] = {}
        for part in ("train", "test"):
            n = counts[part]
            pair = real.files[part]
            self.arrays[pair.images.name] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            labels = np.zeros((n, 8), dtype=np.int32)
            labels[:, 0] = rng.integers(0, 10, n)  # the class
            labels[:, 1] = rng.integers(0, 4, n)  # HSF series
            labels[:, 2] = rng.integers(0, 4000, n)  # writer id: out of 0..9, must be ignored
            labels[:, 5] = np.arange(n) + 100_000  # global NIST index
            self.arrays[pair.labels.name] = labels
        for name, array in self.arrays.items():
            self.gz[name] = gzip.compress(idx_bytes(array), mtime=0)
        files = {}
        for part in ("train", "test"):
            pair = real.files[part]
            files[part] = SplitFiles(
                *(
                    replace(f, count=counts[part], gz_md5=hashlib.md5(self.gz[f.name]).hexdigest())
                    for f in (pair.images, pair.labels)
                )
            )
        self.spec = replace(real, files=files, mirrors=())

    def lay_out(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.gz.items():
            (folder / f"{name}.gz").write_bytes(data)
        return folder


@pytest.fixture
def qmnist() -> FakeQmnist:
    return FakeQmnist(np.random.default_rng(1))


def test_qmnist_labels_take_column_0_from_a_mirror_dir(qmnist: FakeQmnist, tmp_path: Path) -> None:
    mirror = qmnist.lay_out(tmp_path / "mirror" / "QMNIST" / "raw").parent.parent
    root = tmp_path / "root"
    result = fetch_dataset("qmnist", root, mirror, allow_download=False, spec=qmnist.spec)
    assert all(d.startswith("extracted from mirror dir") for d in result.sources.values())
    images, labels = load_arrays("qmnist", False, root, mirror, spec=qmnist.spec)
    assert tuple(images.shape) == (20, 28, 28)
    assert torch.equal(images, torch.from_numpy(qmnist.arrays["qmnist-test-images-idx3-ubyte"]))
    want = qmnist.arrays["qmnist-test-labels-idx2-int"][:, 0]
    assert labels.dtype == torch.int64 and labels.tolist() == want.tolist()
    ds = load_dataset("qmnist", True, root, mirror, spec=qmnist.spec)
    assert len(ds) == 30
    assert ds[3][1] == int(qmnist.arrays["qmnist-train-labels-idx2-int"][3, 0])
    info = dataset_info("qmnist", root, mirror, spec=qmnist.spec)
    assert sum(info["splits"]["test"]["class_counts"]) == 20
    assert len(info["splits"]["test"]["class_counts"]) == 10


def test_qmnist_gz_with_wrong_md5_is_refused(qmnist: FakeQmnist, tmp_path: Path) -> None:
    name = "qmnist-train-labels-idx2-int"
    mirror = qmnist.lay_out(tmp_path / "mirror")
    (mirror / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(qmnist.arrays[name]), mtime=1))
    with pytest.raises(SourceError) as info:
        fetch_dataset("qmnist", tmp_path / "root", mirror, allow_download=False, spec=qmnist.spec)
    want = qmnist.spec.files["train"].labels.gz_md5
    assert f"expected md5 {want} (the official {name}.gz)" in str(info.value)
    assert not (tmp_path / "root" / "QMNIST" / "raw" / name).exists()


def test_qmnist_labels_need_8_int32_columns(qmnist: FakeQmnist, tmp_path: Path) -> None:
    from mnistcnn.data.idx import validate_idx_file

    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.zeros((5, 7), dtype=np.int32)))
    with pytest.raises(IDXError, match="expected 8 label columns"):
        validate_idx_file(path, "extended-labels", num_classes=10)
    path.write_bytes(idx_bytes(np.zeros(5, dtype=np.uint8)))
    with pytest.raises(IDXError, match="expected magic 3074"):
        validate_idx_file(path, "extended-labels", num_classes=10)
    bad = np.zeros((5, 8), dtype=np.int32)
    bad[2, 0] = 10
    path.write_bytes(idx_bytes(bad))
    with pytest.raises(IDXError, match=r"expected labels in 0\.\.9, found 10 at index 2"):
        validate_idx_file(path, "extended-labels", num_classes=10)


def test_normalization_computed_from_train_split_and_cached(
    emnist: FakeEmnist, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "gzip.zip").write_bytes(emnist.zip_bytes)
    spec = emnist.spec("letters")
    root = tmp_path / "root"
    mean, std = dataset_normalization("emnist-letters", root, mirror, spec=spec)
    want = pixel_stats(emnist.upright["emnist-letters-train-images-idx3-ubyte"])
    assert (mean, std) == (round(want[0], 4), round(want[1], 4))
    assert (root / "EMNIST" / "raw" / "STATS.json").is_file()

    def boom(images: np.ndarray) -> tuple[float, float]:
        raise AssertionError("the cached values must be used")

    monkeypatch.setattr(datasets_module, "pixel_stats", boom)
    assert dataset_normalization("emnist-letters", root, mirror, spec=spec) == (mean, std)
    # registered constants need no files
    assert dataset_normalization("mnist", tmp_path / "nothing") == (0.1307, 0.3081)


@pytest.fixture
def registered_fake_letters(
    emnist: FakeEmnist, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeEmnist]:
    """The registry's ``emnist-letters`` is the fake one (for the CLI and the engine)."""
    spec = emnist.spec("letters")
    specs_module._build.cache_clear()
    real_build = specs_module._build

    def build(name: str) -> DatasetSpec:
        return spec if name == "emnist-letters" else real_build(name)

    monkeypatch.setattr(specs_module, "_build", build)
    yield emnist
    monkeypatch.undo()
    specs_module._build.cache_clear()


def test_cli_data_and_train_on_emnist_letters(registered_fake_letters, tmp_path: Path) -> None:
    from mnistcnn.artifact import load
    from mnistcnn.cli import main

    emnist = registered_fake_letters
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "gzip.zip").write_bytes(emnist.zip_bytes)
    common = ["--data-root", str(tmp_path / "root"), "--mirror", str(mirror)]
    r = CliRunner().invoke(main, ["data", "fetch", "emnist-letters", "--no-download", *common])
    assert r.exit_code == 0, r.output
    assert "gzip.zip:gzip/emnist-letters-train-images-idx3-ubyte.gz" in r.output
    r = CliRunner().invoke(main, ["data", "show", "emnist-letters", "--index", "0", *common])
    assert r.exit_code == 0, r.output
    first = int(emnist.upright["emnist-letters-train-labels-idx1-ubyte"][0])
    assert f"label {first} ({'abcdefghijklmnopqrstuvwxyz'[first]})" in r.output
    out = tmp_path / "run"
    r = CliRunner().invoke(
        main,
        ["train", "--dry-run", "--dataset", "emnist-letters", "--out", str(out), "--no-progress",
         "--batch-size", "8", "--normalize", *common],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads((out / "config.json").read_text())["normalize"] is True, r.output
    model = load(out / "last.pt")
    assert list(model.classes) == list("abcdefghijklmnopqrstuvwxyz")
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 26)
    mean, std = dataset_normalization("emnist-letters", tmp_path / "root")
    assert model.mean == pytest.approx([mean]) and model.std == pytest.approx([std])


def test_unknown_archive_member_is_refused(emnist: FakeEmnist, tmp_path: Path) -> None:
    spec = emnist.spec("letters")
    files = dict(spec.files)
    files["test"] = SplitFiles(
        images=IdxFileSpec("emnist-nope-test-images-idx3-ubyte", "images", 12, None),
        labels=spec.files["test"].labels,
    )
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "gzip.zip").write_bytes(emnist.zip_bytes)
    with pytest.raises(SourceError, match="has no member emnist-nope-test-images-idx3-ubyte.gz"):
        fetch_dataset("x", tmp_path / "r", tmp_path / "m", allow_download=False,
                      spec=replace(spec, files=files))  # fmt: skip
