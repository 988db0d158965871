"""Parse an untrusted JSON body into Python values, or fail with a 400.

Stricter than ``json.loads``: ``NaN``/``Infinity`` and duplicate keys are
refused, and a nesting deep enough to exhaust the parser's recursion is a
client error rather than a crash (Werkzeug lets ``RecursionError`` become 500).
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from ..errors import InvalidInput


def parse_json(body: bytes) -> Any:
    """Decode *body* (UTF-8/16/32 JSON) into dicts, lists and scalars.

    :raises InvalidInput: empty, not JSON, nested too deeply, ``NaN``, duplicate keys.
    """
    if not body.strip():
        raise InvalidInput("empty body: expected a JSON document")
    try:
        return json.loads(body, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise InvalidInput("invalid JSON: nested too deeply") from None
    except UnicodeDecodeError as e:
        raise InvalidInput(f"invalid JSON: the body is not UTF-8 text ({e.reason})") from None
    except ValueError as e:  # JSONDecodeError, and ints longer than Python will convert
        raise InvalidInput(f"invalid JSON: {e}") from None


def _reject_constant(name: str) -> NoReturn:
    raise InvalidInput(f"invalid JSON: {name} is not a number in JSON (RFC 8259)")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InvalidInput(f"invalid JSON: key {duplicate!r} appears more than once in an object")
    return result
