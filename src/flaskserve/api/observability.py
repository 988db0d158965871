"""Request ids and a structured access log: one JSON line per request, never the payload."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from ..metrics import Metrics
from .state import get_state

access_logger = logging.getLogger("flaskserve.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def register_request_logging(app: Flask) -> None:
    """Give every request an id (the client's ``X-Request-ID`` if sane) and log it when asked."""
    app.before_request(_start)
    app.after_request(_finish)


def _start() -> None:
    g.flaskserve_started = time.perf_counter()
    offered = request.headers.get("X-Request-ID", "")
    g.request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex


def _finish(response: Response) -> Response:
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers["X-Request-ID"] = request_id
    state = get_state()
    started = g.get("flaskserve_started", time.perf_counter())
    _record(state.metrics, response, time.perf_counter() - started)
    if state.settings.access_log:
        record = {
            "request_id": request_id,
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "ms": round((time.perf_counter() - started) * 1000, 3),
            "model": response.headers.get("X-Model-Name"),
            "version": response.headers.get("X-Model-Version"),
        }
        access_logger.info(json.dumps(record))
    return response


def _record(metrics: Metrics, response: Response, seconds: float) -> None:
    # the route's pattern, not the raw path: label values must stay few
    endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
    # only predictions are labelled with their model: metadata requests would skew its figures
    model = g.get("flaskserve_model", "")
    version = response.headers.get("X-Model-Version")
    metrics.record(endpoint, model, version, response.status_code, seconds, g.get("rows_predicted"))
