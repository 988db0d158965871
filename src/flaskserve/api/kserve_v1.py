"""KServe's V1 protocol, where KServe clients look for predictions and explanations.

``GET /v1/models``, ``GET /v1/models/<name>`` (readiness), ``POST
/v1/models/<name>:predict`` (``{"instances": [...]}`` or ``{"inputs": [...]}``, rows
as arrays in feature order or as objects, answered ``{"predictions": [...]}``) and
``POST /v1/models/<name>:explain`` (the same body; ``{"predictions", "explanations"}``
with :mod:`flaskserve.codecs.explanations`' rows). Errors are ``{"error": "..."}``,
as KServe's own server answers them.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from .. import dataplane
from ..codecs import records
from ..codecs.explanations import encode_explanations
from ..errors import InvalidInput
from ..schema import describe
from .body import json_response
from .explain import explain_row_limit
from .state import request_scope

bp = Blueprint("kserve_v1", __name__, url_prefix="/v1")


@bp.get("/models")
def models() -> ResponseReturnValue:
    environ, state = request_scope()
    dataplane.authorize(environ, state.settings)
    return json_response({"models": sorted(state.registry.snapshot.models)})


@bp.get("/models/<name>")
def model_ready(name: str) -> ResponseReturnValue:
    environ, state = request_scope()
    model = dataplane.begin(environ, state, name, predicting=False).describe()
    return json_response({"name": model.name, "ready": True})


@bp.post("/models/<name>:predict")
def predict(name: str) -> ResponseReturnValue:
    environ, state = request_scope()
    call = dataplane.begin(environ, state, name)
    instances = _instances(call.body_json())
    rows = records.decode_records(instances, call.manifest, state.settings.max_rows)
    return json_response({"predictions": call.predict(rows).predictions.tolist()})


@bp.post("/models/<name>:explain")
def explain(name: str) -> ResponseReturnValue:
    environ, state = request_scope()
    call = dataplane.begin(environ, state, name)
    instances = _instances(call.body_json())
    rows = records.decode_records(instances, call.manifest, explain_row_limit(state))
    prediction, explanation = call.explain(rows)
    return json_response(
        {
            "predictions": prediction.predictions.tolist(),
            "explanations": encode_explanations(
                prediction, explanation, call.manifest, all_classes=False
            ),
        }
    )


def _instances(payload: Any) -> list[Any]:
    """The rows of a V1 body: ``inputs`` if given (KServe's rule), else ``instances``."""
    if not isinstance(payload, dict):
        raise InvalidInput(f"expected a JSON object with 'instances', got {describe(payload)}")
    key = "inputs" if "inputs" in payload else "instances"
    if key not in payload:
        raise InvalidInput("expected a JSON object with 'instances' (or 'inputs')")
    rows = payload[key]
    if not isinstance(rows, list):
        raise InvalidInput(f"{key!r}: expected a list of rows, got {describe(rows)}")
    return rows
