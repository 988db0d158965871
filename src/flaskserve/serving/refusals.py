"""What the server answers itself, before or instead of the app: JSON, as the app does.

gunicorn writes its refusals (a bad request line, a URI or a header too large, a
malformed chunk) as HTML pages; flaskserve's worker writes every one as
``{"error": message}`` with the status gunicorn chose and ``Connection: close``.
"""

from __future__ import annotations

import errno
import json
from http import HTTPStatus
from typing import Any

from gunicorn.http import errors
from werkzeug.exceptions import InternalServerError

#: gunicorn's errors for a malformed request (before gunicorn 27, its chunk errors were IOErrors)
MALFORMED = (
    errors.ParseException,
    errors.InvalidChunkSize,
    errors.ChunkMissingTerminator,
    errors.InvalidChunkExtension,
)
#: a client that went away: its answer has nobody to read it, which is no server error
_CLIENT_GONE = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN)
#: the statuses of gunicorn's refusals that are not a plain 400 (gunicorn's handle_error)
_STATUSES: tuple[tuple[type[Exception], HTTPStatus], ...] = (
    (errors.LimitRequestLine, HTTPStatus.REQUEST_URI_TOO_LONG),
    (errors.LimitRequestHeaders, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE),
    (errors.ExpectationFailed, HTTPStatus.EXPECTATION_FAILED),
    (errors.UnsupportedTransferCoding, HTTPStatus.NOT_IMPLEMENTED),
    (errors.ForbiddenProxyRequest, HTTPStatus.FORBIDDEN),
)
#: gunicorn's errors that are the server's fault, not the client's (gunicorn 27 has the last two)
_SERVER_FAULTS = tuple(
    getattr(errors, name)
    for name in ("ConfigurationProblem", "InvalidResponseHeader", "InvalidResponseHeaderName")
    if hasattr(errors, name)
)


class MissingHost(errors.ParseException):  # type: ignore[misc]  # gunicorn ships no types
    """An HTTP/1.1 request without a ``Host`` header (RFC 9112 3.2: answered 400)."""

    def __str__(self) -> str:
        return "an HTTP/1.1 request must have a Host header"


def check_host(request: Any) -> None:
    """:raises MissingHost: an HTTP/1.1 *request* has no ``Host`` (HTTP/1.0 needs none)."""
    if request.version >= (1, 1) and all(name != "HOST" for name, _ in request.headers):
        raise MissingHost()


def is_client_error(exc: BaseException) -> bool:
    """Whether *exc* is the client's doing (a malformed request), not the server's."""
    return isinstance(exc, MALFORMED) and not isinstance(exc, _SERVER_FAULTS)


def describe_error(exc: BaseException) -> tuple[HTTPStatus, str]:
    """The status and message that answer *exc*, raised while reading or answering a request.

    A client's error (:data:`MALFORMED`) keeps gunicorn's status and says
    what arrived; anything else is a 500 that says no more than the app's 500 does.
    """
    if not is_client_error(exc):
        return HTTPStatus.INTERNAL_SERVER_ERROR, str(InternalServerError.description)
    status = next((s for kind, s in _STATUSES if isinstance(exc, kind)), HTTPStatus.BAD_REQUEST)
    if isinstance(exc, errors.LimitRequestHeaders):
        return status, f"request header fields too large: {exc}"
    if isinstance(exc, errors.InvalidHeader) and _length_and_chunked(getattr(exc, "req", None)):
        return status, (
            "Content-Length and Transfer-Encoding together: where the body ends is"
            " ambiguous (RFC 9112 6.3)"
        )
    return status, str(exc)


def _length_and_chunked(request: Any) -> bool:
    names = {name for name, _ in getattr(request, "headers", ())}
    return {"CONTENT-LENGTH", "TRANSFER-ENCODING"} <= names


def error_response(status: HTTPStatus, message: str) -> bytes:
    """A whole HTTP/1.1 response: *status*, ``{"error": message}``, and ``Connection: close``."""
    body = json.dumps({"error": message}, separators=(",", ":")) + "\n"  # ASCII: \u escapes
    return (
        f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: application/json\r\n"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode("ascii")


def answer_error(log: Any, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
    """Answer *exc*, raised reading or answering *req*, on *client*: gunicorn's ``handle_error``.

    A client's error (a malformed request) costs one warning line; anything else is
    the server's, logged with its traceback and answered 500. A client that went
    away gets nothing, and a line at debug level only.
    """
    if client_gone(exc):
        log.debug("Client went away: %s", exc)
        return
    status, message = describe_error(exc)
    if is_client_error(exc):
        peer = addr[0] if isinstance(addr, tuple) else addr
        log.warning("Invalid request from ip=%s: %s", peer, message)
    else:
        what = f"{req.method} {req.uri}" if req is not None else "(no request read)"
        log.error("Error handling request %s", what, exc_info=exc)
    try:
        client.sendall(error_response(status, message))
    except OSError:
        log.debug("Failed to send error message.")


def client_gone(exc: BaseException) -> bool:
    """Whether *exc* says the client went away (its answer has nobody to read it)."""
    return isinstance(exc, OSError) and exc.errno in _CLIENT_GONE
