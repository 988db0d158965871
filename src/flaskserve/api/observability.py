"""Request ids, model headers, metrics and a structured access log (never the payload).

All of it happens in a thin WSGI layer, not in Flask hooks: it sees every answer,
including those Flask builds for its own errors; appending to the header list
costs a fraction of Werkzeug's checked ``headers[...] = value``; and it reads
what it reports from the WSGI environ rather than through Flask's context-local
proxies (about a microsecond each), on a path that answers in a few hundred.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from ..dataplane import CALL, STATE, Call, ServerState
from ..monitoring import Observation, Observer
from ..runtime.registry import ServedModel
from .state import EXTENSION_KEY

access_logger = logging.getLogger("flaskserve.access")
logger = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def register_request_logging(app: Flask) -> None:
    """Give every request an id (the client's ``X-Request-ID`` if sane), count it, log it."""
    app.wsgi_app = RequestObserver(app.wsgi_app, app.extensions[EXTENSION_KEY])  # type: ignore[method-assign]


class RequestObserver:
    """WSGI middleware: start the clock, pick the request id, add the answer's headers, and
    record the answer in the metrics and the access log once its status is known.

    What it reports (the model asked for and the one that answered, the rows) the data
    plane leaves in the WSGI environ as the request's :class:`~flaskserve.dataplane.Call`,
    which this layer reads without going through Flask's context-local proxies.
    """

    def __init__(self, app: WSGIApp, state: ServerState) -> None:
        self._app = app
        self._state = state

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        environ[STATE] = self._state  # views find it here without a context-local lookup
        offered = environ.get("HTTP_X_REQUEST_ID")
        request_id = offered if offered and _REQUEST_ID.fullmatch(offered) else os.urandom(16).hex()
        observed = False

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal observed
            headers.append(("X-Request-ID", request_id))
            call: Call | None = environ.get(CALL)
            # an error after the model answered (its output failed a check) is not its answer
            answered = call.answered if call is not None and status < "4" else None
            if answered is not None:
                headers.append(("X-Model-Name", answered.name))
                headers.append(("X-Model-Version", str(answered.version)))
            if not observed:  # start_response may be called again, with exc_info
                observed = True
                self._observe(environ, int(status[:3]), time.perf_counter() - started, request_id)
            return start_response(status, headers, exc_info)

        try:
            return self._app(environ, start)
        finally:
            # The environ holds the request's Call and Werkzeug's Request, and both hold the
            # environ: without these keys, once answered, they are freed at once rather than
            # by the collector, whose passes the request threads pay for (performance.md).
            environ.pop(CALL, None)
            environ.pop("werkzeug.request", None)

    def _observe(
        self, environ: dict[str, Any], status: int, seconds: float, request_id: str
    ) -> None:
        # Flask's request, still in the environ while the answer starts
        request = environ.get("werkzeug.request")
        # the route's pattern, not the raw path: label values must stay few
        rule = getattr(request, "url_rule", None)
        endpoint = rule.rule if rule is not None else "unmatched"
        call: Call | None = environ.get(CALL)
        # only predictions are labelled with their model: metadata requests would skew its figures
        predicted = call.model.name if call is not None and call.predicting else ""
        # rows and the version gauge count answers only, not refusals
        answered: ServedModel | None = call.answered if call is not None and status < 400 else None
        self._state.metrics.record(
            endpoint,
            predicted,
            str(answered.version) if answered is not None else None,
            status,
            seconds,
            call.rows if call is not None and answered is not None else None,
        )
        if answered is not None and call is not None and self._state.observers:
            _tell_monitors(self._state.observers, call, answered, request_id, endpoint)
        if self._state.settings.access_log:
            record = {
                "request_id": request_id,
                "method": environ.get("REQUEST_METHOD"),
                "path": request.path if request is not None else environ.get("PATH_INFO"),
                "status": status,
                "ms": round(seconds * 1000, 3),
                "model": answered.name if answered is not None else None,
                "version": str(answered.version) if answered is not None else None,
            }
            access_logger.info(json.dumps(record))


def _tell_monitors(
    observers: tuple[Observer, ...], call: Call, model: ServedModel, request_id: str, endpoint: str
) -> None:
    if call.inputs is None or call.prediction is None:  # metadata: nothing predicted
        return
    seen = Observation(model, call.inputs, call.prediction, request_id, endpoint, time.time())
    for observer in observers:
        try:
            observer.observe(seen)
        except Exception:  # a monitor's failure must never reach the client
            logger.exception("monitor %s failed", type(observer).__name__)
