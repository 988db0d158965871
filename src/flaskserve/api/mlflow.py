"""MLflow's scoring protocol: ``POST /invocations``, ``GET /ping``, ``GET /version``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from .. import dataplane
from ..codecs import mlflow
from ..errors import UnsupportedMediaType
from ..version import __version__
from .state import request_scope

bp = Blueprint("mlflow", __name__)

_JSON = ("application/json",)
_CSV = ("text/csv",)


@bp.post("/invocations")
def invocations() -> ResponseReturnValue:
    """Score the default model; the body's Content-Type picks JSON or CSV, as in MLflow."""
    environ, state = request_scope()
    call = dataplane.begin(environ, state)
    manifest = call.manifest
    max_rows = state.settings.max_rows
    content_type = request.mimetype
    if content_type in _CSV:
        rows = mlflow.decode_csv(call.body(), manifest, max_rows)
    elif content_type in _JSON or content_type.endswith("+json"):
        rows = mlflow.decode_json(call.body_json(), manifest, max_rows)
    else:
        shown = content_type or "none"
        raise UnsupportedMediaType(
            f"Content-Type {shown!r} is not accepted; send application/json or text/csv"
        )
    return jsonify(mlflow.encode_predictions(call.predict(rows)))


@bp.get("/ping")
def ping() -> ResponseReturnValue:
    """MLflow's liveness probe: 200 with an empty line, like MLflow's own server."""
    return Response("\n", mimetype="application/json")


@bp.get("/version")
def version() -> ResponseReturnValue:
    return Response(__version__, mimetype="text/plain")
