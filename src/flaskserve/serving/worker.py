"""flaskserve's gunicorn worker: a sync worker that slow clients cannot stall.

A stock sync worker reads a request's headers and body inside the one call that
answers it, so a client that sends its headers a byte a second holds the worker
for as long as it likes: as many such clients as workers stop the server. This
worker reads every connection without blocking, keeps the bytes of those whose
request is not complete yet, and hands a request to the app only when all of it
has arrived, the way a buffering proxy (nginx) does (where a request ends:
:mod:`flaskserve.serving.framing`). Waiting costs a few kB per connection, never a
worker. A request body over :data:`BUFFER_LIMIT` is handed over once its headers
are in and is read as it comes, as before. A malformed request is refused in JSON
before it reaches the app (:mod:`flaskserve.serving.refusals`).

Connections are kept alive (HTTP/1.1 keep-alive, for gunicorn's ``keepalive``
seconds, 2 by default; ``flaskserve serve --keepalive 0`` turns it off): an
answered connection goes back among those waiting, without blocking, for their
next request, so a client's next request costs no new TCP connection. A
worker that dies then loses the requests already sent on its open connections,
none of which the app has seen (see docs/reliability.md).

A connection closed while its client may still be sending (a 413 for a body still
arriving, a refusal, a 408) lingers as nginx's do: the worker stops writing, then
reads and drops what still comes, for a few seconds at most, without blocking, so
that the client reads its answer instead of a reset (:mod:`flaskserve.serving.waiting`).

When the whole server stops (SIGTERM), the worker also stops new connections from
being taken and answers every one already queued before it exits; a worker stopped
alone answers what it holds and leaves the queue to the others
(see :mod:`flaskserve.serving.listener`).
"""

from __future__ import annotations

import errno
import os
import select
import selectors
import time
from datetime import datetime
from typing import Any

from gunicorn.http import errors, wsgi
from gunicorn.workers.sync import SyncWorker

from ..settings import Settings
from .framing import CONTINUE, CheckedBody, ReplayingSocket, RequestFramer
from .listener import defer_accept, refuse_new_connections, still_listening
from .refusals import MALFORMED, answer_error, check_host, client_gone
from .waiting import LINGER_BODIES, Arriving, WaitingConnections

#: The most bytes of one request kept while it arrives; larger bodies stream to the handler.
BUFFER_LIMIT = 1024 * 1024
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


class BufferingSyncWorker(WaitingConnections, SyncWorker):  # type: ignore[misc]  # no types
    """gunicorn's sync worker, fed only whole requests, and draining its queue on stop."""

    def run(self) -> None:
        if self.cfg.is_ssl:  # encrypted bytes cannot be framed here: gunicorn's own loop
            super().run()
            return
        self._prepare()
        while self.alive:
            self.notify()
            # one new connection, then the kept-alive ones that are ready: a worker takes no
            # more of the queue than it can answer while its siblings are free to take the rest
            accepted = self._accept_queued()
            self._step(timeout=0.0 if accepted else 1.0)
            if not self.is_parent_alive():
                return
        self._drain()

    def _prepare(self) -> None:
        # settings come with `flaskserve serve`; a plain `gunicorn -k` run reads FLASKSERVE_*
        settings = getattr(self.app, "settings", None) or Settings.from_env()
        self._arrival_seconds = settings.request_timeout
        self._timeout_message = (
            f"the request did not arrive whole within {settings.request_timeout:g} s"
        )
        self._linger_bytes = LINGER_BODIES * settings.max_body_bytes
        self._selector = selectors.DefaultSelector()
        self._arriving: dict[int, Arriving] = {}
        self._soonest = float("inf")  # no deadline among the waiting connections comes before
        for listener in self.sockets:
            listener.setblocking(False)
            defer_accept(listener.sock, DEFER_ACCEPT_SECONDS)
            self._selector.register(listener, selectors.EVENT_READ, None)
        self._selector.register(self.PIPE[0], selectors.EVENT_READ, "wakeup")

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
                arriving: Arriving = key.data
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
        """Take one queued connection, answered at once if its request is all there.

        :raises OSError: accepting failed other than for want of a connection (gunicorn's
            sync worker does the same: the worker exits and the arbiter starts another).
        """
        try:
            client, address = listener.accept()
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                return False
            raise
        client.setblocking(False)
        arriving = Arriving(client, address, listener, time.monotonic() + self._arrival_seconds)
        # Clients often send headers and body in two writes: wait a moment for the rest, so
        # that a worker holds no connection it has not answered when it dies (SIGKILL, OOM).
        settled = time.monotonic() + SETTLE_SECONDS
        while not self._receive(arriving):
            remaining = settled - time.monotonic()
            if remaining <= 0 or not select.select([client], [], [], remaining)[0]:
                self._track(arriving)  # a slow client: wait for it without blocking
                break
        return True

    def _receive(self, arriving: Arriving) -> bool:
        """Read what has come; answer the request once whole. Whether the connection is done."""
        try:
            chunk = arriving.client.recv(65536)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            chunk = b""
        if arriving.linger_left is not None:
            return self._discard(arriving, chunk)
        if not chunk:  # the client closed, or gave up before its request was whole
            arriving.client.close()
            return True
        if arriving.idle:  # a kept-alive connection's next request begins: its own deadline
            # (the connection is not tracked now; tracking it again notes the deadline)
            arriving.idle = False
            arriving.deadline = time.monotonic() + self._arrival_seconds
        framer = arriving.framer
        if framer is None:  # usually the whole request, in one read
            source = ReplayingSocket(arriving.client, chunk, arriving.answered)
            framer = arriving.framer = RequestFramer(self.cfg, source, arriving.address)
        else:
            framer.source.feed(chunk)
        full = len(framer.source.received) >= BUFFER_LIMIT
        try:
            end = framer.advance(chunk, last_try=full)
            if framer.request is not None:
                check_host(framer.request)
            if end is None and framer.request is None and full:
                raise errors.LimitRequestHeaders(f"a request head over {BUFFER_LIMIT} bytes")
        except Exception as e:  # MALFORMED: gunicorn's 400s; anything else: a 500
            self._refuse(arriving, e)
            return True
        if end is None and not full and not self._hand_over_early(arriving, framer):
            return False
        self._serve(arriving, framer, whole=end is not None)
        return True

    def _hand_over_early(self, arriving: Arriving, framer: RequestFramer) -> bool:
        """Whether a request whose body is still to come goes to the app now.

        Only one whose client waits for ``100 Continue`` before a body too large to
        buffer: gunicorn sends the 100 and the app reads the body as it comes. For a
        smaller body the worker sends the 100 itself and buffers the body as usual.
        """
        if framer.request is None or not framer.expects_continue:
            return False
        length = getattr(framer.request.body.reader, "length", None)  # None: chunked
        if length is not None and framer.head_end + length > BUFFER_LIMIT:
            return True
        framer.take_continue()  # answered here, not by gunicorn
        try:
            arriving.client.send(CONTINUE)
        except OSError:  # the client is gone: the next read says so
            pass
        return False

    def _serve(self, arriving: Arriving, framer: RequestFramer, *, whole: bool) -> None:
        """Answer the request; then keep the connection alive or close it."""
        client, addr, listener = framer.source, arriving.address, arriving.listener
        client.streaming = True  # what the buffer lacks (a streamed body) is read as it comes
        arriving.client.setblocking(True)
        parser, req = framer.parser, framer.request
        # a client that waits for 100 Continue gets it when the app first reads the body:
        # one refused without reading it (a 413) is never sent (gunicorn sends it first)
        continue_to = client if framer.take_continue() and not whole else None
        keep = False
        try:
            keep = self._answer(listener, req, client, addr, continue_to, streamed=not whole) and (
                parser.finish_body(deadline=time.monotonic() + DRAIN_BODY_SECONDS)
            )
            # a pipelined next request closes the connection, as gunicorn's sync worker does
            keep = keep and not (parser.unreader.take_buffered() or client.take_unread())
        except errors.NoMoreData as e:
            self.log.debug("Ignored premature client disconnection. %s", e)
        except StopIteration as e:
            self.log.debug("Closing connection. %s", e)
        except MALFORMED as e:  # before gunicorn 27 its chunk errors are OSErrors too
            self.handle_error(req, client, addr, e)
        except OSError as e:
            if client_gone(e):
                self.log.debug("Client went away before its answer was written: %s", e)
            else:
                self.log.exception("Socket error processing request.")
        except BaseException as e:  # a failing hook, a worker timeout...: JSON, as any error
            self.handle_error(req, client, addr, e)
        if keep:  # wait, without blocking, for the connection's next request
            client.raw.setblocking(False)
            deadline = time.monotonic() + self.cfg.keepalive
            answered = client.answered + 1
            self._track(
                Arriving(client.raw, addr, listener, deadline, idle=True, answered=answered)
            )
        else:
            self._linger(arriving)

    def _answer(
        self,
        listener: Any,
        req: Any,
        client: ReplayingSocket,
        addr: Any,
        continue_to: ReplayingSocket | None,
        *,
        streamed: bool,
    ) -> bool:
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
            if streamed:  # a body read as it comes may turn out malformed: a 400, not a 500
                environ["wsgi.input"] = CheckedBody(environ["wsgi.input"], continue_to)
            if (
                streamed  # the rest of its body may still be arriving: the connection closes
                or not self.alive  # stopping or recycling
                or self.cfg.keepalive <= 0
                or client.answered + 1 >= KEEPALIVE_REQUESTS  # time to move: it reconnects
            ):
                resp.force_close()
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
        except (Exception, SystemExit) as e:
            if resp is not None and resp.headers_sent:
                # an answer already begun cannot become an error page: drop the connection
                if client_gone(e):
                    self.log.debug("Client went away before its answer was written: %s", e)
                else:
                    self.log.exception("Error handling request")
                raise StopIteration() from None
            raise
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")
        return not resp.should_close()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answer a request that could not be answered normally: in JSON (gunicorn's: HTML)."""
        answer_error(self.log, req, client, addr, exc)

    def _refuse(self, arriving: Arriving, exc: BaseException) -> None:
        """Answer a malformed request before it reaches the app, and close."""
        arriving.client.setblocking(True)  # the answer is small: it goes out at once
        framer = arriving.framer
        self.handle_error(framer and framer.request, arriving.client, arriving.address, exc)
        self._linger(arriving)

    def _drain(self) -> None:
        """Take no new connection; answer those queued or arriving; then return."""
        if not self.is_parent_alive():  # an orphan has no master to hand the port back to
            return
        if any(still_listening(self.ppid, listener.sock) for listener in self.sockets):
            self._finish_own()  # this worker stops alone: its siblings take the queue
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

    def _finish_own(self) -> None:
        """Answer the requests this worker holds that are arriving; close its idle ones."""
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline and any(not a.idle for a in self._arriving.values()):
            self.notify()
            self._step(timeout=0.005)
        for waiting in list(self._arriving.values()):
            self._forget(waiting)
            waiting.client.close()


def _read_wakeups(fd: int) -> None:
    try:
        os.read(fd, 4096)
    except BlockingIOError:
        pass
