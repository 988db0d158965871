"""The SYN filter: queued connections stay, new ones are never taken."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from flaskserve.serving.listener import defer_accept, refuse_new_connections, still_listening

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


def test_only_a_process_that_holds_the_listener_is_still_listening() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        assert still_listening(os.getpid(), listener)
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:  # a process without it: a worker stopping alone leaves the queue to it
            assert not still_listening(other.pid, listener)
        finally:
            other.kill()
            other.wait()
        assert not still_listening(other.pid, listener)  # gone: drain, as at a stop
