"""Liveness, readiness and the served models' public metadata."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue

from .. import dataplane
from ..artifact import ModelManifest
from ..errors import FlaskServeError
from ..modelcard import describe_features
from ..runtime.registry import ServedModel
from .state import get_state, request_scope

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> ResponseReturnValue:
    """The process is up and answering: restart it only if this fails."""
    return jsonify(status="alive")


@bp.get("/ready")
def ready() -> ResponseReturnValue:
    """200 once the default model is loaded and checked; otherwise 503 with the reason."""
    try:
        model = get_state().registry.snapshot.get()
    except FlaskServeError as e:
        return jsonify(status="not ready", error=e.message), 503, {"Retry-After": "5"}
    return jsonify(status="ready", model=model.name, version=model.version)


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    """Prometheus metrics of every worker: requests, latency, rows, load failures, versions."""
    body, content_type = get_state().metrics.render()
    return Response(body, content_type=content_type)


@bp.get("/model")
@bp.get("/model/<name>")
def model(name: str | None = None) -> ResponseReturnValue:
    """The manifest, less what only the operator needs (hashes of files on disk), with
    each feature's type, whether it may be missing, its categories or range."""
    environ, state = request_scope()
    served = dataplane.begin(environ, state, name, predicting=False).describe()
    return jsonify(public_metadata(served))


@bp.get("/model/<name>/stats")
def model_stats(name: str) -> ResponseReturnValue:
    """Requests the model answered and its latency percentiles, summed over all workers."""
    environ, state = request_scope()
    served = dataplane.begin(environ, state, name, predicting=False).model
    return jsonify(state.metrics.model_stats(served.name))


def public_metadata(served: ServedModel) -> dict[str, Any]:
    data = _public_manifest(served.runtime.manifest)
    data["served_version"] = served.version
    data["runtime"] = served.runtime.kind
    return data


def _public_manifest(manifest: ModelManifest) -> dict[str, Any]:
    data = manifest.to_dict()
    for private in ("sha256", "model_file"):
        data.pop(private)
    data["features"] = describe_features(manifest.features)
    return data
