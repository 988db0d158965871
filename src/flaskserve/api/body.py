"""HTTP helpers of the prediction views: query flags and the compact JSON answer."""

from __future__ import annotations

from typing import Any

from flask import Response, request

from ..errors import InvalidInput
from ..json import COMPACT_ENCODER
from ..settings import parse_bool


def query_flags(environ: dict[str, Any], *names: str) -> tuple[bool, ...]:
    """Read boolean query parameters such as ``?proba=true``, each ``False`` when absent.

    :raises InvalidInput: a value is not a recognisable boolean.
    """
    if not environ.get("QUERY_STRING"):  # the common case: nothing to parse
        return (False,) * len(names)
    args = request.args
    return tuple(_flag(name, args.get(name)) for name in names)


def _flag(name: str, raw: str | None) -> bool:
    if raw is None or not raw.strip():  # absent, or ``?proba=``
        return False
    value = parse_bool(raw)
    if value is not None:
        return value
    raise InvalidInput(f"query parameter {name!r}: expected true or false, got {raw!r}")


def json_response(body: Any, status: int = 200) -> Response:
    """*body* as compact JSON and a newline, as ``jsonify`` writes it, with less work."""
    text = COMPACT_ENCODER.encode(body) + "\n"
    # flaskserve's app keeps Flask's response class: no proxy lookup to find it
    return Response(text, status=status, mimetype="application/json")
