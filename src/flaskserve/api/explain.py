"""``POST /explain``: why the model answered what it did, row by row, exactly."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from .. import dataplane
from ..codecs import records
from ..codecs.explanations import encode_explanations
from .body import json_response, query_flags
from .state import request_scope

bp = Blueprint("explain", __name__)


@bp.post("/explain")
@bp.post("/explain/<name>")
def explain(name: str | None = None) -> ResponseReturnValue:
    """The body ``/predict`` takes; each row's prediction and exact contributions."""
    environ, state = request_scope()
    call = dataplane.begin(environ, state, name)
    manifest = call.manifest
    (all_classes,) = query_flags(environ, "all_classes")
    if all_classes:
        records.require_classes(manifest)
    rows = records.decode_records(call.body_json(), manifest, explain_row_limit(state))
    prediction, explanation = call.explain(rows)
    body = {
        "model_name": call.model.name,
        "model_version": str(call.model.version),
        "space": explanation.space,
        "explanations": encode_explanations(
            prediction, explanation, manifest, all_classes=all_classes
        ),
    }
    return json_response(body)


def explain_row_limit(state: dataplane.ServerState) -> int:
    """Rows one explanation request may hold: each costs more than a prediction."""
    return min(state.settings.max_rows, state.settings.max_explain_rows)
