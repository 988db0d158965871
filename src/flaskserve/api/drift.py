"""``GET /model/<name>/drift``: each input column served against its training distribution."""

from __future__ import annotations

from http import HTTPStatus

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from .. import dataplane
from ..errors import FlaskServeError
from ..monitoring.drift import DriftMonitor
from .state import request_scope

bp = Blueprint("drift", __name__)


class DriftOff(FlaskServeError):
    """The server counts no drift: ``FLASKSERVE_DRIFT=0``."""

    status_code = HTTPStatus.NOT_FOUND


@bp.get("/model/<name>/drift")
def model_drift(name: str) -> ResponseReturnValue:
    """Per column, the population stability index of the rows served since start and in
    the recent window against the training rows, summed over all workers; the version
    answering, or ``?version=``."""
    environ, state = request_scope()
    served = dataplane.begin(environ, state, name, request.args.get("version"), predicting=False)
    monitor = next((o for o in state.observers if isinstance(o, DriftMonitor)), None)
    if monitor is None:
        raise DriftOff("drift monitoring is off (FLASKSERVE_DRIFT=0)")
    model = served.model
    return jsonify(monitor.report(model.name, model.version, model.runtime.manifest))
