"""IDX reading, writing and validation on synthetic files (no real data, no network)."""

from __future__ import annotations

import gzip
import hashlib
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from mnistcnn.data import IDXError, read_idx, read_idx_header, validate_idx_file, write_idx
from mnistcnn.data._files import gunzip_capped, sniff, staged_file
from mnistcnn.data.idx import validate_pair

HTML = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Log in</body></html>\n"


def images(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def test_write_read_round_trip_is_byte_exact(tmp_path: Path) -> None:
    x = images(3)
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, x)
    expected = struct.pack(">IIII", 2051, 3, 28, 28) + x.tobytes()
    assert path.read_bytes() == expected
    back = read_idx(path)
    assert back.dtype == np.uint8 and back.shape == (3, 28, 28)
    np.testing.assert_array_equal(back, x)
    assert back.flags.writeable
    write_idx(tmp_path / "again", back)
    assert (tmp_path / "again").read_bytes() == expected


def test_labels_magic_and_other_dtypes_round_trip(tmp_path: Path) -> None:
    y = np.array([5, 0, 4, 1, 9], dtype=np.uint8)
    write_idx(tmp_path / "labels", y)
    assert (tmp_path / "labels").read_bytes()[:8] == struct.pack(">II", 2049, 5)
    for dtype in (np.int8, np.int16, np.int32, np.float32, np.float64, ">i4"):
        a = np.arange(-6, 6).astype(dtype).reshape(3, 2, 2)
        write_idx(tmp_path / "a", a)
        np.testing.assert_array_equal(read_idx(tmp_path / "a"), a)
    with pytest.raises(ValueError, match="cannot store dtype"):
        write_idx(tmp_path / "b", np.zeros(3, dtype=np.uint16))


def test_validate_accepts_good_files_and_checks_md5(tmp_path: Path) -> None:
    write_idx(tmp_path / "img", images(3))
    write_idx(tmp_path / "lab", np.array([0, 9, 3], dtype=np.uint8))
    md5 = hashlib.md5((tmp_path / "img").read_bytes()).hexdigest()
    hi = validate_idx_file(tmp_path / "img", "images", count=3, md5=md5)
    hl = validate_idx_file(tmp_path / "lab", "labels", count=3, num_classes=10)
    assert hi.shape == (3, 28, 28) and hl.shape == (3,)
    validate_pair(hi, hl, tmp_path / "img", tmp_path / "lab")
    with pytest.raises(IDXError, match=f"expected md5 {'0' * 32}, found {md5}") as e:
        validate_idx_file(tmp_path / "img", "images", md5="0" * 32)
    assert str(tmp_path / "img") in str(e.value) and "fetch the dataset again" in str(e.value)


def test_html_page_saved_as_gz_is_recognised(tmp_path: Path) -> None:
    page = tmp_path / "train-images-idx3-ubyte.gz"
    page.write_bytes(HTML)
    assert sniff(HTML) == "html"
    with pytest.raises(IDXError, match="looks like an HTML page, not gzip.*proxy or login page"):
        gunzip_capped(page, tmp_path / "out", 10_000)
    with pytest.raises(IDXError, match="HTML page"):
        read_idx_header(page)


def test_truncated_idx_and_truncated_gz(tmp_path: Path) -> None:
    data = struct.pack(">IIII", 2051, 3, 28, 28) + images(3).tobytes()
    (tmp_path / "short").write_bytes(data[:-100])
    with pytest.raises(IDXError, match=r"2368 bytes, but the file has 2268 bytes: truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(data + b"\0")
    with pytest.raises(IDXError, match="trailing bytes"):
        read_idx(tmp_path / "long")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(data)[:200])
    with pytest.raises(IDXError, match="truncated gzip file"):
        gunzip_capped(tmp_path / "cut.gz", tmp_path / "out", len(data))
    (tmp_path / "hdr").write_bytes(b"\0\0\x08\x03\0\0")  # magic, then half a dimension
    with pytest.raises(IDXError, match="truncated"):
        read_idx(tmp_path / "hdr")


def test_wrong_magic(tmp_path: Path) -> None:
    write_idx(tmp_path / "lab", np.zeros(3, dtype=np.uint8))
    with pytest.raises(IDXError, match=r"expected magic 2051 .* found 2049 .*a labels file"):
        validate_idx_file(tmp_path / "lab", "images")
    (tmp_path / "junk").write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(IDXError, match=r"neither gzip nor IDX data \(magic 0x504b0304\)"):
        validate_idx_file(tmp_path / "junk", "images")
    (tmp_path / "raw.gz").write_bytes(gzip.compress(b"x" * 100))
    with pytest.raises(IDXError, match="found a gzip file"):
        read_idx(tmp_path / "raw.gz")
    write_idx(tmp_path / "f32", np.zeros((3, 28, 28), dtype=np.float32))
    with pytest.raises(IDXError, match="expected magic 2051"):
        validate_idx_file(tmp_path / "f32", "images")


def test_byte_swapped_idx_is_named_as_such(tmp_path: Path) -> None:
    """An IDX file written little-endian: said to be byte-swapped, not "magic 0x03080000"."""
    good = tmp_path / "good"
    write_idx(good, images())
    data = good.read_bytes()
    swapped = tmp_path / "swapped"  # magic and sizes in the machine's (little-endian) order
    swapped.write_bytes(b"".join(data[i : i + 4][::-1] for i in range(0, 16, 4)) + data[16:])
    want = (
        f"{swapped}: an IDX file whose header is byte-swapped (little-endian: magic bytes "
        "03 08 00 00); the IDX format is big-endian (00 00 08 03)"
    )
    for check in (read_idx_header, read_idx, lambda p: validate_idx_file(p, "images")):
        with pytest.raises(IDXError) as info:
            check(swapped)
        assert str(info.value).startswith(want) and "0x03080000" not in str(info.value)


def test_lying_header_is_refused_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "liar"
    path.write_bytes(struct.pack(">IIII", 2051, 0xFFFFFFFF, 0xFFFF, 0xFFFF) + bytes(64))
    tracemalloc.start()
    try:
        with pytest.raises(IDXError, match="but the file has 80 bytes: truncated"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_image_size_and_counts(tmp_path: Path) -> None:
    write_idx(tmp_path / "odd", np.zeros((2, 28, 27), dtype=np.uint8))
    with pytest.raises(IDXError, match="expected images of 28x28 pixels, found 28x27"):
        validate_idx_file(tmp_path / "odd", "images")
    write_idx(tmp_path / "img", images(3))
    with pytest.raises(IDXError, match="expected 60000 images, found 3"):
        validate_idx_file(tmp_path / "img", "images", count=60000)
    write_idx(tmp_path / "lab", np.zeros(2, dtype=np.uint8))
    hi = read_idx_header(tmp_path / "img")
    hl = read_idx_header(tmp_path / "lab")
    with pytest.raises(IDXError, match="holds 3 images but .* holds 2 labels"):
        validate_pair(hi, hl, tmp_path / "img", tmp_path / "lab")


def test_label_out_of_range(tmp_path: Path) -> None:
    write_idx(tmp_path / "lab", np.array([0, 3, 10, 2], dtype=np.uint8))
    with pytest.raises(IDXError, match=r"expected labels in 0..9, found 10 at index 2"):
        validate_idx_file(tmp_path / "lab", "labels", num_classes=10)
    validate_idx_file(tmp_path / "lab", "labels", num_classes=11)


def test_gunzip_cap_refuses_oversized_output(tmp_path: Path) -> None:
    (tmp_path / "bomb.gz").write_bytes(gzip.compress(bytes(5_000_000)))
    with pytest.raises(IDXError, match="expected at most 1000 bytes once decompressed"):
        gunzip_capped(tmp_path / "bomb.gz", tmp_path / "out", 1000)


def test_staged_file_never_leaves_a_partial_file(tmp_path: Path) -> None:
    final = tmp_path / "train-images-idx3-ubyte"
    with pytest.raises(RuntimeError), staged_file(final) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError), staged_file(final) as tmp:
        tmp.write_bytes(b"new but bad")
        raise RuntimeError("validation failed")
    assert final.read_bytes() == b"old" and list(tmp_path.iterdir()) == [final]
