"""The tutorial's API: ``POST|PUT /predict`` answering ``{"result": [...]}``."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from .. import dataplane
from ..codecs import records
from .body import json_response, query_flags
from .state import request_scope

bp = Blueprint("predict", __name__)


@bp.route("/predict", methods=["POST", "PUT"])
@bp.route("/predict/<name>", methods=["POST", "PUT"])
def predict(name: str | None = None) -> ResponseReturnValue:
    """The default model (the highest version of it), or the model called *name*."""
    environ, state = request_scope()
    call = dataplane.begin(environ, state, name)
    manifest = call.manifest
    proba, labels = query_flags(environ, "proba", "labels")
    if labels:
        records.require_classes(manifest)  # fail before decoding or predicting
    rows = records.decode_records(call.body_json(), manifest, state.settings.max_rows)
    prediction = call.predict(rows, proba=proba)
    # the model that answered goes in headers: the body stays the tutorial's
    return json_response(records.encode_result(prediction, manifest, labels=labels))
