"""Bearer-token protection for the endpoints that change what is served."""

from __future__ import annotations

import hmac

from flask import request

from ..errors import Forbidden, Unauthorized
from .state import ServerState, get_state


def require_admin() -> None:
    """Allow the request only if it bears the configured admin token.

    :raises Forbidden: no token is configured, so the endpoint is off.
    :raises Unauthorized: the token is missing or wrong (compared in constant time).
    """
    expected = get_state().settings.admin_token
    if expected is None:
        raise Forbidden("the repository API is off; set FLASKSERVE_ADMIN_TOKEN to turn it on")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        raise Unauthorized("a valid admin token is required: send 'Authorization: Bearer <token>'")


def require_api_key(state: ServerState | None = None) -> None:
    """When API keys are configured, allow only requests bearing one of them.

    Every configured key is compared, in constant time, so the time taken
    does not tell how much of a key was right; keys are never logged.

    :raises Unauthorized: keys are configured and none was presented, or a wrong one.
    """
    keys = (state if state is not None else get_state()).settings.api_key_list
    if not keys:
        return
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    presented = request.headers.get("X-API-Key") or (
        bearer.strip() if scheme.lower() == "bearer" else ""
    )
    matches = [hmac.compare_digest(presented.encode(), key.encode()) for key in keys]
    if not presented or not any(matches):
        raise Unauthorized(
            "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        )
