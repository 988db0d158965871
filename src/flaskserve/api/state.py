"""Where the app keeps its models: ``app.extensions["flaskserve"]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, request

from ..metrics import Metrics
from ..runtime.registry import ModelRegistry, ServedModel
from ..settings import Settings

EXTENSION_KEY = "flaskserve"
#: the app's ServerState, which the observing middleware leaves in each request's environ
STATE = "flaskserve.state"
# Where a request records, in its WSGI environ, what the observing middleware reports:
#: the model a prediction request asked for (its metrics are labelled with it)
PREDICTING = "flaskserve.predicting"
#: the model that answered, for the response's headers and the version metrics
ANSWERED_BY = "flaskserve.answered_by"
#: the rows it answered
ROWS_ANSWERED = "flaskserve.rows_answered"


@dataclass(frozen=True)
class ServerState:
    """The settings and the model registry of one app."""

    settings: Settings
    registry: ModelRegistry
    metrics: Metrics


def get_state() -> ServerState:
    state: ServerState = current_app.extensions[EXTENSION_KEY]
    return state


def request_scope() -> tuple[dict[str, Any], ServerState]:
    """This request's WSGI environ and the app's state, from one context-local lookup.

    Every use of Flask's ``request`` or ``current_app`` proxies costs about 10k
    instructions and a prediction made eight of them (641k -> 573k instructions
    per ``/predict`` once they went), so prediction views take both here once and
    pass them on.
    """
    environ: dict[str, Any] = request.environ
    state: ServerState | None = environ.get(STATE)
    return environ, state if state is not None else get_state()


def get_model(name: str | None = None, version: str | None = None) -> ServedModel:
    """The model a request asked for; the default model when *name* is ``None``.

    :raises ModelNotFound: no such model or version (404).
    :raises ModelNotReady: it failed its checks or is unloaded (503).
    """
    return get_state().registry.snapshot.get(name, version)


def get_model_to_predict(
    environ: dict[str, Any],
    state: ServerState,
    name: str | None = None,
    version: str | None = None,
) -> ServedModel:
    """:func:`get_model` for a prediction: its time and status count in the model's statistics.

    Only a model that exists is named, so clients cannot mint metric labels.
    """
    model = state.registry.snapshot.get(name, version)
    environ[PREDICTING] = model
    return model


def answered_by(environ: dict[str, Any], model: ServedModel, rows: int | None = None) -> None:
    """Say in the answer's ``X-Model-Name``/``X-Model-Version`` which model version answered.

    Called once the answer is ready: a refusal names no model version and counts no rows.

    :param rows: the rows predicted, for the metrics.
    """
    environ[ANSWERED_BY] = model
    if rows is not None:
        environ[ROWS_ANSWERED] = rows
