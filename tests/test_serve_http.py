"""A real server on 127.0.0.1 against faults at the level of HTTP: clients that send
their request headers slowly (slowloris, uvicorn issue 157: the headers must be
complete within ``--timeout``, and the connections waiting for theirs are bounded),
and multipart bodies that end before their closing boundary."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import mnistcnn

SRC = str(Path(mnistcnn.__file__).resolve().parents[1])
TIMEOUT = 2.0  # the server's --timeout, seconds


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_predict_predictor import make_checkpoint

    return make_checkpoint(tmp_path_factory.mktemp("serve") / "model.pt")


def _start(cmd: list[str]) -> tuple[subprocess.Popen[str], int]:
    """Start a server; wait for its 'serving ... at http://127.0.0.1:PORT/' line."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "http://127.0.0.1:" in line:
            port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
            break
    else:
        pytest.fail(f"the server did not start (exit status {proc.wait()})")
    for _ in range(100):  # the socket listens at once; wait until the app answers
        try:
            if b"200 OK" in _get_healthz(port):
                return proc, port
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail("the server never answered /healthz")


def _get_healthz(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return s.recv(4096)


@pytest.fixture(scope="module")
def cli_server(checkpoint: Path) -> Iterator[int]:
    cmd = [sys.executable, "-m", "mnistcnn", "serve", str(checkpoint), "--port", "0"]
    proc, port = _start([*cmd, "--timeout", str(TIMEOUT), "--no-access-log"])
    yield port
    proc.terminate()
    proc.wait(timeout=30)


def test_headers_sent_one_byte_at_a_time_are_timed_out(cli_server: int) -> None:
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", cli_server), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        for byte in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":
            try:
                s.sendall(bytes([byte]))
            except OSError:  # closed by the server
                break
            time.sleep(0.25)
            s.setblocking(False)
            try:
                chunk = s.recv(4096)
            except BlockingIOError:
                chunk = None
            finally:
                s.setblocking(True)
            if chunk is not None:
                answer += chunk
                if not chunk:
                    break
        elapsed = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"request headers not complete within 2 s" in answer
    assert TIMEOUT <= elapsed < TIMEOUT + 3  # 12 s of dripping were on offer


def test_an_idle_connection_is_closed_and_fast_clients_are_served(cli_server: int) -> None:
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", cli_server), timeout=10) as idle:
        assert b"200 OK" in _get_healthz(cli_server)  # others are served meanwhile
        assert idle.recv(4096) == b""  # closed without a word: it sent nothing
    assert TIMEOUT <= time.monotonic() - start < TIMEOUT + 3


def test_connections_waiting_for_headers_are_bounded(checkpoint: Path) -> None:
    script = (
        "import sys; from mnistcnn.serve import ModelSource, ServeSettings, run_server; "
        "run_server(ModelSource(sys.argv[1]), ServeSettings(timeout_s=5, max_header_waits=3), "
        "port=0, on_listening=lambda u: print('serving at', u, file=sys.stderr, flush=True))"
    )
    proc, port = _start([sys.executable, "-c", script, str(checkpoint)])
    try:
        waiting = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        for s in waiting:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(0.3)
        answer = _get_healthz(port)  # the fourth waiting connection
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b"too many connections (3) are waiting to send a request" in answer
        waiting[0].sendall(b"Host: x\r\nConnection: close\r\n\r\n")  # a place frees
        assert b"200 OK" in waiting[0].recv(4096)
        time.sleep(0.3)
        assert b"200 OK" in _get_healthz(port)
        for s in waiting:
            s.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _post(port: int, content_type: str, body: bytes) -> tuple[int, Any]:
    """POST /v1/predict with exactly ``body``; (status, the JSON answer)."""
    head = (
        f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode() + body)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, json.loads(answer.split(b"\r\n\r\n", 1)[1])


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("L", (28, 28), 0).save(out, "PNG")
    return out.getvalue()


PART = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
PART += b"Content-Type: image/png\r\n\r\n"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (PART + _png() + b"\r\n", ""),  # the whole part, no closing --B--
        (PART + _png()[:40], ""),  # cut inside the part
        (PART + _png() + b"\r\n--B\r\nContent-Disposition: form-da", " (after 1 complete part(s))"),
    ],
    ids=["no closing boundary", "cut mid-part", "cut in the second part's headers"],
)
def test_multipart_cut_before_its_closing_boundary_is_400(
    cli_server: int, body: bytes, where: str
) -> None:
    status, answer = _post(cli_server, "multipart/form-data; boundary=B", body)
    assert (status, answer["detail"]) == (
        400,
        f"multipart body ends before its closing boundary '--B--'{where}: "
        "the upload was cut off, or the client did not finish the body",
    )
    whole = PART + _png() + b"\r\n--B--\r\n"
    status, answer = _post(cli_server, "multipart/form-data; boundary=B", whole)
    assert status == 200, answer  # the same part, closed, is read
    assert answer["predictions"][0]["path"] == "a.png"


def test_a_huge_image_is_413_with_its_size_and_the_limits(cli_server: int) -> None:
    """20000x20000 is past Pillow's own bomb error: the same words as any image over the limits."""
    from test_predict_inputs import png_header

    status, answer = _post(cli_server, "image/png", png_header(20000, 20000))
    assert (status, answer["detail"]) == (
        413,
        "body: image is 20000x20000 px; the limit is 8192 px per side and 40,000,000 px "
        "per request",
    )
