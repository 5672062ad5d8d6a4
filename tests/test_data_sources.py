"""The source chain of ``fetch_dataset`` on a tiny synthetic dataset (offline, fast).

Web mirrors are local ``http.server`` instances on 127.0.0.1 (ephemeral ports).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torchvision

from mnistcnn.data import (
    DataError,
    IDXError,
    SourceError,
    fetch_dataset,
    load_arrays,
    load_dataset,
    resolve_root,
)
from mnistcnn.data import idx as idx_module
from mnistcnn.data.download import DownloadError, download

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Proxy login</body></html>"
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, mode: str, files: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode, self.files, self.hits = mode, files, []
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/data/"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        srv = self.server
        srv.hits.append(self.path)
        if srv.mode == "stall":
            srv.release.wait(30)  # never answers while the test runs
            return
        if srv.mode == "drip":
            self._send(200, b"", "application/gzip", length=1_000_000)
            while not srv.release.wait(0.05):
                self.wfile.write(b"\x1f")
                self.wfile.flush()
            return
        if srv.mode == "html":
            self._send(200, HTML_PAGE, "text/html")
            return
        body = srv.files.get(self.path.rsplit("/", 1)[-1])
        self._send(404, b"not found", "text/plain") if body is None else self._send(200, body)

    def _send(self, code: int, body: bytes, ctype: str = "application/gzip", **kw: int) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(kw.get("length", len(body))))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def serve(tiny) -> Iterator:
    servers: list[_Server] = []

    def start(mode: str) -> _Server:
        srv = _Server(mode, {f"{n}.gz": tiny.gz(n) for n in tiny.raw})
        threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.release.set()
        srv.shutdown()
        srv.server_close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MNISTCNN_MIRROR", raising=False)
    monkeypatch.delenv("MNISTCNN_DATA", raising=False)
    for var in ("no_proxy", "NO_PROXY"):  # the local servers must not go through a proxy
        monkeypatch.setenv(var, "127.0.0.1,localhost")


def raw_dir(root: Path) -> Path:
    return root / "MNIST" / "raw"


def assert_installed(tiny, root: Path) -> None:
    for name, data in tiny.raw.items():
        assert (raw_dir(root) / name).read_bytes() == data
    leftovers = [p.name for p in raw_dir(root).iterdir() if p.name.endswith((".part", ".tmp"))]
    assert leftovers == []


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


def test_resolve_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resolve_root(tmp_path) == tmp_path
    monkeypatch.setenv("MNISTCNN_DATA", str(tmp_path / "env"))
    assert resolve_root(None) == tmp_path / "env"
    monkeypatch.delenv("MNISTCNN_DATA")
    assert resolve_root(None) == Path.home() / ".cache" / "mnistcnn"


def test_already_present_is_idempotent(tiny, tmp_path: Path) -> None:
    tiny.lay_out(raw_dir(tmp_path))
    result = fetch_dataset("tiny", tmp_path, spec=tiny.spec)
    assert set(result.sources.values()) == {"already present"}
    assert result.raw_dir == raw_dir(tmp_path) and result.root == tmp_path
    assert result.files == {n: raw_dir(tmp_path) / n for n in tiny.raw}
    again = fetch_dataset("tiny", tmp_path, spec=tiny.spec)
    assert again.sources == result.sources
    assert "origin unknown" in again.provenance["train-images-idx3-ubyte"]


def test_stamp_skips_md5_until_a_file_changes(
    tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tiny.lay_out(tmp_path / "mirror", gz=True)
    fetch_dataset("tiny", tmp_path / "root", mirror, spec=tiny.spec)
    calls: list[Path] = []
    real_digest = idx_module.file_digest
    monkeypatch.setattr(
        idx_module, "file_digest", lambda p, a="md5": calls.append(p) or real_digest(p, a)
    )
    fetch_dataset("tiny", tmp_path / "root", mirror, spec=tiny.spec)
    assert calls == []
    target = raw_dir(tmp_path / "root") / "t10k-images-idx3-ubyte"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF  # same size, different content, newer mtime
    target.write_bytes(bytes(data))
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    result = fetch_dataset("tiny", tmp_path / "root", mirror, spec=tiny.spec)
    assert calls, "a changed file must be hashed again"
    assert result.sources["t10k-images-idx3-ubyte"].startswith("extracted from mirror dir")
    assert (target.parent / "t10k-images-idx3-ubyte.invalid").read_bytes() == bytes(data)
    assert_installed(tiny, tmp_path / "root")


def test_gz_in_raw_dir_is_extracted(tiny, tmp_path: Path) -> None:
    tiny.lay_out(raw_dir(tmp_path), gz=True)
    result = fetch_dataset("tiny", tmp_path, spec=tiny.spec)
    gz = raw_dir(tmp_path) / "train-labels-idx1-ubyte.gz"
    assert result.sources["train-labels-idx1-ubyte"] == f"extracted from {gz}"
    assert gz.exists()
    assert_installed(tiny, tmp_path)
    prov = json.loads((raw_dir(tmp_path) / "SOURCES.json").read_text())
    assert prov == result.sources


@pytest.mark.parametrize("layout", ["torchvision", "flat", "flat-uncompressed"])
def test_mirror_dir_is_copied_and_left_unchanged(tiny, tmp_path: Path, layout: str) -> None:
    mirror = tmp_path / "mirror"
    folder = mirror / "MNIST" / "raw" if layout == "torchvision" else mirror
    tiny.lay_out(folder, gz=layout != "flat-uncompressed")
    for p in [*mirror.rglob("*")][::-1]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    before = snapshot(mirror)
    result = fetch_dataset("tiny", tmp_path / "root", mirror, spec=tiny.spec)
    verb = "copied" if layout == "flat-uncompressed" else "extracted"
    for name, desc in result.sources.items():
        assert desc.startswith(f"{verb} from mirror dir {folder}/{name}"), desc
    assert snapshot(mirror) == before
    assert_installed(tiny, tmp_path / "root")
    loaded = load_dataset("tiny", False, tmp_path / "root", spec=tiny.spec)
    assert isinstance(loaded, torchvision.datasets.MNIST) and len(loaded) == 2
    images, labels = load_arrays("tiny", True, tmp_path / "root", spec=tiny.spec)
    assert images.dtype.is_floating_point is False and tuple(images.shape) == (3, 28, 28)
    assert labels.tolist() == tiny.arrays["train-labels-idx1-ubyte"].tolist()


def test_mirror_from_environment(tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNISTCNN_MIRROR", str(tiny.lay_out(tmp_path / "m", gz=True)))
    result = fetch_dataset("tiny", tmp_path / "root", spec=tiny.spec)
    assert all("mirror dir" in d for d in result.sources.values())


def test_bad_files_are_never_used(tiny, tmp_path: Path) -> None:
    root, mirror = tmp_path / "root", tmp_path / "mirror"
    raw = tiny.lay_out(raw_dir(root), names=["train-images-idx3-ubyte"])
    (raw / "train-images-idx3-ubyte").write_bytes(tiny.raw["t10k-images-idx3-ubyte"])
    tiny.lay_out(mirror, gz=True)
    (mirror / "train-labels-idx1-ubyte.gz").write_bytes(HTML_PAGE)  # bad in the flat layout ...
    tiny.lay_out(mirror / "MNIST" / "raw", gz=True, names=["train-labels-idx1-ubyte"])  # good
    result = fetch_dataset("tiny", root, mirror, spec=tiny.spec)
    assert (raw / "train-images-idx3-ubyte.invalid").exists()
    assert result.sources["train-images-idx3-ubyte"].startswith("extracted from mirror dir")
    assert "MNIST/raw" in result.sources["train-labels-idx1-ubyte"]
    assert (mirror / "train-labels-idx1-ubyte.gz").read_bytes() == HTML_PAGE
    assert_installed(tiny, root)


def test_every_source_failing_raises_one_source_error(tiny, tmp_path: Path, serve) -> None:
    html = serve("html")
    mirror = tmp_path / "mirror"
    (mirror / "MNIST" / "raw").mkdir(parents=True)
    (mirror / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").write_bytes(HTML_PAGE)
    spec = tiny.with_mirrors(html.url)
    with pytest.raises(SourceError) as e:
        fetch_dataset("tiny", tmp_path / "root", mirror, spec=spec, timeout=2)
    msg = str(e.value)
    labels = [a[0] for a in e.value.attempts]
    for expected in ("already present in", ".gz in", f"mirror dir {mirror}", html.url):
        assert any(label.startswith(expected) for label in labels), expected
        assert expected in msg
    assert "could not obtain 4 of the 4 files of dataset 'tiny'" in msg
    assert "looks like an HTML page, not gzip" in msg
    assert "To provide the files by hand: download train-images-idx3-ubyte.gz" in msg
    assert f"into {raw_dir(tmp_path / 'root')}/" in msg and "--mirror DIR" in msg
    assert not raw_dir(tmp_path / "root").exists()  # nothing written, and no empty folders


def test_downloads_can_be_disabled(tiny, tmp_path: Path, serve) -> None:
    good = serve("good")
    with pytest.raises(SourceError, match="skipped: downloads disabled"):
        fetch_dataset("tiny", tmp_path, spec=tiny.with_mirrors(good.url), allow_download=False)
    assert good.hits == []


def test_good_web_mirror_and_log_line(
    tiny, tmp_path: Path, serve, caplog: pytest.LogCaptureFixture
) -> None:
    good = serve("good")
    with caplog.at_level(logging.INFO, logger="mnistcnn.data"):
        result = fetch_dataset("tiny", tmp_path, spec=tiny.with_mirrors(good.url), timeout=2)
    for name, desc in result.sources.items():
        assert desc == f"downloaded from {good.url}{name}.gz"
        assert f"{name}: served by mirror {good.url}" in caplog.text
    assert_installed(tiny, tmp_path)
    assert not any(p.name.endswith(".gz") for p in raw_dir(tmp_path).iterdir())


def test_first_bad_then_good_mirror(tiny, tmp_path: Path, serve) -> None:
    html, good = serve("html"), serve("good")
    result = fetch_dataset("tiny", tmp_path, spec=tiny.with_mirrors(html.url, good.url), timeout=2)
    assert len(html.hits) == 4 and len(good.hits) == 4
    assert all(d.startswith(f"downloaded from {good.url}") for d in result.sources.values())
    assert_installed(tiny, tmp_path)


def test_url_mirror_argument_comes_first(tiny, tmp_path: Path, serve) -> None:
    good, official = serve("good"), serve("good")
    spec = tiny.with_mirrors(official.url)
    result = fetch_dataset("tiny", tmp_path, good.url, spec=spec, timeout=2)
    assert official.hits == [] and len(good.hits) == 4
    assert all(good.url in d for d in result.sources.values())


def test_stalled_mirror_gives_up_within_the_timeout(tiny, tmp_path: Path, serve) -> None:
    stall, good = serve("stall"), serve("good")
    start = time.monotonic()
    result = fetch_dataset("tiny", tmp_path, spec=tiny.with_mirrors(stall.url, good.url), timeout=1)
    elapsed = time.monotonic() - start
    assert elapsed < 4, f"took {elapsed:.1f} s"
    assert len(stall.hits) == 1, "an unreachable mirror is skipped for the other files"
    assert all(good.url in d for d in result.sources.values())
    start = time.monotonic()
    with pytest.raises(SourceError) as e:
        fetch_dataset("tiny", tmp_path / "2", spec=tiny.with_mirrors(stall.url), timeout=1)
    assert time.monotonic() - start < 4
    assert "timed out" in str(e.value) and "unreachable earlier in this run" in str(e.value)


def test_slow_drip_hits_the_overall_deadline(tmp_path: Path, serve) -> None:
    drip = serve("drip")
    start = time.monotonic()
    with pytest.raises(DownloadError, match="gave up after 0.5 s") as e:
        download(drip.url + "x.gz", tmp_path / "x", timeout=1, deadline=0.5, max_bytes=10**7)
    assert e.value.unreachable and time.monotonic() - start < 3


def test_unreachable_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(DownloadError, match="cannot connect") as e:
        download(
            f"http://127.0.0.1:{port}/x.gz", tmp_path / "x", timeout=1, deadline=5, max_bytes=9
        )
    assert e.value.unreachable


def test_unwritable_root_is_explained(tiny, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    root = tmp_path / "ro"
    raw_dir(root).mkdir(parents=True)
    raw_dir(root).chmod(0o555)
    with pytest.raises(SourceError, match="is not writable: give a writable data root"):
        fetch_dataset("tiny", root, tiny.lay_out(tmp_path / "m", gz=True), spec=tiny.spec)


def test_errors_are_data_errors() -> None:
    assert issubclass(IDXError, DataError) and issubclass(SourceError, DataError)
    assert issubclass(DataError, RuntimeError)


def test_a_failed_fetch_leaves_no_empty_folders(tmp_path: Path) -> None:
    """The trial found empty <root>/KMNIST/raw/ left behind by a fetch that failed."""
    from mnistcnn.data import fetch_dataset

    with pytest.raises(SourceError):
        fetch_dataset("kmnist", root=tmp_path, allow_download=False, allow_pypi=False)
    assert list(tmp_path.iterdir()) == []
