"""ImageNet weight files without the internet (mnistcnn.models.weights): the lookup order, the
hash check, and the errors of a wrong hash, a missing file and another architecture.

Every weight file is generated (tests/tvnets_weights.py); the hub cache is a temporary
TORCH_HOME; downloads go to a 127.0.0.1 server or to a closed port.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import logging
import threading
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from mnistcnn._io import file_digest
from mnistcnn.cli import main
from mnistcnn.models import weights as mweights
from mnistcnn.models.weights_cache import import_weights, list_weights
from tvnets_weights import accept_generated, generated, into_cache


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Generated googlenet and resnet50 files (seed 0) and their SHA-256."""
    folder = tmp_path_factory.mktemp("standins")
    return {m: generated(folder, m) for m in ("googlenet", "resnet50")}


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture
def accepted(monkeypatch, standins) -> None:
    accept_generated(monkeypatch, {m: digest for m, (_, digest) in standins.items()})


def test_file_names_urls_and_hash_prefixes_are_torchvisions():
    info = mweights.weights_file("resnet50")
    assert info.file_name == "resnet50-11ad3fa6.pth"
    assert info.url == "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"
    assert info.hash_prefix == "11ad3fa6" and info.weights == "ResNet50_Weights.IMAGENET1K_V2"
    assert len(info.categories) == 1000 and info.categories[0] == "tench"
    assert mweights.weights_file("googlenet").file_name == "googlenet-1378be20.pth"
    assert mweights.weights_file("vgg19").hash_prefix == "dcbb9e9d"


def test_the_hub_cache_is_found_and_its_tensors_loaded(torch_home, standins, accepted):
    path, _ = standins["googlenet"]
    cached = into_cache(torch_home, path)
    assert mweights.locate_weights("googlenet", download=False) == cached
    state = mweights.load_imagenet_state_dict("googlenet", download=False)
    assert torch.equal(state["conv1.conv.weight"], torch.load(path)["conv1.conv.weight"])
    assert state["fc.weight"].shape == (1000, 1024)


def test_a_wrong_hash_is_refused_with_its_own_error(torch_home, standins):
    cached = into_cache(torch_home, standins["googlenet"][0])  # the real prefix is expected
    with pytest.raises(mweights.WeightsHashError) as err:
        mweights.locate_weights("googlenet", download=False)
    text = str(err.value)
    assert str(cached) in text and "does not start with 1378be20" in text
    assert "https://download.pytorch.org/models/googlenet-1378be20.pth" in text
    assert err.value.path == cached


def test_a_missing_file_names_url_name_hash_and_folder(torch_home):
    with pytest.raises(mweights.WeightsMissingError) as err:
        mweights.locate_weights("resnet50", download=False)
    text = str(err.value)
    folder = torch_home / "hub" / "checkpoints"
    for part in ("https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
                 "as resnet50-11ad3fa6.pth", "starts with 11ad3fa6", str(folder)):  # fmt: skip
        assert part in text, part


def test_a_file_of_another_architecture_is_refused(torch_home, standins, monkeypatch):
    path, digest = standins["resnet50"]
    into_cache(torch_home, path, name="googlenet-1378be20.pth")  # resnet50 under googlenet's name
    accept_generated(monkeypatch, {"googlenet": digest})  # its hash passes: the tensors do not
    with pytest.raises(
        mweights.WeightsArchitectureError, match="does not hold torchvision's googlenet tensors"
    ):
        mweights.load_imagenet_state_dict("googlenet", download=False)


def test_an_explicit_file_may_differ_in_hash_but_not_in_architecture(tmp_path, standins, caplog):
    path, _ = standins["googlenet"]
    caplog.set_level(logging.WARNING, logger=mweights.__name__)  # whatever another test left set
    assert mweights.locate_weights("googlenet", path, download=False) == path  # warned only
    assert "not torchvision's googlenet-1378be20.pth" in caplog.text
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(mweights.WeightsArchitectureError, match="not a PyTorch weights file"):
        mweights.load_imagenet_state_dict("googlenet", junk, download=False)
    with pytest.raises(mweights.WeightsMissingError, match="no such file"):
        mweights.locate_weights("googlenet", tmp_path / "absent.pth")


class _Files(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _serve_at(monkeypatch, url: str) -> None:
    real = mweights.weights_file
    monkeypatch.setattr(mweights, "weights_file", lambda m: dataclasses.replace(real(m), url=url))


def test_download_is_verified_then_placed(torch_home, standins, accepted, server, monkeypatch):
    path, digest = standins["googlenet"]
    _Files.body = path.read_bytes()
    _serve_at(monkeypatch, f"http://127.0.0.1:{server.server_port}/googlenet-1378be20.pth")
    placed = mweights.locate_weights("googlenet", timeout=5)
    assert placed == torch_home / "hub" / "checkpoints" / "googlenet-1378be20.pth"
    assert file_digest(placed) == digest


def test_a_wrong_download_is_refused_and_not_kept(torch_home, accepted, server, monkeypatch):
    _Files.body = b"x" * 1000
    _serve_at(monkeypatch, f"http://127.0.0.1:{server.server_port}/googlenet-1378be20.pth")
    with pytest.raises(mweights.WeightsHashError):
        mweights.locate_weights("googlenet", timeout=5)
    folder = torch_home / "hub" / "checkpoints"
    assert not folder.exists() or not list(folder.iterdir())  # no file, no .part left


def test_an_unreachable_server_ends_in_the_missing_file_error(torch_home, monkeypatch):
    _serve_at(monkeypatch, "http://127.0.0.1:9/resnet50-11ad3fa6.pth")  # discard port: refused
    with pytest.raises(mweights.WeightsMissingError, match="the download failed"):
        mweights.locate_weights("resnet50", timeout=2)


def test_import_verifies_and_places_under_torchvisions_name(tmp_path, torch_home, standins,
                                                            accepted):  # fmt: skip
    src = tmp_path / "downloaded.pth"
    src.write_bytes(standins["resnet50"][0].read_bytes())
    status = import_weights(src)  # recognised by its hash
    assert status.path == torch_home / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
    assert status.status == "ok" and status.size_bytes == src.stat().st_size
    rows = {s.info.model: s.status for s in list_weights()}
    assert rows == {"vgg19": "missing", "resnet50": "ok", "googlenet": "missing"}
    wrong = tmp_path / "wrong.pth"
    wrong.write_bytes(b"0" * 100)
    with pytest.raises(mweights.WeightsHashError, match="matches none of torchvision's files"):
        import_weights(wrong)


def test_weights_cli_list_and_import(tmp_path, torch_home, standins, accepted):
    runner = CliRunner()
    result = runner.invoke(main, ["weights", "import", str(standins["googlenet"][0])])
    assert result.exit_code == 0, result.output
    assert "googlenet-1378be20.pth" in result.output
    result = runner.invoke(main, ["weights", "list", "--json"])
    rows = {r["model"]: r for r in json.loads(result.output)}
    assert rows["googlenet"]["status"] == "ok"
    assert rows["googlenet"]["size_bytes"] == standins["googlenet"][0].stat().st_size
    assert rows["vgg19"]["status"] == "missing" and rows["vgg19"]["expected_size_mb"] == 548.051
    table = runner.invoke(main, ["weights", "list"]).output
    assert "missing" in table and "ok" in table
    bad = runner.invoke(main, ["weights", "import", str(tmp_path / "absent.pth")])
    assert bad.exit_code != 0 and "absent.pth" in bad.output
