"""Where the app keeps its model: ``app.extensions["flaskserve"]``."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from ..errors import ModelNotReady
from ..runtime import Runtime
from ..settings import Settings

EXTENSION_KEY = "flaskserve"


@dataclass
class ServerState:
    """The settings, the runtime if loaded, and why it is not if it failed."""

    settings: Settings
    runtime: Runtime | None = None
    load_error: str | None = None


def get_state() -> ServerState:
    state: ServerState = current_app.extensions[EXTENSION_KEY]
    return state


def get_runtime() -> Runtime:
    """The served model's runtime.

    :raises ModelNotReady: the model failed to load; the message says why.
    """
    state = get_state()
    if state.runtime is None:
        raise ModelNotReady(f"the model is not ready: {state.load_error or 'not loaded'}")
    return state.runtime
