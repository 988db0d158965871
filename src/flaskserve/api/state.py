"""Where the app keeps its models: ``app.extensions["flaskserve"]``."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g, request

from ..metrics import Metrics
from ..runtime.registry import ModelRegistry, ServedModel
from ..settings import Settings

EXTENSION_KEY = "flaskserve"
#: where a request records the model that answers it, for the response's headers
ANSWERED_BY = "flaskserve.answered_by"


@dataclass(frozen=True)
class ServerState:
    """The settings and the model registry of one app."""

    settings: Settings
    registry: ModelRegistry
    metrics: Metrics


def get_state() -> ServerState:
    state: ServerState = current_app.extensions[EXTENSION_KEY]
    return state


def get_model(name: str | None = None, version: str | None = None) -> ServedModel:
    """The model a request asked for; the default model when *name* is ``None``.

    :raises ModelNotFound: no such model or version (404).
    :raises ModelNotReady: it failed its checks or is unloaded (503).
    """
    return get_state().registry.snapshot.get(name, version)


def get_model_to_predict(name: str | None = None, version: str | None = None) -> ServedModel:
    """:func:`get_model` for a prediction: its time and status count in the model's statistics.

    Only a model that exists is named, so clients cannot mint metric labels.
    """
    model = get_model(name, version)
    g.flaskserve_model = model
    return model


def answered_by(model: ServedModel) -> None:
    """Say in the answer's ``X-Model-Name``/``X-Model-Version`` which model version answered.

    Called once the answer is ready: a refusal names no model version.
    """
    request.environ[ANSWERED_BY] = model
