"""Where an HTTP/1 request ends in the bytes received so far: whole, incomplete or invalid.

The buffering worker (:mod:`.worker`) hands a request to the app only once all of it
has arrived, so it must see where a request ends exactly as gunicorn's parser will: a
request it took for incomplete that gunicorn refuses would wait for nothing (until its
408), one it took for whole that gunicorn reads further would hold a worker.

The head is parsed by gunicorn's own parser, over the received bytes: the same rules,
limits and refusals as the installed gunicorn, and the request it makes is the one the
app is given (a head is parsed once). The body's length comes from that head; a chunked
body is followed chunk by chunk as it arrives, by the rules of gunicorn's
``ChunkedReader`` (``tests/serving/test_framing.py`` runs both over a table of requests).
"""

from __future__ import annotations

import socket
from typing import Any

from gunicorn import http
from gunicorn.http import body as gunicorn_body
from gunicorn.http.errors import (
    ChunkMissingTerminator,
    InvalidChunkExtension,
    InvalidChunkSize,
    InvalidHeader,
    LimitRequestHeaders,
    NoMoreData,
)
from werkzeug.exceptions import BadRequest, ClientDisconnected

from .refusals import MALFORMED

_HEX_DIGITS = b"0123456789abcdefABCDEF"
#: gunicorn 27 checks chunk extensions against RFC 9112's grammar; older ones do not
_CHUNK_EXT = getattr(gunicorn_body, "CHUNK_EXT_RE", None)
_SIZE, _DATA, _DATA_END, _TRAILERS = range(4)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Incomplete(Exception):
    """The received bytes end before the request does (a socket would block here)."""


class ReplayingSocket:
    """A client socket whose reads first return the bytes already received from it.

    While the request is still arriving (``streaming`` false) a read past those bytes
    raises :class:`Incomplete`; once the request is handed over it reads the socket.
    """

    def __init__(self, sock: socket.socket | None, received: bytes, answered: int = 0) -> None:
        self._sock = sock
        self._received: bytes | bytearray = received
        self._offset = 0
        self.streaming = False
        #: requests already answered on this connection (keep-alive)
        self.answered = answered
        if sock is not None:  # bound once: gunicorn calls these for every response
            self.sendall = sock.sendall
            self.send = sock.send
            self.fileno = sock.fileno

    @property
    def received(self) -> bytes | bytearray:
        return self._received

    @property
    def raw(self) -> socket.socket:
        assert self._sock is not None
        return self._sock

    def feed(self, chunk: bytes) -> None:
        """Add bytes that have just arrived."""
        if isinstance(self._received, bytes):  # the first read was not all: start a buffer
            self._received = bytearray(self._received)
        self._received += chunk

    def recv(self, size: int, *flags: int) -> bytes:
        received = self._received
        if self._offset < len(received):
            if self._offset == 0 and size >= len(received) and isinstance(received, bytes):
                self._offset = len(received)  # the usual case: all of it, no copy
                return received
            chunk = bytes(received[self._offset : self._offset + size])
            self._offset += len(chunk)
            return chunk
        if not self.streaming or self._sock is None:
            raise Incomplete
        return self._sock.recv(size, *flags)

    @property
    def offset(self) -> int:
        """How many of the received bytes have been read."""
        return self._offset

    def seek(self, offset: int) -> None:
        """Read the received bytes from *offset* on (again)."""
        self._offset = offset

    def take_unread(self) -> bytes:
        """The received bytes nobody read yet (a pipelined next request), now taken."""
        unread = bytes(self._received[self._offset :])
        self._offset = len(self._received)
        return unread

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class RequestFramer:
    """Follows the request at the start of a connection's bytes until all of it is in.

    :param cfg: gunicorn's configuration (its limits apply).
    :param source: the connection's bytes; :meth:`ReplayingSocket.feed` adds to them.
    :param peer: the client's address (gunicorn trusts forwarding headers by it).
    """

    def __init__(self, cfg: Any, source: ReplayingSocket, peer: Any) -> None:
        self.cfg = cfg
        self.source = source
        self.peer = peer
        #: once the head is in: gunicorn's parser and its request, to be answered
        self.parser: Any = None
        self.request: Any = None
        #: where the head ends and, once known, the request
        self.head_end = 0
        self.end: int | None = None
        self._tried = 0  # bytes there were at the last try to parse the head
        self._chunks: _ChunkedBody | None = None

    def advance(self, fresh: bytes, *, last_try: bool = False) -> int | None:
        """Take in *fresh* bytes (already fed to the source): where the request ends, if in.

        A head is parsed again when a line may have ended, or when the bytes have
        doubled since the last try (a line that never ends still meets its limit).

        :param last_try: parse the head whatever arrived (no more bytes will be waited for).
        :returns: the offset just past the request, or ``None`` while it is incomplete.
        :raises MALFORMED: the request is malformed (gunicorn's error).
        """
        if self.end is not None:
            return self.end
        if self.request is None:
            size = len(self.source.received)
            if not (b"\n" in fresh or size >= 2 * self._tried or last_try):
                return None
            self._tried = size
            if not self._parse_head():
                return None
        self.end = self._body_end()
        return self.end

    def _parse_head(self) -> bool:
        self.source.seek(0)
        parser = http.get_parser(self.cfg, self.source, self.peer)
        try:
            request = next(parser)
        except Incomplete:
            return False
        # what gunicorn read beyond the head goes back to the source: the body starts there
        self.head_end = self.source.offset - len(parser.unreader.take_buffered())
        self.source.seek(self.head_end)
        self.parser, self.request = parser, request
        if isinstance(request.body.reader, gunicorn_body.ChunkedReader):
            self._chunks = _ChunkedBody(request, self.head_end)
        return True

    def _body_end(self) -> int | None:
        received = self.source.received
        if self._chunks is not None:
            return self._chunks.end(received)
        end = self.head_end + int(self.request.body.reader.length)
        return end if len(received) >= end else None

    @property
    def expects_continue(self) -> bool:
        """Whether the client waits for ``100 Continue`` before it sends its body."""
        return bool(getattr(self.request, "_expected_100_continue", False))

    def take_continue(self) -> bool:
        """Whether the client waits for ``100 Continue``; gunicorn will not send it now."""
        expects = self.expects_continue
        if expects:
            self.request._expected_100_continue = False
        return expects


class _ChunkedBody:
    """A chunked body followed as it arrives, by the rules of gunicorn's ``ChunkedReader``.

    Each byte is looked at about once, however the body is cut into reads: a search
    for a line's end goes on where the last one stopped.
    """

    def __init__(self, request: Any, start: int) -> None:
        self._request = request
        self._at = start  # where the next size line, chunk data, CRLF or trailers begin
        self._left = 0  # chunk data still to come
        self._state = _SIZE
        self._searched = start  # where the search for the line or section's end goes on
        self._lfs = self._crlfs = 0  # in the trailers so far: a bare LF is refused
        reader = request.body.reader
        # limits of gunicorn 27's reader (none before: the buffer's own limit applies)
        self._line_limit: int | None = getattr(reader, "limit_chunk_size_line", None)
        self._trailer_limit: int | None = getattr(reader, "limit_trailer_section", None)

    def end(self, data: bytes | bytearray) -> int | None:
        """Where the body ends in *data*, or ``None`` until it has.

        :raises MALFORMED: the body is malformed.
        """
        while True:
            if self._state == _SIZE:
                eol = data.find(b"\r\n", max(self._at, self._searched - 1))
                if eol < 0:
                    self._searched = len(data)
                    if self._line_limit is not None and len(data) - self._at > self._line_limit:
                        raise InvalidChunkSize(
                            b"line over %d bytes with no terminator" % self._line_limit
                        )
                    return None
                self._left = chunk_size(bytes(data[self._at : eol]))
                self._move_to(eol + 2, _DATA if self._left else _TRAILERS)
            elif self._state == _DATA:
                taken = min(self._left, len(data) - self._at)
                self._at += taken
                self._left -= taken
                if self._left:
                    return None
                self._state = _DATA_END
            elif self._state == _DATA_END:
                if len(data) - self._at < 2:
                    return None
                if data[self._at : self._at + 2] != b"\r\n":
                    raise ChunkMissingTerminator(bytes(data[self._at : self._at + 2]))
                self._move_to(self._at + 2, _SIZE)
            else:
                return self._trailers_end(data)

    def _move_to(self, at: int, state: int) -> None:
        self._at = self._searched = at
        self._state = state

    def _trailers_end(self, data: bytes | bytearray) -> int | None:
        if data[self._at : self._at + 2] == b"\r\n":  # no trailers
            return self._at + 2
        end = data.find(b"\r\n\r\n", max(self._at, self._searched - 3))
        if end >= 0:
            self._request.parse_headers(bytes(data[self._at : end]), from_trailer=True)
            return end + 4
        # gunicorn 27 bounds the trailer section and refuses bare LFs before it ends
        if self._trailer_limit is not None:
            if len(data) - self._at > self._trailer_limit:
                raise LimitRequestHeaders("limit request trailer section size")
            self._lfs += data.count(b"\n", self._searched)
            self._crlfs += data.count(b"\r\n", max(self._at, self._searched - 1))
            if self._lfs != self._crlfs:
                raise InvalidHeader("bare LF as line terminator")
        self._searched = len(data)
        return None


def chunk_size(line: bytes) -> int:
    """The size a chunk-size line gives (RFC 9112 7.1), checked as gunicorn checks it.

    :raises InvalidChunkSize: not hexadecimal digits (signs, spaces, nothing).
    :raises InvalidChunkExtension: a bare CR or, in gunicorn 27, an ill-formed extension.
    """
    size, *extension = line.split(b";", 1)
    if extension:
        if b"\r" in extension[0]:
            raise InvalidChunkExtension("bare CR not allowed")
        size = size.rstrip(b" \t")
    if not size or any(digit not in _HEX_DIGITS for digit in size):
        raise InvalidChunkSize(size)
    if extension and _CHUNK_EXT is not None and not _CHUNK_EXT.fullmatch(b";" + extension[0]):
        raise InvalidChunkExtension("invalid chunk extension")
    return int(size, 16)


class CheckedBody:
    """A request body read as it comes, whose malformed framing is the client's 400.

    gunicorn's reader raises its parse errors into the app, which would answer 500
    with a traceback; Werkzeug's ``BadRequest`` is answered by the app's error handler.
    The connection closes after the answer: where the next request starts is unknown.
    """

    def __init__(self, body: Any, continue_to: Any = None) -> None:
        self._body = body
        #: a client waiting for ``100 Continue`` before it sends the body: sent on first read
        self._continue_to = continue_to

    def read(self, size: int | None = None) -> bytes:
        data: bytes = self._checked(self._body.read, size)
        return data

    def readline(self, size: int | None = None) -> bytes:
        line: bytes = self._checked(self._body.readline, size)
        return line

    def readlines(self, hint: int | None = None) -> list[bytes]:
        lines: list[bytes] = self._checked(self._body.readlines, hint)
        return lines

    def __iter__(self) -> CheckedBody:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def _checked(self, read: Any, size: int | None) -> Any:
        if self._continue_to is not None:
            self._continue_to.sendall(CONTINUE)
            self._continue_to = None
        try:
            return read(size)
        except NoMoreData as e:
            raise ClientDisconnected("the client closed before its body ended") from e
        except MALFORMED as e:
            raise BadRequest(f"malformed request body: {e}") from e


def frame_request(data: bytes, cfg: Any, peer: Any = ("127.0.0.1", 0)) -> int | None:
    """Where the request at the start of *data* ends, all of *data* taken in at once.

    :returns: the offset just past the request, or ``None`` if it is incomplete.
    :raises MALFORMED: the request is malformed.
    """
    return RequestFramer(cfg, ReplayingSocket(None, data), peer).advance(data, last_try=True)
