"""Parse an untrusted JSON body into Python values, or fail with a 400.

Stricter than ``json.loads``: ``NaN``/``Infinity`` and duplicate keys are
refused, and a nesting deep enough to exhaust the parser's recursion is a
client error rather than a crash (Werkzeug lets ``RecursionError`` become 500).
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from ..errors import InvalidInput

DEFAULT_MAX_DEPTH = 32


def parse_json(body: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Decode *body* (UTF-8/16/32 JSON) into dicts, lists and scalars.

    :param max_depth: the most arrays and objects one value may sit inside (a v2
        tensor needs at most one level per dimension, plus two).
    :raises InvalidInput: empty, not JSON, nested deeper than *max_depth*, ``NaN``,
        duplicate keys.
    """
    if not body.strip():
        raise InvalidInput("empty body: expected a JSON document")
    try:
        # what json.loads does with bytes, with a decoder built once instead of per call
        value = _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except RecursionError:
        raise InvalidInput("invalid JSON: nested too deeply") from None
    except UnicodeDecodeError as e:
        raise InvalidInput(f"invalid JSON: the body is not UTF-8 text ({e.reason})") from None
    except ValueError as e:  # JSONDecodeError, and ints longer than Python will convert
        raise InvalidInput(f"invalid JSON: {e}") from None
    # brackets are counted in C; only a body with more of them than the limit is walked
    if body.count(b"[") + body.count(b"{") > max_depth and _depth(value) > max_depth:
        raise InvalidInput(f"invalid JSON: nested deeper than {max_depth} levels")
    return value


def _depth(value: Any) -> int:
    """How many arrays and objects the deepest value sits inside, found without recursion."""
    deepest = 0
    stack = [(value, 1)] if isinstance(value, list | dict) else []
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, level + 1) for child in children if isinstance(child, list | dict))
    return deepest


def _reject_constant(name: str) -> NoReturn:
    raise InvalidInput(f"invalid JSON: {name} is not a number in JSON (RFC 8259)")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InvalidInput(f"invalid JSON: key {duplicate!r} appears more than once in an object")
    return result


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
