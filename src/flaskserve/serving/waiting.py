"""The connections a buffering worker holds while their request arrives, or while they linger.

:class:`~flaskserve.serving.worker.BufferingSyncWorker` keeps every connection whose
request is not whole yet in a selector, each with a deadline; this mixin is that
book: tracking (the oldest goes past :data:`MAX_WAITING`), forgetting, expiring
(a request begun and not finished gets a JSON 408), and the lingering close.
"""

from __future__ import annotations

import selectors
import socket
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from .framing import RequestFramer
from .refusals import error_response

#: The most connections waiting for the rest of their request; past it the oldest is closed.
MAX_WAITING = 1000
#: How long a closing connection's client may go on sending (nginx's lingering_timeout)...
LINGER_SECONDS = 5.0
#: ... and how much, in bodies of the largest size accepted (``FLASKSERVE_MAX_BODY_BYTES``).
LINGER_BODIES = 2


@dataclass
class Arriving:
    """A connection whose request is still arriving (or that lingers before it closes)."""

    client: socket.socket
    address: Any
    listener: Any
    deadline: float
    #: the request arriving, once a byte of it has
    framer: RequestFramer | None = None
    #: kept alive after an answer, and nothing of a next request has come yet
    idle: bool = False
    #: requests already answered on this connection
    answered: int = 0
    #: closing: the bytes still to be read and dropped (``None``: not closing)
    linger_left: int | None = None


class WaitingConnections:
    """The waiting connections of one worker; the worker sets the attributes below."""

    #: see :data:`MAX_WAITING` (a class attribute, so that a test can lower it)
    max_waiting = MAX_WAITING
    _selector: selectors.BaseSelector
    _arriving: dict[int, Arriving]
    _soonest: float
    _linger_bytes: int
    _timeout_message: str

    def _linger(self, arriving: Arriving) -> None:
        """Close after an answer: stop writing, then read and drop what still comes.

        Closing a socket with unread bytes makes the kernel reset the connection, and a
        client that is still sending (a body the app refused) gets the reset instead of
        the answer already sent; so the client is read, without blocking, until it
        closes, or for :data:`LINGER_SECONDS` or two bodies' bytes at most.
        """
        client = arriving.client
        try:
            client.shutdown(socket.SHUT_WR)
            client.setblocking(False)
        except OSError:  # the client is gone already
            client.close()
            return
        deadline = time.monotonic() + LINGER_SECONDS
        lingering = Arriving(client, arriving.address, arriving.listener, deadline)
        lingering.linger_left = self._linger_bytes
        self._track(lingering)

    def _discard(self, lingering: Arriving, chunk: bytes) -> bool:
        """Drop what a closing connection's client still sends; whether it is closed now."""
        left = lingering.linger_left or 0
        while chunk and (left := left - len(chunk)) > 0:
            try:
                chunk = lingering.client.recv(65536)
            except (BlockingIOError, InterruptedError):
                lingering.linger_left = left
                return False
            except OSError:
                break
        lingering.client.close()
        return True

    def _track(self, arriving: Arriving) -> None:
        """Wait for the rest of its request without blocking; the oldest goes past the cap."""
        if len(self._arriving) >= self.max_waiting:
            oldest = min(self._arriving.values(), key=lambda a: a.deadline)
            self._forget(oldest)
            oldest.client.close()
        self._arriving[arriving.client.fileno()] = arriving
        self._selector.register(arriving.client, selectors.EVENT_READ, arriving)
        self._soonest = min(self._soonest, arriving.deadline)

    def _forget(self, arriving: Arriving) -> None:
        self._arriving.pop(arriving.client.fileno(), None)
        self._selector.unregister(arriving.client)

    def _expire(self, now: float) -> None:
        """Close the connections past their deadline; note the next deadline."""
        for arriving in [a for a in self._arriving.values() if a.deadline <= now]:
            self._forget(arriving)
            if arriving.idle or arriving.linger_left is not None:
                arriving.client.close()
                continue
            try:  # a request began and did not finish: say so
                arriving.client.send(
                    error_response(HTTPStatus.REQUEST_TIMEOUT, self._timeout_message)
                )
            except OSError:
                pass
            self._linger(arriving)
        self._soonest = min((a.deadline for a in self._arriving.values()), default=float("inf"))
