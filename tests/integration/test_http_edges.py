"""HTTP at its edges, against a real ``flaskserve serve``: every client reads a JSON answer.

A body over the limit sent before the answer is read (Python's urllib, requests,
curl, a raw socket) gets its 413, not a reset: the worker lingers on the closing
connection. Malformed requests (bad request lines, oversized heads, ambiguous or
malformed framing, HTTP/1.1 without Host) get JSON errors with gunicorn's status and no
traceback; ``Expect: 100-continue`` works end to end; clients that leave before their
answer cost one debug line. After each test a normal prediction is still answered.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import FLASKSERVE, TUTORIAL_ROW, require_component

from liveserver import LiveServer, start_server

pytestmark = pytest.mark.integration
LIMIT = 10 * 1024 * 1024  # FLASKSERVE_MAX_BODY_BYTES by default
TOO_LARGE = {"error": f"the body is over the limit of {LIMIT} bytes"}
BODY = json.dumps(TUTORIAL_ROW).encode()
PREDICT = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
CHUNKED = PREDICT + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One worker: every connection meets the same one, and its log is in one place."""
    log = tmp_path_factory.mktemp("edges") / "serve.log"
    args = [FLASKSERVE, "serve", str(model_dir), "--port", "{port}", "--workers", "1"]
    live = start_server(args, log)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def too_large_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bodies") / "11MiB.json"
    path.write_bytes(b" " * (11 * 1024 * 1024))
    return path


def _log_since(server: LiveServer, start: int) -> str:
    time.sleep(0.3)  # the worker's lines reach the file
    with server.log.open("rb") as log:
        log.seek(start)
        return log.read().decode(errors="replace")


def _port(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _connect(server: LiveServer, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", _port(server)), timeout=timeout)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _exchange(server: LiveServer, data: bytes) -> bytes:
    with _connect(server) as sock:
        sock.sendall(data)
        return _read_all(sock)


def assert_json_error(answer: bytes, status: int, message: str) -> None:
    """*answer* is one whole response: *status*, JSON ``{"error": message}``, then a close."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {status} "), answer
    headers = {name.lower(): value for name, _, value in (h.partition(": ") for h in lines[1:])}
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)  # nothing follows: no second answer
    assert json.loads(body) == {"error": message}


def assert_healthy(server: LiveServer) -> None:
    answer = requests.post(f"{server.url}/predict", json=TUTORIAL_ROW, timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"result": [2]}


# --- a body over the limit, sent whole before the answer is read: 413 for every client


def _urllib(server: LiveServer, body: Path) -> tuple[int, str, bytes]:
    request = urllib.request.Request(
        f"{server.url}/predict",
        data=body.read_bytes(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    return refused.value.code, refused.value.headers["Content-Type"], refused.value.read()


def _requests(server: LiveServer, body: Path) -> tuple[int, str, bytes]:
    answer = requests.post(
        f"{server.url}/predict",
        data=body.read_bytes(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    return answer.status_code, answer.headers["Content-Type"], answer.content


def _requests_chunked(server: LiveServer, body: Path) -> tuple[int, str, bytes]:
    data = body.read_bytes()
    pieces = (data[i : i + 1024 * 1024] for i in range(0, len(data), 1024 * 1024))
    answer = requests.post(
        f"{server.url}/predict",
        data=pieces,  # a generator: sent chunked; the app stops reading at the limit
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    return answer.status_code, answer.headers["Content-Type"], answer.content


def _curl_path() -> str:
    return require_component("curl", "the tests of what curl sends and reads drive it")


def _curl(server: LiveServer, body: Path, *options: str) -> tuple[int, str, bytes]:
    written = subprocess.run(
        [
            _curl_path(),
            "-sS",
            "-i",
            "--max-time",
            "30",
            *options,
            "--data-binary",
            f"@{body}",
            "-H",
            "Content-Type: application/json",
            f"{server.url}/predict",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    final = written.split(b"HTTP/1.1 ")[-1]  # after any 100 Continue
    head, _, content = final.partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    return int(head[:3]), headers["Content-Type"], content


def _curl_without_expect(server: LiveServer, body: Path) -> tuple[int, str, bytes]:
    return _curl(server, body, "-H", "Expect:")


def _raw_socket(server: LiveServer, body: Path) -> tuple[int, str, bytes]:
    data = body.read_bytes()
    with _connect(server, timeout=30) as sock:
        sock.sendall(PREDICT + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        answer = _read_all(sock)
    assert_json_error(answer, 413, TOO_LARGE["error"])
    return 413, "application/json", answer.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize(
    "send",
    [_urllib, _requests, _requests_chunked, _curl, _curl_without_expect, _raw_socket],
    ids=["urllib", "requests", "requests-chunked", "curl", "curl-no-expect", "raw-socket"],
)
def test_a_body_over_the_limit_gets_413_whatever_the_client(
    server: LiveServer, too_large_file: Path, send: object
) -> None:
    status, content_type, body = send(server, too_large_file)  # type: ignore[operator]
    assert (status, content_type) == (413, "application/json")
    assert json.loads(body) == TOO_LARGE
    assert_healthy(server)


def test_curl_waiting_for_100_continue_sends_no_body_for_a_413(
    server: LiveServer, too_large_file: Path
) -> None:
    written = subprocess.run(
        [
            _curl_path(),
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_upload}",
            "--data-binary",
            f"@{too_large_file}",
            f"{server.url}/predict",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    assert written == b"413 0"  # refused on its head: not one byte of the 11 MiB sent
    assert_healthy(server)


def test_lingering_ends_after_twice_the_limit(server: LiveServer) -> None:
    sent = 0
    piece = b" " * (1024 * 1024)
    with _connect(server, timeout=10) as sock:
        sock.sendall(PREDICT + f"Content-Length: {100 * LIMIT}\r\n\r\n".encode())
        with pytest.raises(OSError):  # reset once the worker stopped reading
            while sent < 100 * LIMIT:
                sock.sendall(piece)
                sent += len(piece)
    # 2 x 10 MiB read and dropped, the rest in socket buffers: far from the 1000 MiB declared
    assert 2 * LIMIT <= sent < 8 * LIMIT
    assert_healthy(server)


def test_lingering_blocks_no_one_and_ends_after_its_seconds(server: LiveServer) -> None:
    with _connect(server, timeout=10) as sock:
        sock.sendall(PREDICT + f"Content-Length: {2 * LIMIT}\r\n\r\n".encode())
        sock.sendall(b" " * (1024 * 1024 + 1))  # past the buffer: the app refuses it, 413
        answer = _read_all(sock)  # the worker has stopped writing, and reads on
        assert_json_error(answer, 413, TOO_LARGE["error"])
        answered = time.monotonic()
        assert_healthy(server)  # the one worker answers others meanwhile
        with pytest.raises(OSError):  # the worker closes: the next sends are reset
            while time.monotonic() - answered < 20:
                sock.sendall(b" ")
                time.sleep(0.1)
        lingered = time.monotonic() - answered
    assert 4.0 < lingered < 8.0  # LINGER_SECONDS, 5
    assert_healthy(server)


# --- malformed framing


def test_a_malformed_chunk_size_is_a_400(server: LiveServer) -> None:
    start = server.log.stat().st_size
    answer = _exchange(server, CHUNKED + b"zz\r\nabc\r\n0\r\n\r\n")
    assert_json_error(answer, 400, "Invalid chunk size: b'zz'")
    log = _log_since(server, start)
    assert "Invalid request from ip=127.0.0.1: Invalid chunk size: b'zz'" in log
    assert "Traceback" not in log
    assert_healthy(server)


def test_a_malformed_chunk_past_the_buffer_is_the_apps_400(server: LiveServer) -> None:
    start = server.log.stat().st_size
    first = BODY + b" " * (1024 * 1024 + 512 * 1024)  # past the buffer: read as it comes
    chunks = b"%x\r\n%s\r\nzz\r\n" % (len(first), first)
    answer = _exchange(server, CHUNKED + chunks)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close" in head
    assert json.loads(body) == {"error": "malformed request body: Invalid chunk size: b'zz'"}
    assert "Traceback" not in _log_since(server, start)
    assert_healthy(server)


def test_content_length_with_chunked_is_refused_at_once(server: LiveServer) -> None:
    smuggled = PREDICT + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    smuggled += b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # must not be answered
    began = time.monotonic()
    answer = _exchange(server, smuggled)
    assert time.monotonic() - began < 2  # not the 30 s of a request taken for incomplete
    assert_json_error(
        answer,
        400,
        "Content-Length and Transfer-Encoding together: where the body ends is ambiguous"
        " (RFC 9112 6.3)",
    )
    assert_healthy(server)


# --- gunicorn's refusals, in JSON

LONG_TARGET = b"/" + b"a" * 5000
REFUSALS = [
    pytest.param(
        b"GET / HTTP/1.1 x\r\nHost: x\r\n\r\n",
        400,
        "Invalid HTTP Version: 'HTTP/1.1 x'",
        id="version",
    ),
    pytest.param(
        b"GET HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        "Invalid HTTP request line: 'GET HTTP/1.1'",
        id="no-target",
    ),
    pytest.param(
        b"g\x00t / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Invalid HTTP method: 'g\\x00t'", id="method"
    ),
    pytest.param(
        b"GET " + LONG_TARGET + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        414,
        "Request Line is too large (5014 > 4094)",
        id="uri-too-long",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 9000 + b"\r\n\r\n",
        431,
        "request header fields too large: limit request headers fields size",
        id="field-too-large",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 101 + b"\r\n",
        431,
        "request header fields too large: limit request headers fields",
        id="too-many-fields",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: x\r\nLong: a\r\n b\r\n\r\n",
        400,
        "Obsolete line folding is unacceptable: 'LONG'",
        id="obs-fold",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
        400,
        "Invalid HTTP header name: 'Bad Name'",
        id="header-name",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
        400,
        "Invalid HTTP Header: 'HOST'",
        id="lf-in-value",
    ),
    pytest.param(
        PREDICT + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        400,
        "Invalid HTTP Header: 'CONTENT-LENGTH'",
        id="length-twice",
    ),
    pytest.param(
        PREDICT + b"Content-Length: two\r\n\r\n",
        400,
        "Invalid HTTP Header: 'CONTENT-LENGTH'",
        id="length-words",
    ),
    pytest.param(
        PREDICT + b"Transfer-Encoding: foo\r\n\r\n",
        501,
        "Unsupported transfer coding: 'foo'",
        id="coding-unknown",
    ),
    pytest.param(
        b"POST /predict HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "Invalid HTTP Header: 'TRANSFER-ENCODING'",
        id="chunked-http10",
    ),
    pytest.param(
        PREDICT + b"Expect: 200-ok\r\nContent-Length: 0\r\n\r\n",
        417,
        "Unable to comply with expectation: '200-ok'",
        id="expect-other",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
        "Invalid HTTP Header: 'HOST'",
        id="host-twice",
    ),
    pytest.param(
        b"GET /health HTTP/1.1\r\n\r\n",
        400,
        "an HTTP/1.1 request must have a Host header",
        id="no-host",
    ),
]


@pytest.mark.parametrize(("request_bytes", "status", "message"), REFUSALS)
def test_refusals_are_json(
    server: LiveServer, request_bytes: bytes, status: int, message: str
) -> None:
    start = server.log.stat().st_size
    assert_json_error(_exchange(server, request_bytes), status, message)
    log = _log_since(server, start)
    assert f"[WARNING] Invalid request from ip=127.0.0.1: {message}" in log
    assert "Traceback" not in log
    assert_healthy(server)


def test_http10_needs_no_host(server: LiveServer) -> None:
    answer = _exchange(server, b"GET /health HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 200 ")
    assert answer.endswith(b'{"status":"alive"}\n')
    assert_healthy(server)


# --- Expect: 100-continue


def test_100_continue_on_a_raw_socket(server: LiveServer) -> None:
    with _connect(server, timeout=5) as sock:
        sock.sendall(
            PREDICT + f"Expect: 100-continue\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()
        )
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"  # sent before the body
        sock.sendall(BODY)
        sock.shutdown(socket.SHUT_WR)
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b'{"result":[2]}\n')
    assert_healthy(server)


@pytest.mark.parametrize("padding", [0, 2 * 1024 * 1024], ids=["buffered", "streamed"])
def test_100_continue_with_curl(server: LiveServer, tmp_path: Path, padding: int) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(BODY + b" " * padding)  # curl asks for 100 itself past 1 MiB
    written = subprocess.run(
        [
            _curl_path(),
            "-sS",
            "-H",
            "Expect: 100-continue",
            "-H",
            "Content-Type: application/json",
            "-w",
            "\n%{http_code} %{time_total}",
            "--data-binary",
            f"@{body}",
            f"{server.url}/predict",
        ],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    answer, status, seconds = written.rsplit(b"\n", 1)[0], *written.rsplit(b"\n", 1)[1].split()
    assert (status, json.loads(answer)) == (b"200", {"result": [2]})
    assert float(seconds) < 0.9  # curl waits 1 s for a 100 that does not come


# --- clients that leave early


def test_a_client_gone_before_its_answer_is_one_debug_line(server: LiveServer) -> None:
    start = server.log.stat().st_size
    request = PREDICT + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY
    for _ in range(50):  # a load generator ending its run
        with _connect(server) as sock:
            sock.sendall(request)
    time.sleep(0.5)
    assert_healthy(server)
    log = _log_since(server, start)
    assert "Traceback" not in log
    assert "Error handling request" not in log
    assert "[ERROR]" not in log
