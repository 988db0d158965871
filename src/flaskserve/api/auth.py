"""Bearer-token protection for the endpoints that change what is served."""

from __future__ import annotations

import hmac

from flask import request

from ..errors import Forbidden, Unauthorized
from .state import get_state


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
