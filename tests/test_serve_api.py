"""The HTTP API with FastAPI's TestClient and a stand-in predictor (fast, no model).

The stand-in returns real :class:`mnistcnn.predict.Prediction` objects whose
label is derived from the pixels it was given, and records what it received,
so the tests see exactly what reached the predictor: decoded images and
arrays, never bytes or paths. The real model is in ``test_serve_model.py``.
"""

from __future__ import annotations

import base64
import io
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

from mnistcnn.cli import main
from mnistcnn.predict import Prediction
from mnistcnn.serve import ServeSettings, create_app
from mnistcnn.serve.inputs import IMAGE_FORMATS


class FakePredictor:
    """Label = mean gray level // 26 (0..9) of the image it got; records every input."""

    def __init__(self, delay: float = 0.0, gate: threading.Event | None = None) -> None:
        self.seen: list[Any] = []
        self.calls = 0
        self.delay = delay
        self.gate = gate

    def predict(self, inputs: list[Any]) -> list[Prediction]:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.delay)
        out = []
        for x in inputs:
            self.seen.append(x)
            arr = np.asarray(x.convert("L") if isinstance(x, Image.Image) else x, np.uint8)
            if arr.shape[0] < 8:
                out.append(Prediction("<image>", None, None, [], False, "image is too small"))
                continue
            label = str(min(9, int(arr.mean()) // 26))
            seen = np.full((28, 28), int(arr.mean()), np.uint8)
            out.append(
                Prediction("<image>", label, 0.9, [(label, 0.9), ("0", 0.1)], False, None, seen)
            )
        return out


def png(value: int = 128, size: tuple[int, int] = (40, 30), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, value).save(buf, fmt)
    return buf.getvalue()


def client_for(predictor: Any, **settings: Any) -> TestClient:
    return TestClient(create_app(predictor, ServeSettings(**settings), {"name": "fake"}))


@pytest.fixture
def fake() -> FakePredictor:
    return FakePredictor()


@pytest.fixture
def client(fake: FakePredictor) -> TestClient:
    return client_for(fake, max_body_bytes=100_000, max_image_side=1000, max_images=4)


def labels(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model"] == "fake"
    return [p["label"] for p in body["predictions"]]


# --- each input form ---------------------------------------------------------------------


def test_multipart_file(client: TestClient, fake: FakePredictor) -> None:
    r = client.post("/v1/predict", files={"file": ("seven.png", png(200), "image/png")})
    assert labels(r) == ["7"]
    pred = r.json()["predictions"][0]
    assert pred == {
        "path": "seven.png",
        "label": "7",
        "probability": 0.9,
        "topk": [{"label": "7", "probability": 0.9}, {"label": "0", "probability": 0.1}],
        "unsure": False,
        "error": None,
    }
    assert isinstance(fake.seen[0], Image.Image) and fake.seen[0].size == (40, 30)


def test_multipart_batch_is_one_model_call(client: TestClient, fake: FakePredictor) -> None:
    files = [("files", (f"{v}.png", png(v), "image/png")) for v in (0, 60, 250)]
    r = client.post("/v1/predict", files=files)
    assert labels(r) == ["0", "2", "9"]
    assert [p["path"] for p in r.json()["predictions"]] == ["0.png", "60.png", "250.png"]
    assert fake.calls == 1


def test_raw_image_body(client: TestClient) -> None:
    r = client.post("/v1/predict", content=png(100), headers={"Content-Type": "image/png"})
    assert labels(r) == ["3"]
    assert r.json()["predictions"][0]["path"] is None
    jpeg = png(100, fmt="JPEG")
    r = client.post("/v1/predict", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert labels(r) == ["3"]


def test_json_pixels_reach_predictor_as_uint8_array(
    client: TestClient, fake: FakePredictor
) -> None:
    pixels = np.arange(28 * 28).reshape(28, 28) % 256
    r = client.post("/v1/predict", json={"pixels": pixels.tolist()})
    assert labels(r) == [str(int(pixels.mean()) // 26)]
    got = fake.seen[0]
    assert isinstance(got, np.ndarray) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, pixels)
    inner = pixels.clip(0, 254)
    r = client.post("/v1/predict", json={"pixels": (inner + 0.4).tolist()})  # floats round
    np.testing.assert_array_equal(fake.seen[1], inner)
    # 0.5 among zeros: no value above 1 and a fraction, so 0..1 pixels (docs/serve.md): 128
    edges = (("-0", 0), ("-0.0", 0), ("255.0", 255), ("2.55e2", 255), ("2.5", 2), ("0.5", 128))
    for edge, want in edges:
        r = client.post("/v1/predict", content=pixels_json(edge), headers=JSON)
        assert r.status_code == 200, (edge, r.text)
        assert fake.seen[-1][27, 27] == want, edge


def test_json_base64_and_data_url(client: TestClient) -> None:
    b64 = base64.b64encode(png(230)).decode()
    assert labels(client.post("/v1/predict", json={"image_base64": b64})) == ["8"]
    url = "data:image/png;base64," + b64
    assert labels(client.post("/v1/predict", json={"image_base64": url})) == ["8"]


def test_json_batch_mixes_forms(client: TestClient, fake: FakePredictor) -> None:
    images = [{"pixels": [[255] * 28] * 28}, {"image_base64": base64.b64encode(png(0)).decode()}]
    assert labels(client.post("/v1/predict", json={"images": images})) == ["9", "0"]
    assert fake.calls == 1


def test_return_input(client: TestClient) -> None:
    r = client.post("/v1/predict?return_input=true", json={"pixels": [[52] * 28] * 28})
    seen = r.json()["predictions"][0]["input"]
    assert np.array_equal(np.array(seen), np.full((28, 28), 52))
    r = client.post("/v1/predict", json={"pixels": [[52] * 28] * 28})
    assert "input" not in r.json()["predictions"][0]


def test_model_health_page_and_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/v1/model").json() == {"name": "fake"}
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("static/app.js", "static/style.css"):
        assert asset in page.text
        r = client.get("/" + asset)
        assert r.status_code == 200
        assert "://" not in r.text, f"{asset} loads something from another host"
    assert "://" not in page.text.replace("http://www.w3.org", "")
    assert '<canvas id="pad"' in page.text and 'name="viewport"' in page.text
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/png", "application/json"} <= set(body)
    assert client.get("/docs").status_code == 200
    assert client.get("/static/..%2Fapp.py").status_code == 404


# --- each error --------------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}


def pixels_text(value: str) -> str:
    """28 rows of 28 zeros as JSON text, with ``value`` (JSON text) as the last number."""
    rows = ["[" + ",".join(["0"] * 28) + "]"] * 27
    rows.append("[" + ",".join(["0"] * 27 + [value]) + "]")
    return "[" + ",".join(rows) + "]"


def pixels_json(value: str) -> bytes:
    """A ``{"pixels": ...}`` body from :func:`pixels_text`."""
    return ('{"pixels": ' + pixels_text(value) + "}").encode()


ERRORS = [
    # (request kwargs, status, words the message must contain)
    ({"content": b"", "headers": {"Content-Type": "image/png"}}, 400, "empty body"),
    ({"content": b"hello", "headers": {"Content-Type": "image/png"}}, 422, "not an image"),
    ({"content": png()[:60], "headers": {"Content-Type": "image/png"}}, 422, "truncated"),
    (
        {"content": b"%!PS-Adobe-3.0 EPSF-3.0\n", "headers": {"Content-Type": "image/png"}},
        422,
        "not an image",
    ),
    ({"content": b"hello", "headers": {"Content-Type": "text/plain"}}, 415, "text/plain"),
    ({"content": b"hello"}, 415, "unsupported Content-Type"),
    ({"content": b"{nope", "headers": {"Content-Type": "application/json"}}, 400, "not valid JSON"),
    ({"json": [1, 2]}, 422, "must be an object"),
    ({"content": b"[" * 100_000, "headers": {"Content-Type": "application/json"}}, 400, "JSON"),
    ({"json": {"pixels": [[0] * 28] * 27}}, 422, "28x28"),
    ({"json": {"pixels": [[0] * 28] * 27 + [[0] * 5]}}, 422, "ragged"),
    ({"json": {"pixels": [["a"] * 28] * 28}}, 422, "not numeric"),
    ({"json": {"pixels": [[300] * 28] * 28}}, 422, "0..255"),
    ({"json": {"pixels": [[-1] * 28] * 28}}, 422, "0..255"),
    ({"json": {"pixels": 7}}, 422, "28x28"),
    ({"json": {"image": "x"}}, 422, "unknown field"),
    ({"json": {}}, 422, "exactly one"),
    ({"json": {"pixels": [[0] * 28] * 28, "image_base64": "AAAA"}}, 422, "exactly one"),
    ({"json": {"image_base64": "/etc/passwd"}}, 400, "not valid base64"),
    ({"json": {"image_base64": 12}}, 422, "base64 string"),
    ({"json": {"images": []}}, 422, "non-empty list"),
    ({"json": {"images": [{"pixels": [[0] * 28] * 28}] * 5}}, 413, "too many images"),
    ({"files": {"other": (None, "x")}}, 422, "multipart part 'other' is not accepted"),
    ({"files": {"image": ("x.png", png(), "image/png")}}, 422, "part named 'file'"),
    (
        {"files": [("file", ("x.png", png(), "image/png")), ("note", (None, "hi"))]},
        422,
        "part 'note' is not accepted",
    ),
    ({"content": b""}, 400, "empty body"),
    ({"content": b"", "headers": {"Content-Type": "application/json"}}, 400, "empty body"),
    ({"content": b"", "headers": {"Content-Type": "text/plain"}}, 400, "empty body"),
    ({"json": {"pixels": [[True] * 28] * 28}}, 422, "true/false are not gray levels"),
    ({"json": {"pixels": [[0] * 27 + [False]] * 28}}, 422, "true/false"),
    ({"json": {"pixels": [["12"] * 28] * 28}}, 422, "not numeric"),
    ({"json": {"pixels": [[None] * 28] * 28}}, 422, "not numeric"),
    ({"files": {"file": ("e.png", b"", "image/png")}}, 400, "empty"),
    (
        {"content": b"--x\r\nbroken", "headers": {"Content-Type": "multipart/form-data"}},
        400,
        "boundary",
    ),
    (
        {"content": png(size=(1001, 10)), "headers": {"Content-Type": "image/png"}},
        413,
        "1001x10 px",
    ),
    ({"content": png(size=(5, 5)), "headers": {"Content-Type": "image/png"}}, 422, "too small"),
    ({"content": pixels_json("1" + "0" * 400), "headers": JSON}, 422, "0..255"),
    ({"content": pixels_json("-1" + "0" * 400), "headers": JSON}, 422, "0..255"),
    ({"content": pixels_json("9" * 5000), "headers": JSON}, 422, "0..255"),
    ({"content": pixels_json("1e400"), "headers": JSON}, 422, "finite"),
    ({"content": pixels_json("NaN"), "headers": JSON}, 422, "finite"),
    ({"content": pixels_json("-Infinity"), "headers": JSON}, 422, "finite"),
    ({"content": pixels_json("255.6"), "headers": JSON}, 422, "0..255"),
    ({"content": pixels_json("-0.5"), "headers": JSON}, 422, "0..255"),
    (
        {
            "content": f'{{"images": [{{"pixels": {pixels_text("1" + "0" * 400)}}}]}}',
            "headers": JSON,
        },
        422,
        "images[0].pixels",
    ),
]


@pytest.mark.parametrize(("kwargs", "status", "words"), ERRORS, ids=[e[2] for e in ERRORS])
def test_errors_are_4xx_with_a_message(
    client: TestClient, fake: FakePredictor, kwargs: dict[str, Any], status: int, words: str
) -> None:
    r = client.post("/v1/predict", **kwargs)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert all(isinstance(x, (Image.Image, np.ndarray)) for x in fake.seen)


def test_pixel_limit_is_per_request_and_checked_before_decoding(
    fake: FakePredictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 small bodies of big images each under the limit: refused together, nothing decoded."""
    client = client_for(fake, max_image_side=1000, max_image_pixels=100 * 100, max_images=20)
    loads: list[Any] = []
    real_load = Image.Image.load

    def counting_load(self: Image.Image) -> Any:
        loads.append(self.size)
        return real_load(self)

    monkeypatch.setattr(Image.Image, "load", counting_load)
    big = png(0, (90, 90))  # 8,100 px: alone it fits, two do not
    files = [("files", (f"{i}.png", big, "image/png")) for i in range(16)]
    loads.clear()
    r = client.post("/v1/predict", files=files)
    assert r.status_code == 413, r.text
    detail = r.json()["detail"]
    assert "129,600 px in all" in detail and "10,000 px per request" in detail
    assert "90x90" in detail
    assert fake.calls == 0 and not [s for s in loads if s == (90, 90)]
    # the pixels form counts its 28x28; within the budget the request is answered
    pixels = {"pixels": [[0] * 28] * 28}
    body = {"images": [{"image_base64": base64.b64encode(big).decode()}, pixels]}
    assert client.post("/v1/predict", json=body).status_code == 200  # 8,100 + 784
    body["images"].append({"image_base64": base64.b64encode(png(0, (40, 40))).decode()})
    r = client.post("/v1/predict", json=body)  # + 1,600 = 10,484
    assert r.status_code == 413 and "10,484 px in all" in r.json()["detail"]
    # one image alone over the budget names itself
    r = client.post(
        "/v1/predict", content=png(0, (101, 100)), headers={"Content-Type": "image/png"}
    )
    assert r.status_code == 413 and "body: image is 101x100 px" in r.json()["detail"]


def test_bad_query_parameter_is_one_clear_message(client: TestClient) -> None:
    body = {"pixels": [[0] * 28] * 28}
    r = client.post("/v1/predict?return_input=foo", json=body)
    assert r.status_code == 422
    assert r.json() == {
        "detail": "query parameter 'return_input' must be true or false "
        "(or 1/0, yes/no, on/off), got 'foo'"
    }
    for ok in ("1", "yes", "false"):
        assert client.post(f"/v1/predict?return_input={ok}", json=body).status_code == 200


def test_oversized_body_declared_and_streamed(client: TestClient, fake: FakePredictor) -> None:
    big = b"\0" * 100_001
    r = client.post("/v1/predict", content=big, headers={"Content-Type": "image/png"})
    assert r.status_code == 413 and "100,001 bytes" in r.json()["detail"]

    def chunks() -> Any:  # no Content-Length: the limit is enforced while reading
        for _ in range(30):
            yield b"\0" * 10_000

    r = client.post("/v1/predict", content=chunks(), headers={"Content-Type": "image/png"})
    assert r.status_code == 413 and "100,000 bytes" in r.json()["detail"]
    assert fake.calls == 0


def test_only_safe_decoders() -> None:
    assert "EPS" not in IMAGE_FORMATS and "PDF" not in IMAGE_FORMATS


# --- concurrency, timeout, overload, log ---------------------------------------------


def test_inference_does_not_block_the_event_loop() -> None:
    gate = threading.Event()
    fake = FakePredictor(gate=gate)
    with client_for(fake) as c, ThreadPoolExecutor(4) as pool:
        futures = [
            pool.submit(c.post, "/v1/predict", json={"pixels": [[v] * 28] * 28})
            for v in (0, 30, 60, 90)
        ]
        time.sleep(0.3)  # all four are now waiting on the model
        t0 = time.perf_counter()
        assert c.get("/healthz").status_code == 200
        assert time.perf_counter() - t0 < 1.0
        assert not any(f.done() for f in futures)
        gate.set()
        assert [labels(f.result(10)) for f in futures] == [["0"], ["1"], ["2"], ["3"]]
    assert fake.calls < 4  # the waiting requests were batched


def test_timeout_answers_503() -> None:
    with client_for(FakePredictor(delay=1.0), timeout_s=0.2) as c:
        r = c.post("/v1/predict", json={"pixels": [[0] * 28] * 28})
    assert r.status_code == 503 and "within 0.2 s" in r.json()["detail"]


def test_overload_answers_503() -> None:
    gate = threading.Event()
    with client_for(FakePredictor(gate=gate), max_pending=1) as c, ThreadPoolExecutor(3) as pool:
        body = {"pixels": [[0] * 28] * 28}
        first = pool.submit(c.post, "/v1/predict", json=body)  # taken by the worker, blocked
        time.sleep(0.3)
        second = pool.submit(c.post, "/v1/predict", json=body)  # waits in the queue
        time.sleep(0.3)
        third = c.post("/v1/predict", json=body)  # one too many
        gate.set()
        assert third.status_code == 503 and "overloaded" in third.json()["detail"]
        assert first.result(10).status_code == 200 and second.result(10).status_code == 200


def test_one_log_line_per_request(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mnistcnn.serve.access"):
        client.post("/v1/predict", json={"pixels": [[0] * 28] * 28})
        client.post("/v1/predict", content=b"x", headers={"Content-Type": "text/plain"})
        client.get("/healthz")
    lines = [r.getMessage() for r in caplog.records if r.name == "mnistcnn.serve.access"]
    assert len(lines) == 3
    assert lines[0].startswith("POST /v1/predict 200 ") and lines[0].endswith(" ms")
    assert lines[1].startswith("POST /v1/predict 415 ")
    assert lines[2].startswith("GET /healthz 200 ")


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        ServeSettings(timeout_s=0)
    with pytest.raises(ValueError, match="max_body_bytes"):
        ServeSettings(max_body_bytes=0)


# --- the real Predictor behind the app factory, and the CLI -------------------------------


@pytest.fixture
def untrained_checkpoint(tmp_path: Path) -> Path:
    """A tutorial model with random weights (the serving path does not care)."""
    import torch

    from ckpt_files import write_checkpoint
    from mnistcnn.models import create_model

    torch.manual_seed(0)
    return write_checkpoint(tmp_path / "untrained.pt", create_model("tutorial"))


def test_worker_factory_builds_the_real_app(
    untrained_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from mnistcnn.serve.server import ENV_CONFIG, app_from_env

    cfg = {"source": {"checkpoint": str(untrained_checkpoint)}, "settings": {"max_images": 2}}
    monkeypatch.setenv(ENV_CONFIG, json.dumps(cfg))
    with TestClient(app_from_env()) as c:
        info = c.get("/v1/model").json()
        assert info["name"] == "tutorial" and info["parameters"] > 0
        assert info["checkpoint"] == "untrained.pt" and info["calibrated"] is False
        digit = np.zeros((28, 28), np.uint8)
        digit[6:22, 13:16] = 255  # a "1"
        r = c.post("/v1/predict?return_input=true", json={"pixels": digit.tolist()})
        pred = r.json()["predictions"][0]
        assert r.status_code == 200 and len(pred["topk"]) == 3
        assert np.array(pred["input"]).shape == (28, 28)
        blank = c.post("/v1/predict", json={"pixels": [[0] * 28] * 28}).json()["predictions"][0]
        assert blank["unsure"] is True and blank["label"] is None and blank["topk"] == []
        r = c.post("/v1/predict", json={"images": [{"pixels": digit.tolist()}] * 3})
        assert r.status_code == 413


def test_cli_serve_help_and_bad_checkpoint(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--workers", "--max-body-mb", "--timeout"):
        assert option in result.output
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(main, ["serve", str(bad), "--port", "0"])
    assert result.exit_code == 1
    assert f"error: {bad}" in result.output
    assert "Traceback" not in result.output


def test_cli_serve_port_0_prints_the_real_port(untrained_checkpoint: Path, tmp_path: Path) -> None:
    import os
    import re
    import subprocess
    import sys
    import urllib.request

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "mnistcnn", "serve", str(untrained_checkpoint), "--port", "0"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "the server exited"
            match = re.search(r"serving the drawing page at (http://127\.0\.0\.1:(\d+)/)", line)
            if match:
                url, port = match.group(1), int(match.group(2))
        assert url is not None and port != 0
        with urllib.request.urlopen(url + "healthz", timeout=10) as answer:
            assert answer.read() == b'{"status":"ok"}'
    finally:
        proc.terminate()
        proc.wait(20)
