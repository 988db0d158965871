"""Read a request body within the configured limits."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from werkzeug.wsgi import get_content_length

from ..codecs.jsonbody import parse_json
from ..errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from ..json import COMPACT_ENCODER
from ..settings import Settings

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def read_body(environ: dict[str, Any], settings: Settings) -> bytes:
    """The raw body, within the ``max_body_bytes`` limit, uncompressed (see :func:`_read_body`)."""
    return _read_body(environ, settings.max_body_bytes)


def read_json(environ: dict[str, Any], settings: Settings) -> Any:
    """Parse the body as JSON whatever its Content-Type, like the tutorial's ``force=True``.

    :raises InvalidInput: the body is not strict JSON (and see :func:`_read_body`).
    """
    return parse_json(_read_body(environ, settings.max_body_bytes), settings.max_json_depth)


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The raw body, within *limit* bytes, uncompressed.

    The size limit is ``max_body_bytes`` (Flask's ``MAX_CONTENT_LENGTH`` too).
    Werkzeug raises 413 for a declared length over it, but silently truncates
    a chunked body at the limit, so a chunked body that fills the limit is
    refused here. The environ is read directly: this runs on every prediction.

    :raises UnsupportedMediaType: a compressed body (no decompression bombs).
    :raises PayloadTooLarge: the body is over the limit.
    """
    encoding = environ.get("HTTP_CONTENT_ENCODING")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding.strip().lower()!r} is not accepted;"
            " send the body uncompressed"
        )
    length = get_content_length(environ)
    if length is not None:  # the hot path: read exactly what was declared, no stream wrappers
        if length > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
        body: bytes = environ["wsgi.input"].read(length) if length else b""
        return body
    body = request.get_data(cache=False)  # chunked: Werkzeug stops reading at the limit
    if len(body) >= limit:
        raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
    return body


def query_flags(environ: dict[str, Any], *names: str) -> tuple[bool, ...]:
    """Read boolean query parameters such as ``?proba=true``, each ``False`` when absent.

    :raises InvalidInput: a value is not a recognisable boolean.
    """
    if not environ.get("QUERY_STRING"):  # the common case: nothing to parse
        return (False,) * len(names)
    args = request.args
    return tuple(_flag(name, args.get(name)) for name in names)


def _flag(name: str, raw: str | None) -> bool:
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidInput(f"query parameter {name!r}: expected true or false, got {raw!r}")


def json_response(body: Any, status: int = 200) -> Response:
    """*body* as compact JSON and a newline, as ``jsonify`` writes it, with less work."""
    text = COMPACT_ENCODER.encode(body) + "\n"
    # flaskserve's app keeps Flask's response class: no proxy lookup to find it
    return Response(text, status=status, mimetype="application/json")
