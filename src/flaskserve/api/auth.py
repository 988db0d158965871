"""Who may call what: API keys for everything that reveals or uses a model, the admin token
for the repository API, and the few endpoints open to all.

The policy, decided once: with API keys configured, every endpoint needs one except
probes and scrapers, which must work without credentials (Kubernetes probes, a load
balancer's health check, Prometheus, MLflow's ``/ping``). ``/metrics`` is in that set:
it names the models and counts their traffic, so keep it on an internal network.
``tests/api/test_access.py`` walks every route of the app against this list.
"""

from __future__ import annotations

import hmac

from ..dataplane import authorize
from ..errors import Forbidden, Unauthorized
from .state import ServerState, request_scope

#: endpoints (Flask's names) that answer without an API key
OPEN_ENDPOINTS = frozenset(
    {
        "health.health",
        "health.ready",
        "health.metrics",
        "v2.server_metadata",
        "v2.live",
        "v2.ready",
        "mlflow.ping",
        "mlflow.version",
        # pages and files that are the same for everyone and hold no model data; what they
        # fetch (/openapi.json, the model's endpoints) needs the key
        "ui.static",
        "openapi.docs",
        "openapi.docs_asset",
    }
)
#: endpoints that need the admin token instead of an API key
ADMIN_ENDPOINTS = frozenset(
    {
        "v2.repository_index",
        "v2.repository_load",
        "v2.repository_unload",
        "shadow.start",
        "shadow.stop",
        "shadow.promote",
    }
)


def require_api_key() -> ServerState:
    """For views that use no model (pages, documents): check the key, return the state.

    Views that use a model call :func:`flaskserve.dataplane.begin`, which checks it too.

    :raises Unauthorized: keys are configured and none was presented, or a wrong one.
    """
    environ, state = request_scope()
    authorize(environ, state.settings)
    return state


def require_admin() -> ServerState:
    """Allow the request only if it bears the configured admin token.

    :raises Forbidden: no token is configured, so the endpoint is off.
    :raises Unauthorized: the token is missing or wrong (compared in constant time).
    """
    environ, state = request_scope()
    expected = state.settings.admin_token
    if expected is None:
        raise Forbidden("the repository API is off; set FLASKSERVE_ADMIN_TOKEN to turn it on")
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        raise Unauthorized("a valid admin token is required: send 'Authorization: Bearer <token>'")
    return state
