"""Slow clients against real servers: they cost flaskserve a buffer, never a worker.

The control shows the threat: stock gunicorn sync workers, two of them, stalled by two
clients sending their headers a byte a second. flaskserve's own worker
(``flaskserve.serving.worker.BufferingSyncWorker``, the default of ``flaskserve serve``) hands a
request to the app only once all of it has arrived.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from conftest import FLASKSERVE, TUTORIAL_ROW

from liveserver import LiveServer, on_both_servers

pytestmark = pytest.mark.integration
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
BODY = json.dumps(TUTORIAL_ROW).encode()
REQUEST = (
    b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n".encode()
    + BODY
)
TIMEOUT = (2.0, 3.0)  # connect, read: a stalled worker shows as a timeout


def _port(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


@contextmanager
def trickling(server: LiveServer, clients: int, *, prefix: bytes = b"") -> Iterator[None]:
    """*clients* connections that send *prefix* at once, then a byte a second, until done."""
    stop = threading.Event()

    def trickle() -> None:
        with socket.create_connection(("127.0.0.1", _port(server)), timeout=10) as sock:
            if prefix:
                sock.sendall(prefix)
            for byte in REQUEST[len(prefix) : -1]:  # never the last byte: never whole
                if stop.wait(1.0):
                    return
                sock.sendall(bytes([byte]))

    threads = [threading.Thread(target=trickle) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)  # every slow client is connected and has begun
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)


def normal_traffic(server: LiveServer, count: int) -> list[str]:
    """*count* ordinary requests, one after another: ``ok`` or what went wrong."""
    outcomes = []
    for _ in range(count):
        try:
            response = requests.post(f"{server.url}/predict", json=TUTORIAL_ROW, timeout=TIMEOUT)
            right = response.status_code == 200 and response.json() == {"result": [2]}
            outcomes.append("ok" if right else f"status {response.status_code}")
        except requests.RequestException as e:
            outcomes.append(type(e).__name__)
    return outcomes


@pytest.fixture()
def flaskserve(model_dir: Path, start: Callable[..., LiveServer]) -> LiveServer:
    return start([FLASKSERVE, "serve", str(model_dir), "--port", "{port}", "--workers", "2"])


def test_stock_sync_workers_are_stalled_by_two_slow_clients(
    model_dir: Path, start: Callable[..., LiveServer]
) -> None:
    stock = start(
        [
            GUNICORN,
            "-w",
            "2",
            "-k",
            "sync",
            "-b",
            "127.0.0.1:{port}",
            "flaskserve.app:create_app()",
        ],
        env={"FLASKSERVE_MODEL_DIR": str(model_dir)},
    )
    with trickling(stock, 2):
        outcomes = normal_traffic(stock, 2)
    assert "ok" not in outcomes, outcomes  # the threat is real: every request timed out


@on_both_servers()
def test_slow_headers_cost_no_worker(flaskserve: LiveServer) -> None:
    with trickling(flaskserve, 8):
        outcomes = normal_traffic(flaskserve, 100)
    assert outcomes == ["ok"] * 100


@on_both_servers()
def test_a_slow_body_costs_no_worker(flaskserve: LiveServer) -> None:
    headers_only = REQUEST[: REQUEST.index(b"\r\n\r\n") + 4]
    with trickling(flaskserve, 8, prefix=headers_only):
        outcomes = normal_traffic(flaskserve, 100)
    assert outcomes == ["ok"] * 100


@on_both_servers(in_ci=False)
def test_a_request_sent_in_pieces_is_answered_whole(flaskserve: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", _port(flaskserve)), timeout=10) as sock:
        for start in range(0, len(REQUEST), 7):
            sock.sendall(REQUEST[start : start + 7])
            time.sleep(0.005)
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b'{"result":[2]}\n')


@on_both_servers(in_ci=False)
def test_chunked_and_large_bodies_still_work(flaskserve: LiveServer) -> None:
    chunked = requests.post(
        f"{flaskserve.url}/predict",
        data=iter([BODY[:10], BODY[10:]]),  # a generator: requests sends it chunked
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
    assert chunked.json() == {"result": [2]}
    padded = BODY + b" " * (2 * 1024 * 1024)  # past the buffer: streamed to the app as it comes
    large = requests.post(
        f"{flaskserve.url}/predict",
        data=padded,
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
    assert large.json() == {"result": [2]}


@on_both_servers(
    "hyper closes a connection whose headers are late without an answer, and waits for a"
    " body as long as the client sends nothing: no 408"
)
def test_a_request_that_never_completes_gets_408(
    model_dir: Path, start: Callable[..., LiveServer]
) -> None:
    server = start(
        [FLASKSERVE, "serve", str(model_dir), "--port", "{port}", "--workers", "1"],
        env={"FLASKSERVE_REQUEST_TIMEOUT": "1"},
    )
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=10) as sock:
        sock.sendall(REQUEST[:40])
        began = time.monotonic()
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"application/json" in head
    assert json.loads(body) == {"error": "the request did not arrive whole within 1 s"}
    assert 0.5 < time.monotonic() - began < 5
    assert normal_traffic(server, 3) == ["ok"] * 3


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
