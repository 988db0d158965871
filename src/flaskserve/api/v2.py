"""The Open Inference Protocol (KServe v2) over REST, as Triton and MLServer speak it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue

from .. import dataplane
from ..codecs import v2, v2_binary
from ..codecs.jsonbody import parse_json
from ..errors import InvalidInput
from ..runtime.registry import ServedModel, Snapshot
from ..version import __version__
from .auth import require_admin
from .state import get_state, request_scope

bp = Blueprint("v2", __name__, url_prefix="/v2")
_BINARY_HEADER = "HTTP_" + v2_binary.HEADER.upper().replace("-", "_")


@bp.get("")
def server_metadata() -> ResponseReturnValue:
    return jsonify(
        name="flaskserve",
        version=__version__,
        extensions=["model_repository", "binary_tensor_data"],
    )


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
    environ, state = request_scope()
    model = dataplane.begin(environ, state, name, version, predicting=False).describe()
    snapshot = state.registry.snapshot
    versions = [str(v) for v in sorted(snapshot.models.get(name, {}))]
    body = v2.encode_model_metadata(model.runtime.manifest, name=name, versions=versions)
    failures = {str(v): why for v, why in snapshot.failures_of(name).items()}
    if failures:  # a newer version that failed its checks shows here while the old one serves
        body.setdefault("parameters", {})["load_failures"] = failures
    return jsonify(body)


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> ResponseReturnValue:
    environ, state = request_scope()
    # 404 if unknown, 503 if not ready; it tells which models exist, so it needs a key
    model = dataplane.begin(environ, state, name, version, predicting=False).model
    return jsonify(name=name, version=str(model.version), ready=True)


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> ResponseReturnValue:
    environ, state = request_scope()
    call = dataplane.begin(environ, state, name, version)
    manifest = call.manifest
    # Triton's binary tensor data extension: this many bytes of JSON, then raw tensors
    payload, binary = v2_binary.split_body(
        call.body(), environ.get(_BINARY_HEADER), state.settings.max_json_depth
    )
    inputs = v2.decode_infer_request(payload, manifest, state.settings.max_rows, binary=binary)
    prediction = call.predict(inputs.rows, proba="predict_proba" in inputs.outputs)
    body = v2.encode_infer_response(
        prediction, inputs, manifest, model_name=name, model_version=str(call.model.version)
    )
    if not inputs.binary_outputs:
        return jsonify(body)
    data, header_length = v2_binary.encode_binary_response(body, inputs.binary_outputs)
    return Response(
        data,
        content_type="application/octet-stream",
        headers={v2_binary.HEADER: str(header_length)},
    )


@bp.post("/repository/index")
def repository_index() -> ResponseReturnValue:
    state = require_admin()
    options = _admin_options()
    rows = state.registry.refresh().statuses()
    if "ready" in options:
        rows = [r for r in rows if (r["state"] == "READY") == options["ready"]]
    return jsonify(rows)


@bp.post("/repository/models/<name>/load")
def repository_load(name: str) -> ResponseReturnValue:
    snapshot = require_admin().registry.set_unloaded(name, False)
    served: ServedModel = snapshot.get(name)  # 503 with the reason if it failed its checks
    return jsonify(name=name, version=str(served.version), state="READY")


@bp.post("/repository/models/<name>/unload")
def repository_unload(name: str) -> ResponseReturnValue:
    require_admin().registry.set_unloaded(name, True)
    return jsonify(name=name, state="UNLOADED")


def _snapshot() -> Snapshot:
    return get_state().registry.snapshot


def _admin_options() -> dict[str, Any]:
    environ, state = request_scope()
    body = dataplane.read_body(environ, state.settings.max_body_bytes)
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
