"""Request ids, model headers, metrics and a structured access log (never the payload).

The headers every answer carries are added by a thin WSGI layer, not by Flask
hooks: it sees every answer, including those Flask builds for its own errors,
and appending to the header list costs a fraction of Werkzeug's checked
``headers[...] = value`` on a path that answers in a few hundred microseconds.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, g, request

from ..runtime.registry import ServedModel
from .state import ANSWERED_BY, get_state

access_logger = logging.getLogger("flaskserve.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_STARTED = "flaskserve.started"
_REQUEST_ID_KEY = "flaskserve.request_id"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def register_request_logging(app: Flask) -> None:
    """Give every request an id (the client's ``X-Request-ID`` if sane), count it, log it."""
    app.wsgi_app = RequestHeaders(app.wsgi_app)  # type: ignore[method-assign]
    app.after_request(_finish)


class RequestHeaders:
    """WSGI middleware: start the clock, pick the request id, add the answer's headers."""

    def __init__(self, app: WSGIApp) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        environ[_STARTED] = time.perf_counter()
        offered = environ.get("HTTP_X_REQUEST_ID")
        request_id = offered if offered and _REQUEST_ID.fullmatch(offered) else os.urandom(16).hex()
        environ[_REQUEST_ID_KEY] = request_id

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append(("X-Request-ID", request_id))
            model = environ.get(ANSWERED_BY)
            if model is not None:
                headers.append(("X-Model-Name", model.name))
                headers.append(("X-Model-Version", str(model.version)))
            return start_response(status, headers, exc_info)

        return self._app(environ, start)


def _finish(response: Response) -> Response:
    environ = request.environ
    seconds = time.perf_counter() - environ.get(_STARTED, time.perf_counter())
    state = get_state()
    # the route's pattern, not the raw path: label values must stay few
    rule = request.url_rule
    endpoint = rule.rule if rule is not None else "unmatched"
    # only predictions are labelled with their model: metadata requests would skew its figures
    predicted: ServedModel | None = g.get("flaskserve_model")
    # rows and the version gauge count answers only, not refusals
    answered: ServedModel | None = environ.get(ANSWERED_BY)
    state.metrics.record(
        endpoint,
        predicted.name if predicted is not None else "",
        str(answered.version) if answered is not None else None,
        response.status_code,
        seconds,
        g.get("rows_predicted"),
    )
    if state.settings.access_log:
        record = {
            "request_id": environ.get(_REQUEST_ID_KEY),
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "ms": round(seconds * 1000, 3),
            "model": answered.name if answered is not None else None,
            "version": str(answered.version) if answered is not None else None,
        }
        access_logger.info(json.dumps(record))
    return response
