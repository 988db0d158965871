"""MLflow's scoring protocol: ``POST /invocations``, ``GET /ping``, ``GET /version``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from .. import __version__
from ..codecs import mlflow
from ..errors import UnsupportedMediaType
from .auth import require_api_key
from .body import read_body, read_json
from .state import answered_by, get_model_to_predict, request_scope

bp = Blueprint("mlflow", __name__)

_JSON = ("application/json",)
_CSV = ("text/csv",)


@bp.post("/invocations")
def invocations() -> ResponseReturnValue:
    """Score the default model; the body's Content-Type picks JSON or CSV, as in MLflow."""
    environ, state = request_scope()
    require_api_key(state)
    model = get_model_to_predict(environ, state)
    names = model.runtime.manifest.feature_names
    settings = state.settings
    content_type = request.mimetype
    if content_type in _CSV:
        rows = mlflow.decode_csv(read_body(environ, settings), names, settings.max_rows)
    elif content_type in _JSON or content_type.endswith("+json"):
        rows = mlflow.decode_json(read_json(environ, settings), names, settings.max_rows)
    else:
        shown = content_type or "none"
        raise UnsupportedMediaType(
            f"Content-Type {shown!r} is not accepted; send application/json or text/csv"
        )
    prediction = model.runtime.predict(rows)
    answered_by(environ, model, rows=len(rows))
    return jsonify(mlflow.encode_predictions(prediction))


@bp.get("/ping")
def ping() -> ResponseReturnValue:
    """MLflow's liveness probe: 200 with an empty line, like MLflow's own server."""
    return Response("\n", mimetype="application/json")


@bp.get("/version")
def version() -> ResponseReturnValue:
    return Response(__version__, mimetype="text/plain")
