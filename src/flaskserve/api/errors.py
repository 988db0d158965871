"""Every error, on every surface, as ``{"error": message}`` with its status."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from ..errors import FlaskServeError

logger = logging.getLogger(__name__)


def register_error_handlers(app: Flask) -> None:
    """Answer flaskserve's and Werkzeug's errors (404, 405, 413, 500...) in JSON."""
    app.register_error_handler(FlaskServeError, _handle_flaskserve_error)
    app.register_error_handler(HTTPException, _handle_http_exception)


def _handle_flaskserve_error(error: FlaskServeError) -> tuple[Response, int]:
    if error.status_code == 500:  # the model failed; 503s are reported by /ready
        logger.error("%s: %s", type(error).__name__, error.message)
    response = jsonify(error=error.message)
    response.headers.extend(error.headers)
    return response, int(error.status_code)


def _handle_http_exception(error: HTTPException) -> Response:
    # For an unhandled exception Flask has already logged the traceback and
    # passes InternalServerError here; its generic description leaks nothing.
    response = jsonify(error=_describe(error))
    response.status_code = error.code or 500
    for key, value in error.get_headers():
        if key.lower() != "content-type":  # keep the Allow header of a 405
            response.headers[key] = value
    return response


def _describe(error: HTTPException) -> str:
    if isinstance(error, MethodNotAllowed):
        allowed = ", ".join(sorted(set(error.valid_methods or ()) - {"OPTIONS", "HEAD"}))
        return f"method {request.method} is not allowed on {request.path}; use {allowed}"
    if isinstance(error, NotFound):
        return f"no such endpoint: {request.method} {request.path}"
    if isinstance(error, RequestEntityTooLarge):
        return f"the body is over the limit of {request.max_content_length} bytes"
    return error.description or error.name
