"""Read a request body within the configured limits."""

from __future__ import annotations

from typing import Any

from flask import request

from ..codecs.jsonbody import parse_json
from ..errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def read_body() -> bytes:
    """The raw body, within the size limit, uncompressed.

    The size limit is Flask's ``MAX_CONTENT_LENGTH``. Werkzeug raises 413 for a
    declared length over it, but silently truncates a chunked body at the limit,
    so a chunked body that fills the limit is refused here.

    :raises UnsupportedMediaType: a compressed body (no decompression bombs).
    :raises PayloadTooLarge: the body is over the limit.
    """
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not accepted; send the body uncompressed"
        )
    body = request.get_data(cache=False)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(body) >= limit:
        raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
    return body


def read_json() -> Any:
    """Parse the body as JSON whatever its Content-Type, like the tutorial's ``force=True``.

    :raises InvalidInput: the body is not strict JSON (and see :func:`read_body`).
    """
    return parse_json(read_body())


def query_flag(name: str) -> bool:
    """Read a boolean query parameter such as ``?proba=true``.

    :raises InvalidInput: the value is not a recognisable boolean.
    """
    raw = request.args.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidInput(f"query parameter {name!r}: expected true or false, got {raw!r}")
