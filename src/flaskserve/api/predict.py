"""The tutorial's API: ``POST|PUT /predict`` answering ``{"result": [...]}``."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from ..codecs import records
from .body import query_flag, read_json
from .state import get_runtime, get_state

bp = Blueprint("predict", __name__)


@bp.route("/predict", methods=["POST", "PUT"])
def predict() -> ResponseReturnValue:
    runtime = get_runtime()
    manifest = runtime.manifest
    proba, labels = query_flag("proba"), query_flag("labels")
    if labels:
        records.require_classes(manifest)  # fail before decoding or predicting
    rows = records.decode_rows(read_json(), manifest.feature_names, get_state().settings.max_rows)
    prediction = runtime.predict(rows, proba=proba)
    return jsonify(records.encode_result(prediction, manifest, labels=labels))
