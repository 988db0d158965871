"""Shadow challengers over HTTP: the comparison report (API key) and the admin API
(admin token) that starts, stops and promotes a challenger (docs/monitoring.md)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from .. import dataplane
from ..codecs.jsonbody import parse_json
from ..errors import InvalidInput
from ..monitoring.shadow import ShadowObserver
from ..monitoring.shadow_control import promote_shadow, start_shadow, stop_shadow
from ..monitoring.shadow_report import ShadowTally, TallyKey, build_report, read_tallies
from ..runtime.registry import validate_name
from .auth import require_admin, require_api_key
from .state import ServerState, request_scope

bp = Blueprint("shadow", __name__)
_ADMIN = "/v2/repository/models/<name>/shadow"


@bp.get("/model/<name>/shadow")
def report(name: str) -> ResponseReturnValue:
    """How the challenger compares with the champion so far, summed over all workers."""
    state = require_api_key()
    snapshot = state.registry.snapshot
    champion = snapshot.get(name)  # 404/503 as for the model itself
    found = snapshot.challenger(champion.name)
    tally: ShadowTally | None = None
    workers = 0
    if found is not None:
        tally, workers = _tally(state, (found[0].name, found[0].version, found[1].started))
    return jsonify(build_report(snapshot, name, tally, workers))


@bp.post(_ADMIN)
def start(name: str) -> ResponseReturnValue:
    """Start (or replace) *name*'s challenger: ``{"version": 2, "fraction": 0.5}``."""
    state = require_admin()
    options = _options(state)
    snapshot = start_shadow(state.registry, name, options.get("version"), options.get("fraction"))
    plan = snapshot.routing.shadows[name]
    return jsonify(name=name, version=str(plan.version), fraction=plan.fraction, state="SHADOW")


@bp.post(f"{_ADMIN}/stop")
def stop(name: str) -> ResponseReturnValue:
    validate_name(name)
    stop_shadow(require_admin().registry, name)
    return jsonify(name=name, state="STOPPED")


@bp.post(f"{_ADMIN}/promote")
def promote(name: str) -> ResponseReturnValue:
    validate_name(name)
    served = promote_shadow(require_admin().registry, name)
    return jsonify(name=name, version=str(served.version), state="READY")


def _tally(state: ServerState, key: TallyKey) -> tuple[ShadowTally | None, int]:
    """The tallies of *key*: this process's shadow's, or every monitor process's files."""
    observer = next((o for o in state.observers if isinstance(o, ShadowObserver)), None)
    if observer is not None:
        return observer.report_tally(key)
    if state.settings.state_dir is not None:  # the shadow runs in each worker's monitor process
        return read_tallies(state.settings.state_dir, key)
    return None, 0


def _options(state: ServerState) -> dict[str, Any]:
    environ, _ = request_scope()
    body = dataplane.read_body(environ, state.settings.max_body_bytes)
    options = parse_json(body, state.settings.max_json_depth) if body.strip() else None
    if not isinstance(options, dict) or "version" not in options:
        raise InvalidInput('expected a JSON object such as {"version": 2, "fraction": 0.5}')
    unknown = sorted(set(options) - {"version", "fraction"})
    if unknown:
        raise InvalidInput(f"unknown option(s): {', '.join(unknown)}")
    return options
