from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from flaskserve.codecs.jsonbody import _depth, parse_json
from flaskserve.errors import InvalidInput


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": 1}', {"a": 1}),
        (b"[1, 2.5]", [1, 2.5]),
        ('{"é": 1}'.encode("utf-16"), {"é": 1}),
        (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),
        # what orjson refuses, the standard library parses as it always did
        (b"[1180591620717411303424, -1180591620717411303424]", [2**70, -(2**70)]),
        # orjson reads these as floats; they stay ints, as the v2 integer datatypes need
        (b"[-9223372036854775809, 18446744073709551616]", [-(2**63) - 1, 2**64]),
        (b"[-9223372036854775808, 18446744073709551615]", [-(2**63), 2**64 - 1]),
        (b'["\\ud800"]', ["\ud800"]),
        (b"[1e400]", [float("inf")]),  # a number JSON allows; the decoders refuse it as a cell
    ],
    ids=[
        "object",
        "list",
        "utf-16",
        "utf-8-bom",
        "int-past-64-bits",
        "just-past-64-bits",
        "64-bit-limits",
        "lone-surrogate",
        "1e400",
    ],
)
def test_parses_strict_json(body: bytes, expected: object) -> None:
    parsed = parse_json(body)
    assert parsed == expected
    assert list(map(type, _flat(parsed))) == list(map(type, _flat(expected)))


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


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b"[" * 32 + b"]" * 32, 32),
    ],
)
def test_nesting_up_to_the_limit_is_accepted(body: bytes, depth: int) -> None:
    assert parse_json(body, max_depth=32) is not None
    assert _depth(parse_json(body)) == depth


@pytest.mark.parametrize(
    "body",
    [b"[" * 33 + b"]" * 33, b'{"a":' * 33 + b"1" + b"}" * 33, b"[" * 5000 + b"]" * 5000],
    ids=["arrays", "objects", "far-past-the-limit"],
)
def test_nesting_past_the_limit_is_a_client_error(body: bytes) -> None:
    with pytest.raises(InvalidInput, match=r"nested deeper than 32 levels|nested too deeply"):
        parse_json(body, max_depth=32)


def test_many_shallow_brackets_are_not_deep() -> None:
    rows = b"[" + b",".join([b'{"a": [1, 2]}'] * 5000) + b"]"
    assert len(parse_json(rows, max_depth=3)) == 5000


@pytest.mark.parametrize(
    "body",
    [
        b'[{"a": 1, "b": 2}, {"a": 1, "a": 2}]',
        b'{"inputs": [{"name": "x", "parameters": {"k": 1, "k": 2}}]}',
        b'{"a": {"b": [{"c": {"d": 1, "d": 2}}]}}',
        b'{"a": "x:y", "a": 1}',
        b'[[{"a": 1, "a": 1}]]',
    ],
    ids=["in-a-record", "three-levels-down", "deep", "colon-in-a-string", "inside-arrays"],
)
def test_a_repeated_key_is_found_at_any_depth(body: bytes) -> None:
    """The fast path trusts a body only when every colon is a key it counted."""
    with pytest.raises(InvalidInput, match="appears more than once"):
        parse_json(body)


def test_colons_in_strings_and_deep_objects_parse_as_written() -> None:
    body = b'{"time": "12:30:00", "inputs": [{"parameters": {"a": {"b": 1}}}]}'
    assert parse_json(body) == {
        "time": "12:30:00",
        "inputs": [{"parameters": {"a": {"b": 1}}}],
    }


def _flat(value: object) -> list[object]:
    if isinstance(value, dict):
        return [item for child in value.values() for item in _flat(child)]
    if isinstance(value, list):
        return [item for child in value for item in _flat(child)]
    return [value]


# orjson parses first: its numbers must be the standard library's, to the last bit and type


# derandomized, as tests/codecs/test_properties.py: every run tries the same numbers
NUMBERS = settings(max_examples=1000, derandomize=True, deadline=None)


@NUMBERS
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_parse_as_the_standard_library_does(x: float) -> None:
    body = json.dumps({"x": x, "row": [x, -x]}).encode()
    assert parse_json(body) == json.loads(body)


@NUMBERS
@example(9223372036854775809, 0, 0)  # found by this test: orjson read -2**63 - 1 as a float
@example(18446744073709551616, 0, 0)
@given(
    st.integers(min_value=0, max_value=10**25),
    st.integers(min_value=0, max_value=30),
    st.integers(min_value=-330, max_value=310),
)
def test_decimal_text_parses_as_the_standard_library_does(
    digits: int, point: int, exponent: int
) -> None:
    """Numbers as clients write them: long mantissas, any exponent, halfway cases."""
    mantissa = str(digits)
    if 0 < point < len(mantissa):  # the point *point* digits from the right
        mantissa = f"{mantissa[:-point]}.{mantissa[-point:]}"
    body = f"[{mantissa}e{exponent}, -{mantissa}, {mantissa}]".encode()
    parsed, expected = parse_json(body), json.loads(body)
    assert parsed == expected
    assert list(map(type, parsed)) == list(map(type, expected))
