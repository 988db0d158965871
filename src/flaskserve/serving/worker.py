"""flaskserve's gunicorn worker: a sync worker that slow clients cannot stall.

A stock sync worker reads a request's headers and body inside the one call that
answers it, so a client that sends its headers a byte a second holds the worker
for as long as it likes: as many such clients as workers stop the server. This
worker reads every connection without blocking, keeps the bytes of those whose
request is not complete yet, and hands a request to the app only when all of it
has arrived, the way a buffering proxy (nginx) does. Waiting costs a few kB per
connection, never a worker. A request body over :data:`BUFFER_LIMIT` is handed
over once its headers are in and is read as it comes, as before.

Connections are kept alive (HTTP/1.1 keep-alive, for gunicorn's ``keepalive``
seconds, 2 by default; ``flaskserve serve --keepalive 0`` turns it off): an
answered connection goes back among those waiting, without blocking, for their
next request, so a client's next request costs no new TCP connection. A
worker that dies then loses the requests already sent on its open connections,
none of which the app has seen (see README, Reliability).

On SIGTERM the worker also stops new connections from being taken and answers
every one already queued before it exits (see :mod:`flaskserve.serving.listener`).
"""

from __future__ import annotations

import errno
import json
import os
import re
import select
import selectors
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gunicorn import http, util
from gunicorn.http import wsgi
from gunicorn.workers.sync import SyncWorker

from ..settings import Settings
from .listener import refuse_new_connections

#: The most bytes of one request kept while it arrives; larger bodies stream to the handler.
BUFFER_LIMIT = 1024 * 1024
#: The most connections waiting for the rest of their request; past it the oldest is closed.
MAX_WAITING = 1000
#: How long a new connection may take to finish its request before it waits without blocking.
SETTLE_SECONDS = 0.05
#: How long the kernel holds a connection that has sent nothing before handing it over anyway.
DEFER_ACCEPT_SECONDS = 5
#: The longest a stopping worker keeps answering connections that were already queued...
DRAIN_SECONDS = 10.0
#: ... and how long the queue must stay empty first: handshakes under way still complete.
DRAIN_QUIET_SECONDS = 0.2
#: The longest an answer waits for the unread rest of its request body before keep-alive.
DRAIN_BODY_SECONDS = 1.0
#: Requests one kept-alive connection may carry; its last answer says ``Connection: close``
#: and the client reconnects to whichever worker is free, so workers share long-lived
#: clients (nginx's ``keepalive_requests`` does the same).
KEEPALIVE_REQUESTS = 100

_HEADER_END = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*(\d+)[ \t]*(?=\r\n)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding[ \t]*:[^\r\n]*chunked", re.IGNORECASE)
_EXPECT_CONTINUE = re.compile(rb"\r\nexpect[ \t]*:[ \t]*100-continue", re.IGNORECASE)


@dataclass
class _Arriving:
    """A connection whose request is still arriving."""

    client: socket.socket
    address: Any
    listener: Any
    deadline: float
    data: bytearray = field(default_factory=bytearray)
    #: kept alive after an answer, and nothing of a next request has come yet
    idle: bool = False
    #: requests already answered on this connection
    answered: int = 0


class ReplayingSocket:
    """A client socket whose first reads return the bytes already received from it."""

    def __init__(self, sock: socket.socket, received: bytes, answered: int = 0) -> None:
        self._sock = sock
        self._received = received
        #: requests already answered on this connection (keep-alive)
        self.answered = answered
        # bound once: gunicorn calls these for every response, __getattr__ would look them up
        self.sendall = sock.sendall
        self.send = sock.send
        self.fileno = sock.fileno

    def recv(self, size: int, *flags: int) -> bytes:
        if self._received:
            chunk, self._received = self._received[:size], self._received[size:]
            return chunk
        return self._sock.recv(size, *flags)

    @property
    def raw(self) -> socket.socket:
        return self._sock

    def take_unread(self) -> bytes:
        """The received bytes nobody read yet (a pipelined next request), now taken."""
        unread, self._received = self._received, b""
        return unread

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def request_is_whole(data: bytes | bytearray) -> bool:
    """Whether *data* holds a whole HTTP/1 request (or enough to hand it over).

    Headers must have ended; then a ``Content-Length`` body must be all there, a
    chunked one must have reached its last chunk, and anything over
    :data:`BUFFER_LIMIT` is handed over as it is. Malformed framing is handed over
    too: gunicorn's parser then answers it with its 400.
    """
    end = data.find(_HEADER_END)
    if end < 0:
        return len(data) >= BUFFER_LIMIT  # gunicorn refuses over-long headers itself
    head = bytes(data[: end + 2])
    body = len(data) - end - len(_HEADER_END)
    if _EXPECT_CONTINUE.search(head):  # the client waits for gunicorn's 100 before its body
        return True
    if _CHUNKED.search(head):
        return data.endswith(b"0\r\n\r\n") or len(data) >= BUFFER_LIMIT
    length = _CONTENT_LENGTH.search(head)
    if length is None:
        return True
    return body >= int(length.group(1)) or len(data) >= BUFFER_LIMIT


class BufferingSyncWorker(SyncWorker):  # type: ignore[misc]  # gunicorn ships no types
    """gunicorn's sync worker, fed only whole requests, and draining its queue on stop."""

    def run(self) -> None:
        # settings come with `flaskserve serve`; a plain `gunicorn -k` run reads FLASKSERVE_*
        settings = getattr(self.app, "settings", None) or Settings.from_env()
        self._arrival_seconds = settings.request_timeout
        self._timeout_response = _timeout_response(settings.request_timeout)
        self._selector = selectors.DefaultSelector()
        self._arriving: dict[int, _Arriving] = {}
        self._soonest = float("inf")  # no deadline among the waiting connections comes before
        for listener in self.sockets:
            listener.setblocking(False)
            _defer_accept(listener.sock)
            self._selector.register(listener, selectors.EVENT_READ, None)
        self._selector.register(self.PIPE[0], selectors.EVENT_READ, "wakeup")
        while self.alive:
            self.notify()
            # one new connection, then the kept-alive ones that are ready: a worker takes no
            # more of the queue than it can answer while its siblings are free to take the rest
            accepted = self._accept_queued()
            self._step(timeout=0.0 if accepted else 1.0)
            if not self.is_parent_alive():
                return
        self._drain()

    def _accept_queued(self) -> bool:
        return any(self._accept_from(listener) for listener in self.sockets)

    def _step(self, timeout: float) -> bool:
        """Wait for something to do and do it; whether a connection was taken or answered."""
        progressed = False
        for key, _ in self._selector.select(self._wait(timeout)):
            if key.data == "wakeup":
                _read_wakeups(self.PIPE[0])
            elif key.data is None:
                progressed |= self._accept_from(key.fileobj)
            else:
                arriving: _Arriving = key.data
                if self._arriving.get(arriving.client.fileno()) is arriving:  # not evicted
                    self._forget(arriving)  # while its socket is open: unregistering needs it
                    if self._receive(arriving):
                        progressed = True
                    else:
                        self._track(arriving)
        now = time.monotonic()
        if now >= self._soonest:
            self._expire(now)
        return progressed

    def _wait(self, timeout: float) -> float:
        return max(0.0, min(timeout, self._soonest - time.monotonic()))

    def _accept_from(self, listener: Any) -> bool:
        """Take one queued connection, answered at once if its request is all there."""
        try:
            client, address = listener.accept()
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                return False
            raise
        client.setblocking(False)
        arriving = _Arriving(client, address, listener, time.monotonic() + self._arrival_seconds)
        # Clients often send headers and body in two writes: wait a moment for the rest, so
        # that a worker holds no connection it has not answered when it dies (SIGKILL, OOM).
        settled = time.monotonic() + SETTLE_SECONDS
        while not self._receive(arriving):
            remaining = settled - time.monotonic()
            if remaining <= 0 or not select.select([client], [], [], remaining)[0]:
                self._track(arriving)  # a slow client: wait for it without blocking
                break
        return True

    def _receive(self, arriving: _Arriving) -> bool:
        """Read what has come; answer the request once whole. Whether the connection is done."""
        try:
            chunk = arriving.client.recv(65536)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            chunk = b""
        if not chunk:  # the client closed, or gave up before its request was whole
            arriving.client.close()
            return True
        if arriving.idle:  # a kept-alive connection's next request begins: its own deadline
            # (the connection is not tracked now; tracking it again notes the deadline)
            arriving.idle = False
            arriving.deadline = time.monotonic() + self._arrival_seconds
        if not arriving.data and request_is_whole(chunk):  # the usual case: all in one read
            whole = chunk
        else:
            arriving.data += chunk
            if not request_is_whole(arriving.data):
                return False
            whole = bytes(arriving.data)
        arriving.client.setblocking(True)
        replaying = ReplayingSocket(arriving.client, whole, arriving.answered)
        self.handle(arriving.listener, replaying, arriving.address)
        return True

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        """Answer one request; then keep the connection alive or close it."""
        if self.cfg.is_ssl or self.cfg.keepalive <= 0 or not isinstance(client, ReplayingSocket):
            super().handle(listener, client, addr)  # gunicorn's: one request, then close
            return
        req = None
        keep = False
        try:
            parser = http.get_parser(self.cfg, client, addr)
            req = next(parser)
            keep = self._answer(listener, req, client, addr) and parser.finish_body(
                deadline=time.monotonic() + DRAIN_BODY_SECONDS
            )
            # a pipelined next request closes the connection, as gunicorn's sync worker does
            keep = keep and not (parser.unreader.take_buffered() or client.take_unread())
        except http.errors.NoMoreData as e:
            self.log.debug("Ignored premature client disconnection. %s", e)
        except StopIteration as e:
            self.log.debug("Closing connection. %s", e)
        except OSError as e:
            if e.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
        except BaseException as e:  # gunicorn's answer: 400 for bad requests, 500 otherwise
            self.handle_error(req, client, addr, e)
        if keep:  # wait, without blocking, for the connection's next request
            client.raw.setblocking(False)
            deadline = time.monotonic() + self.cfg.keepalive
            answered = client.answered + 1
            self._track(
                _Arriving(client.raw, addr, listener, deadline, idle=True, answered=answered)
            )
        else:
            util.close_graceful(client)

    def _answer(self, listener: Any, req: Any, client: ReplayingSocket, addr: Any) -> bool:
        """gunicorn's sync ``handle_request``, less its forced close: whether to keep alive."""
        environ: dict[str, Any] = {}
        resp = None
        try:
            self.cfg.pre_request(self, req)
            request_start = datetime.now()
            resp, environ = wsgi.create(req, client, addr, listener.getsockname(), self.cfg)
            self.nr += 1
            if self.nr >= self.max_requests:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
            if not self.alive or client.answered + 1 >= KEEPALIVE_REQUESTS:
                resp.force_close()  # stopping, recycling, or time to move: the client reconnects
            respiter = self.wsgi(environ, resp.start_response)
            try:
                if isinstance(respiter, environ["wsgi.file_wrapper"]):
                    resp.write_file(respiter)
                else:
                    for item in respiter:
                        resp.write(item)
                resp.close()
            finally:
                self.log.access(resp, req, environ, datetime.now() - request_start)
                if hasattr(respiter, "close"):
                    respiter.close()
        except (Exception, SystemExit):
            if resp is not None and resp.headers_sent:
                # an answer already begun cannot become an error page: drop the connection
                self.log.exception("Error handling request")
                raise StopIteration() from None
            raise
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")
        return not resp.should_close()

    def _track(self, arriving: _Arriving) -> None:
        """Wait for the rest of its request without blocking; the oldest goes past the cap."""
        if len(self._arriving) >= MAX_WAITING:
            oldest = min(self._arriving.values(), key=lambda a: a.deadline)
            self._forget(oldest)
            oldest.client.close()
        self._arriving[arriving.client.fileno()] = arriving
        self._selector.register(arriving.client, selectors.EVENT_READ, arriving)
        self._soonest = min(self._soonest, arriving.deadline)

    def _forget(self, arriving: _Arriving) -> None:
        self._arriving.pop(arriving.client.fileno(), None)
        self._selector.unregister(arriving.client)

    def _expire(self, now: float) -> None:
        """Close the connections past their deadline; note the next deadline."""
        for arriving in [a for a in self._arriving.values() if a.deadline <= now]:
            self._forget(arriving)
            if not arriving.idle:  # a request began and did not finish: say so
                try:
                    arriving.client.send(self._timeout_response)
                except OSError:
                    pass
            arriving.client.close()
        self._soonest = min((a.deadline for a in self._arriving.values()), default=float("inf"))

    def _drain(self) -> None:
        """Take no new connection; answer those queued or arriving; then return."""
        if not self.is_parent_alive():  # an orphan has no master to hand the port back to
            return
        for listener in self.sockets:
            refuse_new_connections(listener.sock)
        deadline = time.monotonic() + DRAIN_SECONDS
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            self.notify()
            # answers now close their connection; an idle kept-alive one may still send
            # a request, answered while the queue stays quiet, and is closed after
            arriving = any(not a.idle for a in self._arriving.values())
            if self._accept_queued() or self._step(timeout=0.005) or arriving:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > DRAIN_QUIET_SECONDS:
                break
        for waiting in list(self._arriving.values()):
            self._forget(waiting)
            waiting.client.close()


def _defer_accept(sock: socket.socket) -> None:
    """Let the kernel hand over a connection only once its first bytes have come (Linux).

    Then a usual request is whole when it is accepted and answered at once: a worker
    holds no new connection that is still idle, so a worker that dies (SIGKILL, OOM)
    costs a client that opens a connection per request only the request it was
    answering, as a stock sync worker's does (kept-alive connections: see the module).
    """
    if hasattr(socket, "TCP_DEFER_ACCEPT") and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT_SECONDS)
        except OSError:  # not a TCP socket after all: accept as it comes
            pass


def _timeout_response(seconds: float) -> bytes:
    body = json.dumps({"error": f"the request did not arrive whole within {seconds:g} s"})
    return (
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def _read_wakeups(fd: int) -> None:
    try:
        os.read(fd, 4096)
    except BlockingIOError:
        pass
