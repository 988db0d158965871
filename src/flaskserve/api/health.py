"""Liveness, readiness and the served model's public metadata."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from ..artifact import ModelManifest
from .state import get_runtime, get_state

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> ResponseReturnValue:
    """The process is up and answering: restart it only if this fails."""
    return jsonify(status="alive")


@bp.get("/ready")
def ready() -> ResponseReturnValue:
    """200 once the model is loaded and verified; otherwise 503 with the reason."""
    state = get_state()
    if state.runtime is None:
        return jsonify(status="not ready", error=state.load_error or "model not loaded"), 503
    manifest = state.runtime.manifest
    return jsonify(status="ready", model=manifest.name, version=manifest.version)


@bp.get("/model")
def model() -> ResponseReturnValue:
    """The manifest, less what only the operator needs (hashes of files on disk)."""
    return jsonify(public_metadata(get_runtime().manifest))


def public_metadata(manifest: ModelManifest) -> dict[str, Any]:
    data = manifest.to_dict()
    for private in ("sha256", "model_file"):
        data.pop(private)
    return data
