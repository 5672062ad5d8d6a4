"""Serving faults new users met (issue 13.3, 13.12): a taken port, calls from another
origin (CORS), the drawing page's words for a non-image upload, 0..1 JSON pixels."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

import mnistcnn
from mnistcnn.cli import main
from mnistcnn.serve import ServeSettings, create_app
from mnistcnn.serve.app import STATIC
from mnistcnn.serve.server import AddressError, bind_socket
from test_serve_api import FakePredictor, png

SRC = str(Path(mnistcnn.__file__).resolve().parents[1])


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    from test_predict_predictor import make_checkpoint

    return make_checkpoint(tmp_path / "model.pt")


@pytest.fixture
def taken_port() -> Any:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock.getsockname()[1]
    sock.close()


# --- a port that is taken ------------------------------------------------------------------


def test_port_in_use_is_one_line_with_what_to_try(checkpoint: Path, taken_port: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "mnistcnn", "serve", str(checkpoint), "--port", str(taken_port)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert errors == [
        f"error: cannot listen on 127.0.0.1:{taken_port}: Address already in use; "
        f"port {taken_port} is taken (another server, or an earlier one still running): "
        f"try --port {taken_port + 1}, or --port 0 for any free port"
    ]
    assert "Errno" not in r.stderr and "Traceback" not in r.stderr


def test_bind_socket_errors_say_what_to_do(taken_port: int) -> None:
    with pytest.raises(AddressError, match="or port 0 for any free one") as info:
        bind_socket("127.0.0.1", taken_port)
    assert info.value.in_use and info.value.port == taken_port
    with pytest.raises(AddressError, match="not an address of this machine"):
        bind_socket("192.0.2.1", 0)  # TEST-NET-1: never this machine's
    sock = bind_socket("127.0.0.1", 0)
    assert sock.getsockname()[1] > 0
    sock.close()


# --- CORS ------------------------------------------------------------------------------------

PREFLIGHT = {
    "Origin": "https://example.org",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type",
}


def test_cors_is_off_by_default() -> None:
    with TestClient(create_app(FakePredictor(), ServeSettings(), {"name": "fake"})) as c:
        assert c.options("/v1/predict", headers=PREFLIGHT).status_code == 405
        r = c.post("/v1/predict", content=png(), headers={"Content-Type": "image/png", **ORIGIN})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


ORIGIN = {"Origin": "https://example.org"}


def test_cors_origin_allows_preflight_and_calls() -> None:
    settings = ServeSettings(cors_origins=("https://example.org",))
    with TestClient(create_app(FakePredictor(), settings, {"name": "fake"})) as c:
        r = c.options("/v1/predict", headers=PREFLIGHT)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://example.org"
        assert "POST" in r.headers["access-control-allow-methods"]
        r = c.post("/v1/predict", content=png(), headers={"Content-Type": "image/png", **ORIGIN})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://example.org"
        bad = c.post("/v1/predict", content=b"x", headers={"Content-Type": "text/plain", **ORIGIN})
        assert bad.status_code == 415  # errors carry the header too: the page can read them
        assert bad.headers["access-control-allow-origin"] == "https://example.org"
        other = {**PREFLIGHT, "Origin": "https://evil.example"}
        assert "access-control-allow-origin" not in c.options("/v1/predict", headers=other).headers


def test_cors_origins_are_checked() -> None:
    for bad in ("example.org", "https://example.org/", "https://example.org/app"):
        with pytest.raises(ValueError, match="is not an origin"):
            ServeSettings(cors_origins=(bad,))
    with pytest.raises(ValueError, match="not one string"):
        ServeSettings(cors_origins="https://example.org")  # type: ignore[arg-type]
    assert ServeSettings(cors_origins=["*"]).cors_origins == ("*",)  # type: ignore[arg-type]


def test_cli_cors_origin_is_repeatable(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mnistcnn.serve

    seen: dict[str, Any] = {}
    monkeypatch.setattr(mnistcnn.serve, "run_server", lambda s, st, **kw: seen.update(st=st))
    args = ["serve", str(checkpoint), "--cors-origin", "https://a.org", "--cors-origin", "*"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert seen["st"].cors_origins == ("https://a.org", "*")
    assert "--cors-origin" in CliRunner().invoke(main, ["serve", "--help"]).output


# --- the drawing page's words for errors -------------------------------------------------------


def test_non_image_upload_answers_415_or_422_naming_it() -> None:
    with TestClient(create_app(FakePredictor(), ServeSettings(), {"name": "fake"})) as c:
        r = c.post("/v1/predict", content=b"print(1)\n", headers={"Content-Type": "text/x-python"})
        assert r.status_code == 415 and "text/x-python" in r.json()["detail"]
        r = c.post("/v1/predict", files={"file": ("x.py", b"print(1)\n", "text/x-python")})
        assert r.status_code == 422 and "not an image" in r.json()["detail"]


def friendly_error_source() -> str:
    js = (STATIC / "app.js").read_text()
    start = js.index("// friendlyError begin")
    return js[start : js.index("// friendlyError end")]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the page's script")
def test_page_says_not_an_image_for_a_non_image_upload() -> None:
    cases = [
        (415, "unsupported Content-Type 'text/x-python': send multipart/form-data ..."),
        (422, "file 'x.py': not an image that can be decoded (accepted formats: PNG, JPEG)"),
        (422, "body: not an image that can be decoded (accepted formats: PNG): a HEIC/HEIF ..."),
        (413, "body: image is 9000x9000 px; the limit is 8192 px per side"),
        (422, "body: the image is 2x2 px: too small for a digit"),
        (500, ""),
    ]
    script = friendly_error_source() + (
        f"for (const [s, d] of {json.dumps(cases)}) console.log(friendlyError(s, d));"
    )
    out = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=30, check=True
    ).stdout.splitlines()
    assert out[0].startswith("Not an image") and out[1].startswith("Not an image")
    assert out[2].startswith("A HEIC photo") and "JPEG" in out[2]
    assert out[3].startswith("The picture is too large")
    assert out[4] == "The picture is too small to hold a digit."
    assert out[5] == "The server answered HTTP 500."
    assert "text/x-python" not in "".join(out)


def test_page_script_uses_the_words_for_every_api_error() -> None:
    js = (STATIC / "app.js").read_text()
    assert "showError(friendlyError(res.status" in js
    assert "String(data.detail) : `HTTP" not in js  # the raw API text is no longer shown


# --- JSON pixels in 0..1 ------------------------------------------------------------------------


def test_json_pixels_in_0_1_are_scaled_to_0_255() -> None:
    fake = FakePredictor()
    with TestClient(create_app(fake, ServeSettings(), {"name": "fake"})) as c:
        unit = np.zeros((28, 28))
        unit[4:24, 12:16] = 0.98
        unit[10, 10] = 0.5
        r = c.post("/v1/predict", json={"pixels": unit.tolist()})
        assert r.status_code == 200, r.text
        got = fake.seen[-1]
        assert got[5, 13] == 250 and got[10, 10] == 128 and got.max() == 250
        whole = np.zeros((28, 28), int)
        whole[4:24, 12:16] = 1  # whole numbers stay 0..255
        c.post("/v1/predict", json={"pixels": whole.tolist()})
        assert fake.seen[-1].max() == 1


def test_json_bodies_of_another_type_are_named_in_json_terms():
    """The trial: `-d null` answered "got NoneType", `-d [1,2]` "got list"."""
    from mnistcnn.serve.json_body import json_type

    assert [json_type(v) for v in (None, [1], "x", 1.5, True, {})] == [
        "null", "an array", "a string", "a number", "a boolean", "an object"
    ]  # fmt: skip
