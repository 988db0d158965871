"""The Open Inference Protocol (KServe v2) over REST, as Triton and MLServer speak it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from .. import __version__
from ..codecs import v2
from ..codecs.jsonbody import parse_json
from ..errors import InvalidInput
from ..runtime.registry import ServedModel, Snapshot
from .auth import require_admin, require_api_key
from .body import read_body, read_json
from .state import answered_by, get_model, get_model_to_predict, get_state, request_scope

bp = Blueprint("v2", __name__, url_prefix="/v2")


@bp.get("")
def server_metadata() -> ResponseReturnValue:
    return jsonify(name="flaskserve", version=__version__, extensions=["model_repository"])


@bp.get("/health/live")
def live() -> ResponseReturnValue:
    return jsonify(live=True)


@bp.get("/health/ready")
def ready() -> ResponseReturnValue:
    """Ready when every model in the repository has a version serving."""
    is_ready = _snapshot().ready
    return jsonify(ready=is_ready), 200 if is_ready else 503


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> ResponseReturnValue:
    require_api_key()
    model = get_model(name, version)
    snapshot = _snapshot()
    versions = [str(v) for v in sorted(snapshot.models.get(name, {}))]
    body = v2.encode_model_metadata(model.runtime.manifest, name=name, versions=versions)
    failures = {str(v): why for (n, v), why in snapshot.failures.items() if n == name}
    if failures:  # a newer version that failed its checks shows here while the old one serves
        body.setdefault("parameters", {})["load_failures"] = failures
    answered_by(request.environ, model)
    return jsonify(body)


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> ResponseReturnValue:
    model = get_model(name, version)  # 404 if unknown, 503 if not ready
    return jsonify(name=name, version=str(model.version), ready=True)


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> ResponseReturnValue:
    environ, state = request_scope()
    require_api_key(state)
    model = get_model_to_predict(environ, state, name, version)
    manifest = model.runtime.manifest
    settings = state.settings
    inputs = v2.decode_infer_request(read_json(environ, settings), manifest, settings.max_rows)
    prediction = model.runtime.predict(inputs.rows, proba="predict_proba" in inputs.outputs)
    body = v2.encode_infer_response(
        prediction, inputs, manifest, model_name=name, model_version=str(model.version)
    )
    answered_by(environ, model, rows=len(inputs.rows))
    return jsonify(body)


@bp.post("/repository/index")
def repository_index() -> ResponseReturnValue:
    require_admin()
    options = _admin_options()
    rows = get_state().registry.refresh().statuses()
    if "ready" in options:
        rows = [r for r in rows if (r["state"] == "READY") == options["ready"]]
    return jsonify(rows)


@bp.post("/repository/models/<name>/load")
def repository_load(name: str) -> ResponseReturnValue:
    require_admin()
    snapshot = get_state().registry.set_unloaded(name, False)
    served: ServedModel = snapshot.get(name)  # 503 with the reason if it failed its checks
    return jsonify(name=name, version=str(served.version), state="READY")


@bp.post("/repository/models/<name>/unload")
def repository_unload(name: str) -> ResponseReturnValue:
    require_admin()
    get_state().registry.set_unloaded(name, True)
    return jsonify(name=name, state="UNLOADED")


def _snapshot() -> Snapshot:
    return get_state().registry.snapshot


def _admin_options() -> dict[str, Any]:
    environ, state = request_scope()
    body = read_body(environ, state.settings)
    if not body.strip():
        return {}
    options = parse_json(body, state.settings.max_json_depth)
    if not isinstance(options, dict):
        raise InvalidInput('expected a JSON object of options, such as {"ready": true}')
    unknown = sorted(set(options) - {"ready", "repository_name"})
    if unknown:
        raise InvalidInput(f"unknown option(s): {', '.join(unknown)}")
    if "ready" in options and not isinstance(options["ready"], bool):
        raise InvalidInput("option 'ready': expected true or false")
    return options
