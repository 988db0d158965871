"""Assertions shared by the tests: the one error shape every surface answers with, and the
one-line refusal of every command."""

from __future__ import annotations

from typing import Any

from click.testing import Result
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


def assert_refused(result: Result, *fragments: str) -> None:
    """Exit 2, one ``Error:`` line naming *fragments*, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
