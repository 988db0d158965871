"""The buffering worker's parts that need no server: the replayed bytes, accepting."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from flaskserve.serving.framing import Incomplete, ReplayingSocket
from flaskserve.serving.worker import BufferingSyncWorker


def test_a_replaying_socket_returns_what_was_received_first() -> None:
    left, right = socket.socketpair()
    with left, right:
        right.sendall(b"rest")
        replay = ReplayingSocket(left, b"received ")
        assert replay.recv(4) == b"rece"
        replay.feed(b"and ")
        assert replay.recv(100) == b"ived and "
        with pytest.raises(Incomplete):  # still arriving: the socket is not read
            replay.recv(100)
        replay.streaming = True  # handed over: the rest is read as it comes
        assert replay.recv(100) == b"rest"
        assert replay.fileno() == left.fileno()  # everything else is the socket's


def test_a_replaying_socket_gives_back_what_nobody_read() -> None:
    replay = ReplayingSocket(None, b"GET / HTTP/1.1\r\n\r\nGET /next")
    assert replay.recv(18) == b"GET / HTTP/1.1\r\n\r\n"
    replay.seek(4)
    assert replay.offset == 4
    assert replay.take_unread() == b"/ HTTP/1.1\r\n\r\nGET /next"
    assert replay.take_unread() == b""


@pytest.fixture()
def listener() -> Iterator[socket.socket]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


@pytest.fixture()
def worker(listener: socket.socket) -> Iterator[BufferingSyncWorker]:
    cfg = Config()
    worker = BufferingSyncWorker(1, os.getpid(), [listener], None, 30, cfg, Logger(cfg))
    worker._arrival_seconds = 30.0
    yield worker
    worker.tmp.close()


def test_nothing_queued_is_no_error(worker: BufferingSyncWorker, listener: socket.socket) -> None:
    assert worker._accept_from(listener) is False


def test_an_accept_that_fails_otherwise_is_raised(
    worker: BufferingSyncWorker, listener: socket.socket
) -> None:
    listener.close()  # a listener that errors: EBADF, not "nothing queued"
    with pytest.raises(OSError) as raised:
        worker._accept_from(listener)
    assert raised.value.errno == errno.EBADF  # the worker exits; the arbiter starts another
