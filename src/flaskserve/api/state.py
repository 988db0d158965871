"""Where the app keeps its state: ``app.extensions["flaskserve"]``."""

from __future__ import annotations

from typing import Any

from flask import current_app, request

from ..dataplane import STATE, ServerState

EXTENSION_KEY = "flaskserve"

__all__ = ["EXTENSION_KEY", "ServerState", "get_state", "request_scope"]


def get_state() -> ServerState:
    state: ServerState = current_app.extensions[EXTENSION_KEY]
    return state


def request_scope() -> tuple[dict[str, Any], ServerState]:
    """This request's WSGI environ and the app's state, from one context-local lookup.

    Every use of Flask's ``request`` or ``current_app`` proxies costs about 10k
    instructions, so views take both here once and pass them on. The observing
    middleware leaves the state in the environ; a bare request context (a test)
    finds it through Flask.
    """
    environ: dict[str, Any] = request.environ
    state: ServerState | None = environ.get(STATE)
    return environ, state if state is not None else get_state()
