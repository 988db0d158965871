"""The buffering worker's rarer paths, each on a real gunicorn server.

A small WSGI app and hooks (``worker_apps.py``) make them happen: too many
connections waiting, an app that fails after its answer began, failing
``pre_request`` and ``post_request`` hooks. After each, the server still answers.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from liveserver import LiveServer, free_port

pytestmark = pytest.mark.integration
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
HERE = Path(__file__).parent


def _serve(
    start: Callable[..., LiveServer], worker: str = "BufferingSyncWorker", *options: str
) -> LiveServer:
    worker_class = f"flaskserve.serving.worker.{worker}" if "." not in worker else worker
    command = [GUNICORN, "-w", "1", "-k", worker_class, "-c", "python:worker_apps", *options]
    return start(
        [*command, "-b", "127.0.0.1:{port}", "worker_apps:app"], env={"PYTHONPATH": str(HERE)}
    )


def _connect(server: LiveServer) -> socket.socket:
    port = int(server.url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _log(server: LiveServer) -> str:
    time.sleep(0.3)  # the worker's lines reach the file
    return server.log.read_text()


def assert_healthy(server: LiveServer) -> None:
    answer = requests.get(f"{server.url}/ready", timeout=5)
    assert (answer.status_code, answer.json()) == (200, {"ok": True})


def test_past_max_waiting_the_oldest_connection_is_closed(
    start: Callable[..., LiveServer],
) -> None:
    server = _serve(start, "worker_apps.FewWaitingWorker")
    time.sleep(0.5)  # the readiness poll's connection is gone
    waiting = []
    for _ in range(3):  # each sends half a head: it waits for the rest, without blocking
        sock = _connect(server)
        sock.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n")
        waiting.append(sock)
        time.sleep(0.3)
    oldest, *kept = waiting
    assert oldest.recv(1024) == b""  # evicted: closed without an answer
    for sock in kept:  # the two newest still wait, and are answered once whole
        sock.sendall(b"Connection: close\r\n\r\n")
        answer = _read_all(sock)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b'{"ok":true}\n')
    for sock in waiting:
        sock.close()
    assert_healthy(server)


def test_an_error_after_the_answer_began_drops_the_connection(
    start: Callable[..., LiveServer],
) -> None:
    server = _serve(start)
    with _connect(server) as sock:
        sock.sendall(b"GET /begun-then-fails HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _read_all(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Transfer-Encoding: chunked" in head
    # the part sent, then the connection closed: no last chunk, no error page appended
    assert body == b"F\r\nthe first part\n\r\n"
    log = _log(server)
    assert log.count("[ERROR] Error handling request") == 1  # the app's fault: a traceback
    assert "RuntimeError: the app failed after its answer began" in log
    assert_healthy(server)


def test_a_failing_post_request_hook_is_logged_and_the_connection_kept(
    start: Callable[..., LiveServer],
) -> None:
    server = _serve(start)
    with _connect(server) as sock:
        for _ in range(2):  # the same connection serves the next request
            sock.sendall(b"GET /post-request-fails HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b'{"ok":true}\n'):  # the whole answer, then no close
                answer += sock.recv(65536) or pytest.fail(f"closed after {answer!r}")
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"Connection: keep-alive" in answer
    log = _log(server)
    assert log.count("[ERROR] Exception in post_request hook") == 2
    assert "RuntimeError: the post_request hook failed" in log
    assert_healthy(server)


def test_a_failing_pre_request_hook_is_a_json_500(start: Callable[..., LiveServer]) -> None:
    server = _serve(start)
    with _connect(server) as sock:
        sock.sendall(b"GET /pre-request-fails HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _read_all(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"Content-Type: application/json" in head
    assert json.loads(body) == {
        "error": "The server encountered an internal error and was unable to complete your"
        " request. Either the server is overloaded or there is an error in the application."
    }
    log = _log(server)
    assert "[ERROR] Error handling request GET /pre-request-fails" in log
    assert "RuntimeError: the pre_request hook failed" in log  # the server's fault: traceback
    assert_healthy(server)


def test_clients_gone_before_their_answer_are_debug_lines(
    start: Callable[..., LiveServer],
) -> None:
    server = _serve(start, "BufferingSyncWorker", "--log-level", "debug")
    for _ in range(20):  # send and close: the answer's writes meet a closed connection
        with _connect(server) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_healthy(server)
    log = _log(server)
    assert "[DEBUG] Client went away before its answer was written" in log
    assert "Traceback" not in log
    assert "[ERROR]" not in log


def test_with_tls_the_worker_answers_as_gunicorns_sync_worker(tmp_path: Path) -> None:
    """TLS bytes cannot be framed before they are decrypted: gunicorn's own loop serves."""
    key, cert = HERE / "tls" / "key.pem", HERE / "tls" / "cert.pem"  # self-signed, for tests
    port = free_port()
    command = [GUNICORN, "-w", "1", "-k", "flaskserve.serving.worker.BufferingSyncWorker"]
    command += ["--certfile", str(cert), "--keyfile", str(key), "-b", f"127.0.0.1:{port}"]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "worker_apps:app"],
            env={**os.environ, "PYTHONPATH": str(HERE)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(f"https://127.0.0.1:{port}", process, log)
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                    with context.wrap_socket(raw) as tls:
                        tls.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        answer = _read_all(tls)
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b'{"ok":true}\n')
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw) as tls:
                tls.sendall(b"GET / HTTP/1.1 x\r\nHost: x\r\n\r\n")
                refused = _read_all(tls)
        assert refused.startswith(b"HTTP/1.1 400 Bad Request\r\n")  # in JSON, too
        assert refused.endswith(b'{"error":"Invalid HTTP Version: \'HTTP/1.1 x\'"}\n')
    finally:
        server.stop()
