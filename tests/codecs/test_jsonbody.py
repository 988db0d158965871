from __future__ import annotations

import pytest

from flaskserve.codecs.jsonbody import parse_json
from flaskserve.errors import InvalidInput


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": 1}', {"a": 1}),
        (b"[1, 2.5]", [1, 2.5]),
        ('{"é": 1}'.encode("utf-16"), {"é": 1}),
        (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),
    ],
    ids=["object", "list", "utf-16", "utf-8-bom"],
)
def test_parses_strict_json(body: bytes, expected: object) -> None:
    assert parse_json(body) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (b"{", "invalid JSON"),
        (b"[NaN]", "NaN is not a number"),
        (b"[-Infinity]", "-Infinity is not a number"),
        (b'{"a": 1, "a": 2}', "key 'a' appears more than once"),
        (b"[" * 200_000, "nested too deeply"),
        (b"\xff", "invalid JSON"),
        (b"1" * 5000, "invalid JSON"),
    ],
    ids=[
        "empty",
        "truncated",
        "nan",
        "minus-infinity",
        "duplicate",
        "deep",
        "bad-utf8",
        "int-digits",
    ],
)
def test_refuses_with_a_clear_message(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        parse_json(body)
    assert info.value.status_code == 400
