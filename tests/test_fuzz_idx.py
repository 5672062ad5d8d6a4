"""Hostile IDX and gzip files: verified arrays or IDXError/DataError, nothing else.

Every example also bounds the memory the reader allocates (traced with
``tracemalloc``): a header that lies about its dimensions must be refused by
comparing the size it implies with the real file size, before allocating.
Example counts come from the hypothesis profile (``tests/fuzzing.py``).
"""

from __future__ import annotations

import gzip
import math
import struct
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fuzzing  # noqa: F401  (registers and loads the hypothesis profile)
from mnistcnn.data import DataError, IDXError, get_spec, load_arrays, read_idx, validate_idx_file
from mnistcnn.data._files import gunzip_capped
from mnistcnn.data.idx import read_idx_header, write_idx
from mnistcnn.data.specs import make_files

# IDX element types, written independently of the reader (the test's own oracle).
TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_PAYLOAD = 1 << 16  # bytes of element data an example may hold
ALLOC_SLACK = 4 << 20  # bytes any call may allocate beyond 4x the file size
FEW = max(1, settings.default.max_examples // 4)  # for the slower whole-chain tests


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-idx")


def bounded(fn: Callable[[], Any], file_size: int) -> Any:
    """``fn()``, asserting it allocated at most 4x ``file_size`` + 4 MiB (exceptions pass).

    The slack covers fixed buffers (gunzip reads 1 MiB chunks); a reader that
    trusted a lying header would allocate up to 2**32 * 255 * 8 bytes.
    """
    tracemalloc.start()
    try:
        return fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak <= 4 * file_size + ALLOC_SLACK, f"allocated {peak} bytes for {file_size}"


def oracle(data: bytes) -> tuple[np.dtype, tuple[int, ...]] | None:
    """(dtype, shape) if ``data`` is a well-formed IDX file, else None."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in TYPES or not 1 <= data[3] <= 32:
        return None
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        return None
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(TYPES[data[2]])
    if len(data) != 4 + 4 * ndim + math.prod(shape) * dtype.itemsize:
        return None
    if math.prod(max(d, 1) for d in shape) * dtype.itemsize >= 2**63:  # NumPy's size limit
        return None
    return dtype, shape


def check_file(path: Path, data: bytes) -> None:
    """The reader's verdict on ``data`` (written at ``path``) against the oracle."""
    path.write_bytes(data)
    want = oracle(data)
    try:
        array = bounded(lambda: read_idx(path), len(data))
    except IDXError as exc:
        assert want is None, f"a well-formed file was refused: {exc}"
        assert str(path) in str(exc)
    else:
        assert want is not None, "a malformed file was accepted"
        dtype, shape = want
        assert array.shape == shape and array.dtype == dtype.newbyteorder("=")
        assert array.astype(dtype).tobytes() == data[4 + 4 * len(shape) :]
    for kind in ("images", "labels"):
        try:
            header = bounded(lambda k=kind: validate_idx_file(path, k, num_classes=10), len(data))
        except IDXError:
            continue
        assert want is not None and header.shape == want[1]


@st.composite
def idx_like(draw: st.DrawFn) -> bytes:
    """Bytes shaped like an IDX file, each part usually right and sometimes hostile."""
    lead = draw(st.sampled_from([b"\0\0"] * 6 + [b"\0\x01", b"\x1f\x8b", b"<h", b"PK"]))
    code = draw(st.one_of(st.sampled_from(sorted(TYPES)), st.integers(0, 255)))
    ndim = draw(st.one_of(st.integers(1, 4), st.integers(0, 255)))
    small, huge = st.integers(0, 40), st.integers(0, 2**32 - 1)
    dims = draw(st.lists(st.one_of(small, small, huge), min_size=0, max_size=min(ndim, 8)))
    if draw(st.booleans()):
        dims = (dims + [draw(small)] * ndim)[:ndim]  # a complete header
    head = lead + bytes([code, ndim]) + struct.pack(f">{len(dims)}I", *dims)
    itemsize = np.dtype(TYPES.get(code, "u1")).itemsize
    implied = math.prod(dims) * itemsize
    if implied <= MAX_PAYLOAD and draw(st.booleans()):
        size = implied + draw(st.sampled_from([0, 0, 0, -1, 1, -itemsize]))
    else:
        size = draw(st.integers(0, 4096))
    return head + draw(st.binary(min_size=max(0, size), max_size=max(0, size)))


@given(data=idx_like())
@example(data=struct.pack(">IIII", 2051, 0xFFFFFFFF, 0xFFFF, 0xFFFF) + bytes(64))  # liar
@example(data=struct.pack(">II", 2049, 8) + b"<html>\0\0")  # text inside real data
@example(data=struct.pack(">II", 0x0805, 1) + struct.pack(">IIII", 1, 1, 1, 2) + b"ab")  # 5-d
@example(data=b"\0\0\x08\x41" + bytes(4 * 65))  # 65 dims of size 0: more than NumPy holds
@example(data=b"\0\0\x08\x1a" + struct.pack(">26I", 0, *[6] * 25))  # 0 bytes, 6**25 shape
def test_random_headers_and_lengths(work: Path, data: bytes) -> None:
    check_file(work / "f.idx", data)


def arrays() -> st.SearchStrategy[np.ndarray]:
    dtypes = st.sampled_from(["u1", "i1", ">i2", "<i4", "f4", ">f8"])
    shapes = st.lists(st.integers(0, 5), min_size=1, max_size=6).map(tuple)
    return st.builds(lambda d, s, seed: _random_array(d, s, seed), dtypes, shapes, st.integers())


def _random_array(dtype: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    raw = np.random.default_rng(seed % 2**32).bytes(math.prod(shape) * np.dtype(dtype).itemsize)
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


@given(array=arrays())
def test_write_then_read_round_trips(work: Path, array: np.ndarray) -> None:
    write_idx(work / "rt.idx", array)
    back = read_idx(work / "rt.idx")
    assert back.shape == array.shape and back.tobytes() == array.astype(back.dtype).tobytes()


def mutate(data: bytes, draw: st.DrawFn) -> bytes:
    """Truncate, extend, flip or overwrite bytes of ``data`` (1-3 mutations)."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["cut", "append", "flip", "overwrite"]))
        pos = draw(st.integers(0, max(0, len(out) - 1)))
        if op == "cut":
            del out[pos:]
        elif op == "append":
            out += draw(st.binary(min_size=1, max_size=64))
        elif out and op == "flip":
            out[pos] ^= 1 << draw(st.integers(0, 7))
        elif out:
            chunk = draw(st.binary(min_size=1, max_size=8))
            out[pos : pos + len(chunk)] = chunk
    return bytes(out)


def valid_idx(count: int, kind: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    if kind == "images":
        array = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        header = struct.pack(">IIII", 2051, count, 28, 28)
    else:
        array = rng.integers(0, 10, (count,), dtype=np.uint8)
        header = struct.pack(">II", 2049, count)
    return header + array.tobytes()


@given(st.data(), st.sampled_from(["images", "labels"]), st.integers(0, 4))
def test_mutated_mnist_files(work: Path, data: st.DataObject, kind: str, count: int) -> None:
    check_file(work / "m.idx", mutate(valid_idx(count, kind, count), data.draw))


@given(st.data(), st.sampled_from(["images", "labels"]), st.integers(0, 3))
def test_gzip_corruption(work: Path, data: st.DataObject, kind: str, count: int) -> None:
    raw = valid_idx(count, kind, 7)
    packed = gzip.compress(raw, mtime=0)
    bad = mutate(packed, data.draw)
    src, dest = work / "c.gz", work / "c.idx"
    src.write_bytes(bad)
    try:
        written = bounded(lambda: gunzip_capped(src, dest, len(raw)), len(bad))
    except IDXError as exc:
        assert str(src) in str(exc)
        return
    assert written == dest.stat().st_size <= len(raw)
    check_file(dest, dest.read_bytes())


TINY_SPEC = replace(get_spec("mnist"), name="tiny", files=make_files((3, 2)), mirrors=())


@settings(max_examples=FEW)
@given(st.data(), st.sampled_from([f.name for f in TINY_SPEC.all_files()]))
def test_dataset_from_a_mirror_with_one_hostile_file(
    work: Path, data: st.DataObject, name: str
) -> None:
    """The whole chain (mirror -> gunzip -> validate -> arrays) with one corrupted .gz."""
    mirror, root = work / "mirror", work / "root"
    for d in (mirror, root):
        for p in d.rglob("*") if d.exists() else []:
            if p.is_file():
                p.unlink()
    mirror.mkdir(exist_ok=True)
    for i, f in enumerate(TINY_SPEC.all_files()):
        raw = valid_idx(f.count, f.kind, i)
        blob = gzip.compress(raw, mtime=0)
        (mirror / f.gz_name).write_bytes(mutate(blob, data.draw) if f.name == name else blob)
    kw = {"spec": TINY_SPEC, "allow_download": False, "allow_pypi": False}
    try:
        images, labels = load_arrays("tiny", True, root, mirror, **kw)
    except DataError as exc:
        assert str(exc)
        return
    assert images.shape == (3, 28, 28) and labels.shape == (3,)
    assert int(labels.max()) < 10


def test_lying_header_never_allocates_its_claim(work: Path) -> None:
    """4 GiB claimed by a 80-byte file: refused with the sizes named, < 1 MiB allocated."""
    path = work / "liar"
    path.write_bytes(struct.pack(">IIII", 2051, 0xFFFFFFFF, 28, 28) + bytes(64))
    with pytest.raises(IDXError, match="the file has 80 bytes: truncated"):
        bounded(lambda: read_idx_header(path), 80)
