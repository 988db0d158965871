"""The SYN filter: queued connections stay, new ones are never taken."""

from __future__ import annotations

import socket
import sys

import pytest

from flaskserve.serving.listener import defer_accept, refuse_new_connections

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="socket filters are Linux's")


def test_queued_connections_stay_and_new_ones_are_not_taken() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        address = listener.getsockname()
        queued = socket.create_connection(address, timeout=2)
        queued.sendall(b"GET / HTTP/1.0\r\n\r\n")

        assert refuse_new_connections(listener)

        late = socket.socket()
        late.settimeout(0.3)  # its SYN is dropped: the handshake never completes
        with pytest.raises(TimeoutError):
            late.connect(address)
        late.close()
        listener.settimeout(1)
        accepted, _ = listener.accept()  # the connection made before is still there
        assert accepted.recv(64).startswith(b"GET / ")
        accepted.close()
        queued.close()
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # and nothing else got in
            listener.accept()


def test_a_socket_that_takes_no_filter_says_so() -> None:
    closed = socket.socket()
    closed.close()
    assert refuse_new_connections(closed) is False  # the caller drains without it


def test_a_tcp_listener_defers_accepting_until_bytes_come() -> None:
    with socket.socket() as listener:
        defer_accept(listener, 5)
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) > 0


def test_a_unix_listener_accepts_as_it_comes() -> None:
    with socket.socket(socket.AF_UNIX) as listener:
        defer_accept(listener, 5)  # no TCP option to set: nothing, and no error
