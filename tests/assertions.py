"""Assertions shared by the API tests: the one error shape every surface answers with."""

from __future__ import annotations

from typing import Any

from werkzeug.test import TestResponse


def json_body(response: TestResponse) -> Any:
    body = response.get_json()
    assert body is not None, response.data[:300]
    return body


def assert_error(response: TestResponse, status: int, *says: str) -> str:
    """Check ``{"error": <message>}`` with *status*, each fragment of *says* in it; return it."""
    assert response.status_code == status, response.data[:300]
    assert response.content_type == "application/json"
    body = json_body(response)
    assert list(body) == ["error"]
    message = body["error"]
    assert isinstance(message, str) and message
    for fragment in says:
        assert fragment in message, message
    return message
