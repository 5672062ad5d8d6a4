"""Inputs of ``mnistcnn predict``: expansion of arguments, IDX files, and bad files."""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import idx_bytes
from digits_synth import diff, digit
from mnistcnn._io import ImageInputError
from mnistcnn._io import decode_picture as decode_image
from mnistcnn.predict import expand_inputs
from mnistcnn.prepare import Preparation


def encoded(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that only declares its size (8-bit grey): what a decompression bomb looks like."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_files_folders_globs_and_missing(tmp_path):
    folder = tmp_path / "pics"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.png", "a.JPG", "sub/c.webp", ".hidden.png", "notes.txt"):
        (folder / name).write_bytes(b"x")
    items = expand_inputs([str(folder)])
    assert [Path(i.name).relative_to(folder).as_posix() for i in items] == [
        "a.JPG",
        "b.png",
        "sub/c.webp",
    ]
    assert all(i.path is not None and i.error is None for i in items)
    named = expand_inputs([str(folder / "notes.txt")])  # a named file is never filtered
    assert [i.name for i in named] == [str(folder / "notes.txt")] and named[0].path is not None
    globbed = expand_inputs([str(folder / "**" / "*.*")])
    # a pattern is explicit: the text file is included; glob skips hidden files
    assert [Path(i.name).name for i in globbed] == ["a.JPG", "b.png", "notes.txt", "c.webp"]
    missing = expand_inputs(["nope.png", str(tmp_path / "zz*.png")])
    assert [i.error for i in missing] == ["no such file or folder", "no file matches this pattern"]


def test_stdin_bytes_are_one_picture():
    data = encoded(digit())
    (item,) = expand_inputs(["-"], io.BytesIO(data))
    assert item.name == "-" and item.data == data


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_idx_file_gives_one_item_per_image(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    raw = idx_bytes(images)
    path = tmp_path / ("imgs.idx.gz" if compress else "t10k-images-idx3-ubyte")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    items = expand_inputs([str(path)])
    assert [i.name for i in items] == [f"{path}#{k}" for k in range(3)]
    for k, item in enumerate(items):
        assert item.prepared is not None and np.array_equal(item.prepared, images[k])
    from_stdin = expand_inputs(["-"], io.BytesIO(raw))
    assert [i.name for i in from_stdin] == ["-#0", "-#1", "-#2"]


@pytest.mark.parametrize(
    ("array", "cut", "message"),
    [
        (np.zeros(5, np.uint8), 0, "holds labels"),
        (np.zeros((2, 32, 32), np.uint8), 0, "28x28"),
        (np.zeros((2, 28, 28), np.float32), 0, "unsigned bytes"),
        (np.zeros((2, 28, 28), np.uint8), 100, "truncated"),
    ],
    ids=["labels", "size", "dtype", "truncated"],
)
def test_bad_idx_files_are_one_error_each(tmp_path, array, cut, message):
    raw = idx_bytes(array)
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(raw[: len(raw) - cut])
    (item,) = expand_inputs([str(path)])
    assert item.error is not None and message in item.error, item.error


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"empty file \(0 bytes\)"),
        (b"hello, I am not a picture\n", "a text file"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (gzip.compress(b"\x89PNG not really"), "gzip file that does not hold an IDX"),
        (encoded(digit())[:300], "truncated or corrupt"),
        (encoded(Image.merge("RGB", [digit()] * 3), "JPEG")[:400], "truncated or corrupt"),
        (encoded(Image.new("L", (1, 1))), "1x1 px: too small"),
        (encoded(Image.new("L", (100_000, 1))), "100000x1 px: too small"),
        (encoded(Image.new("L", (2000, 40))), "too elongated"),
        (png_header(100_000, 100_000), "decompression bomb"),
    ],
    ids=[
        "zero",
        "text",
        "svg",
        "gzip",
        "trunc-png",
        "trunc-jpeg",
        "1x1",
        "100000x1",
        "2000x40",
        "bomb",
    ],
)
def test_bad_files_raise_a_clear_error(data, message):
    with pytest.raises(ImageInputError, match=message):
        decode_image(data)


def test_decompression_bomb_warning_level_is_an_error_too(monkeypatch):
    """Between MAX_IMAGE_PIXELS and twice that Pillow only warns; predict refuses as well."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    ok = encoded(Image.new("L", (30, 30)))  # 900 pixels
    assert decode_image(ok).size == (30, 30)
    for side in (40, 50):  # 1600 (warning) and 2500 (> 2x: error) pixels
        with pytest.raises(ImageInputError, match="decompression bomb"):
            decode_image(encoded(Image.new("L", (side, side))))


def test_animated_gif_uses_its_first_frame():
    frames = [digit("1"), digit("7")]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    img = decode_image(data)
    assert getattr(img, "n_frames", 1) == 2 and img.tell() == 0
    got = Preparation().apply(img).image
    assert diff(got, Preparation().apply(frames[0]).image) < 1.0
    assert diff(got, Preparation().apply(frames[1]).image) > 10.0
