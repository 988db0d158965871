"""The tutorial's API: ``POST|PUT /predict`` answering ``{"result": [...]}``."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from ..codecs import records
from .auth import require_api_key
from .body import json_response, query_flags, read_json
from .state import answered_by, get_model_to_predict, request_scope

bp = Blueprint("predict", __name__)


@bp.route("/predict", methods=["POST", "PUT"])
@bp.route("/predict/<name>", methods=["POST", "PUT"])
def predict(name: str | None = None) -> ResponseReturnValue:
    """The default model (the highest version of it), or the model called *name*."""
    environ, state = request_scope()
    # called here, as the other surfaces do, not as a blueprint hook: Flask's hook
    # machinery cost 8k of this path's 650k instructions
    require_api_key(state)
    model = get_model_to_predict(environ, state, name)
    manifest = model.runtime.manifest
    proba, labels = query_flags(environ, "proba", "labels")
    if labels:
        records.require_classes(manifest)  # fail before decoding or predicting
    settings = state.settings
    rows = records.decode_rows(
        read_json(environ, settings), manifest.feature_names, settings.max_rows
    )
    prediction = model.runtime.predict(rows, proba=proba)
    body = records.encode_result(prediction, manifest, labels=labels)
    answered_by(environ, model, rows=len(rows))  # in headers: the body stays the tutorial's
    return json_response(body)
