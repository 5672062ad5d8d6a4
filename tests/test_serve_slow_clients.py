"""A real server on 127.0.0.1 against clients that send their request headers slowly
(slowloris, uvicorn issue 157): the headers must be complete within ``--timeout``,
and the number of connections waiting for their headers is bounded."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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
