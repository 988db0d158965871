"""When the buffering worker thinks a request has arrived whole, and how it replays it."""

from __future__ import annotations

import socket

import pytest

from flaskserve.serving.worker import BUFFER_LIMIT, ReplayingSocket, request_is_whole

HEAD = b"POST /predict HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    ("data", "whole"),
    [
        (b"", False),
        (b"GET /health HTTP/1.1\r\nHost: x", False),  # headers not ended
        (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", True),  # no body
        (HEAD + b"Content-Length: 5\r\n\r\nabc", False),
        (HEAD + b"Content-Length: 5\r\n\r\nabcde", True),
        (HEAD + b"content-length:5\r\n\r\nabcde", True),  # any case, no space
        (HEAD + b"CONTENT-LENGTH :  5 \r\n\r\nabcde", True),
        (HEAD + b"Content-Length: 0\r\n\r\n", True),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", False),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", True),
        (HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", True),
        (HEAD + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n", True),  # awaits our 100
        (HEAD + b"Content-Length: nope\r\n\r\n", True),  # malformed: gunicorn answers 400
        (HEAD + b"X-Content-Length: 9\r\n\r\n", True),  # another header's name
        (HEAD + b"Content-Length: 99999999\r\n\r\n" + b"x" * BUFFER_LIMIT, True),  # streams
        (b"G" * BUFFER_LIMIT, True),  # endless headers: gunicorn refuses them itself
    ],
)
def test_request_is_whole(data: bytes, whole: bool) -> None:
    assert request_is_whole(data) is whole


def test_a_replaying_socket_returns_what_was_received_first() -> None:
    left, right = socket.socketpair()
    with left, right:
        right.sendall(b"rest")
        replay = ReplayingSocket(left, b"received ")
        assert replay.recv(4) == b"rece"
        assert replay.recv(100) == b"ived "
        assert replay.recv(100) == b"rest"
        assert replay.fileno() == left.fileno()  # everything else is the socket's
