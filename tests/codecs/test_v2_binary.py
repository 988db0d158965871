"""The binary tensor data extension: hand-built bodies, bad ones, and Hypothesis properties.

The layout is Triton's (``binary_data_size`` on an input, ``Inference-Header-Content-Length``
for the JSON's length; BYTES elements as a 4-byte little-endian length and the bytes), which
``tritonclient.http`` sends by default. Garbage of any kind must be the project's own 400
(or 413 for too many rows), never another exception, which Flask would answer with a 500.
"""

from __future__ import annotations

import json
import math
import struct
from functools import partial
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flaskserve.codecs.v2 import InferRequest, decode_infer_request, encode_infer_response
from flaskserve.codecs.v2_binary import (
    WIRE_DTYPES,
    decode_tensor,
    encode_binary_response,
    encode_tensor,
    split_body,
)
from flaskserve.codecs.v2_tensors import Tensor
from flaskserve.errors import InvalidInput, PayloadTooLarge
from flaskserve.runtime import Prediction
from flaskserve.schema import Table
from v2_examples import FRAME, IRIS, ROWS

PROPERTY = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
pytestmark = pytest.mark.no_cover  # as tests/codecs/test_properties.py: Hypothesis under coverage


def _text(*elements: str) -> bytes:
    """BYTES elements on the wire: each a uint32 little-endian length, then the bytes."""
    return b"".join(struct.pack("<I", len(e.encode())) + e.encode() for e in elements)


def _body(payload: dict[str, Any], *tensors: bytes) -> tuple[bytes, str]:
    """A binary request's body and its Inference-Header-Content-Length."""
    header = json.dumps(payload).encode()
    return header + b"".join(tensors), str(len(header))


def _decode(body: bytes, header: str | None, manifest: Any = FRAME) -> InferRequest:
    payload, binary = split_body(body, header, max_depth=64)
    return decode_infer_request(payload, manifest, 10, binary=binary)


def _binary_input(name: str, datatype: str, size: int, shape: list[int] | None = None) -> Any:
    return {
        "name": name,
        "shape": shape or [2],
        "datatype": datatype,
        "parameters": {"binary_data_size": size},
    }


# --- hand-built bodies ---


def test_bytes_as_the_research_notes_show_them() -> None:
    # ["ab", "c"] travels as binary_data_size 11: 02000000 61 62 01000000 63
    assert _text("ab", "c") == bytes.fromhex("02000000 6162 01000000 63")
    tensor = Tensor("city", (2,), "BYTES", [], 11)
    assert decode_tensor(tensor, _text("ab", "c")) == ["ab", "c"]


_AGES = np.array([39, 50], dtype="<i8").tobytes()
_CITIES = _text("Paris", "Lyon")
_INCOMES = np.array([np.nan, 2500.5], dtype="<f8").tobytes()


def _frame_request() -> tuple[bytes, str]:
    """The frame model's two rows: three inputs in binary, two as JSON, in a mixed order."""
    ages, cities, incomes = _AGES, _CITIES, _INCOMES
    payload = {
        "inputs": [
            _binary_input("age", "INT64", len(ages)),
            {"name": "street", "shape": [2, 1], "datatype": "BYTES", "data": ["Rue A", None]},
            _binary_input("city", "BYTES", len(cities), [2, 1]),
            _binary_input("income", "FP64", len(incomes)),
            {"name": "member", "shape": [2], "datatype": "BOOL", "data": [True, False]},
        ]
    }
    return _body(payload, ages, cities, incomes)


def test_a_binary_request_for_a_frame_model() -> None:
    rows = _decode(*_frame_request()).rows
    assert isinstance(rows, Table)
    assert rows.rows() == [
        [39, "Paris", "Rue A", None, True],
        [50, "Lyon", None, 2500.5, False],
    ]


def test_a_binary_request_for_a_matrix_model() -> None:
    raw = np.array(ROWS, dtype="<f4").tobytes()
    body, header = _body({"inputs": [_binary_input("input-0", "FP32", len(raw), [2, 4])]}, raw)
    rows = _decode(body, header, IRIS).rows
    np.testing.assert_array_equal(rows, np.array(ROWS, dtype=np.float32).astype(np.float64))


def test_bool_and_small_integers() -> None:
    assert decode_tensor(Tensor("m", (3,), "BOOL", [], 3), b"\x01\x00\x01") == [True, False, True]
    assert decode_tensor(Tensor("a", (2,), "INT8", [], 2), b"\xff\x07") == [-1, 7]
    assert decode_tensor(Tensor("a", (1,), "UINT16", [], 2), b"\x01\x02") == [0x0201]


def test_a_header_with_no_binary_data_is_plain_json() -> None:
    tensor = {"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": ROWS}
    raw = json.dumps({"inputs": [tensor]}).encode()
    for header in (str(len(raw)), None):
        np.testing.assert_array_equal(_decode(raw, header, IRIS).rows, ROWS)


def _with(index: int, **changes: Any) -> dict[str, Any]:
    """The frame request's JSON with input *index* changed (a key set to None is dropped)."""
    body, header = _frame_request()
    payload: dict[str, Any] = json.loads(body[: int(header)])
    tensor = payload["inputs"][index]
    tensor.update(changes)
    payload["inputs"][index] = {k: v for k, v in tensor.items() if v is not None}
    return payload


def _tail() -> bytes:
    body, header = _frame_request()
    return body[int(header) :]


BAD_BODIES: dict[str, tuple[bytes, str | None, str]] = {
    "header-negative": (b"{}", "-1", "Inference-Header-Content-Length: expected a number"),
    "header-text": (b"{}", "twelve", "expected a number of bytes, got 'twelve'"),
    "header-float": (b"{}", "1.5", "expected a number of bytes"),
    "header-huge": (b"{}", "9" * 40, "expected a number of bytes"),
    "header-past-the-end": (b"{}", "3", "3 is past the end of the 2-byte body"),
    "header-zero": (b"{}", "0", "empty body"),
    "header-cuts-the-json": (b'{"inputs": []}', "5", "invalid JSON"),
    "no-header": (_frame_request()[0], None, "invalid JSON"),
    "size-past-the-end": (
        *_body(_with(3, parameters={"binary_data_size": 24}), _tail()),
        "input 'income': binary_data_size 24 is past the end of the body: 16 byte(s)",
    ),
    "sizes-short-of-the-data": (
        *_body(_with(0), _tail(), b"\x00" * 8),
        "binary data after the JSON header (Inference-Header-Content-Length),"
        " but the inputs' binary_data_size add up to 49",
    ),
    "size-negative": (
        *_body(_with(0, parameters={"binary_data_size": -16}), _tail()),
        "input 'age': parameters.binary_data_size must be a non-negative integer of bytes,"
        " got number -16",
    ),
    "size-boolean": (
        *_body(_with(0, parameters={"binary_data_size": True}), _tail()),
        "got boolean true",
    ),
    "size-float": (
        *_body(_with(0, parameters={"binary_data_size": 16.0}), _tail()),
        "got number 16.0",
    ),
    "size-and-data": (
        *_body(_with(0, data=[1, 2]), _tail()),
        "input 'age': give 'data' or parameters.binary_data_size, not both",
    ),
    "fp64-bytes-for-the-shape": (
        *_body(_with(0, shape=[3]), _tail()),
        "input 'age': shape [3] of INT64 takes 24 bytes (8 each), got binary_data_size 16",
    ),
    "bytes-elements-for-the-shape": (
        *_body(
            _with(2, parameters={"binary_data_size": 25}),
            _AGES + _text("Paris", "Lyon", "Nice") + _INCOMES,
        ),
        "input 'city': shape [2, 1] needs 2 values, got 3",
    ),
    "bytes-for-a-number-feature": (
        *_body(
            _with(3, datatype="BYTES", parameters={"binary_data_size": 10}),
            _AGES + _CITIES + _text("1", "2"),
        ),
        "input 'income': datatype BYTES does not fit feature 'income'",
    ),
}


def _single_input_bodies() -> dict[str, tuple[bytes, str | None, str]]:
    """Bad tensors of one datatype each, in a request of their own."""
    cities = _binary_input("city", "BYTES", 0, [1])
    return {
        "fp32-not-a-multiple-of-4": (
            *_body({"inputs": [_binary_input("x", "FP32", 7, [2, 4])]}, b"\x00" * 7),
            "input 'x': shape [2, 4] of FP32 takes 32 bytes (4 each), got binary_data_size 7",
        ),
        "bool-byte-2": (
            *_body({"inputs": [_binary_input("member", "BOOL", 2)]}, b"\x01\x02"),
            "input 'member': element 1: a BOOL byte must be 0 or 1, got 2",
        ),
        "bytes-length-past-the-end": (
            *_body(
                {"inputs": [{**cities, "parameters": {"binary_data_size": 6}}]}, _text("Paris")[:6]
            ),
            "input 'city': BYTES element 0 (at byte 0): its length 5 is past the end of the"
            " tensor (2 byte(s) left)",
        ),
        "bytes-length-cut-short": (
            *_body(
                {"inputs": [{**cities, "parameters": {"binary_data_size": 11}}]},
                _text("Paris", "")[:11],
            ),
            "input 'city': BYTES element 1 (at byte 9): 2 byte(s) left,"
            " too few for its 4-byte length",
        ),
        "bytes-not-utf8": (
            *_body(
                {"inputs": [{**cities, "parameters": {"binary_data_size": 5}}]},
                b"\x01\x00\x00\x00\xff",
            ),
            "input 'city': BYTES element 0 (at byte 0): not UTF-8 text",
        ),
    }


@pytest.mark.parametrize(
    ("body", "header", "message"),
    [*BAD_BODIES.values(), *_single_input_bodies().values()],
    ids=[*BAD_BODIES, *_single_input_bodies()],
)
def test_bad_binary_bodies(body: bytes, header: str | None, message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        _decode(body, header)
    assert message in error.value.message


def test_a_nan_is_a_missing_cell_where_the_feature_may_be_missing() -> None:
    nan = np.array([np.nan], dtype="<f8").tobytes()
    tensor = Tensor("age", (1,), "FP64", [], 8)
    assert decode_tensor(tensor, nan) == [None]
    body, header = _body(_with(0, datatype="FP64"), _tail())
    body = body.replace(np.array([39, 50], dtype="<i8").tobytes(), nan + nan)
    with pytest.raises(InvalidInput, match="row 0: feature 'age': may not be missing"):
        _decode(body, header)


# --- responses ---


def _response(outputs: list[str], binary: frozenset[str]) -> tuple[bytes, int]:
    request = InferRequest(np.zeros((2, 4)), tuple(outputs), binary_outputs=binary)
    prediction = Prediction(np.array([2, 0]), np.array([[0.0, 0.25, 0.75], [1.0, 0.0, 0.0]]))
    body = encode_infer_response(prediction, request, IRIS, model_name="iris", model_version="1")
    return encode_binary_response(body, binary)


def test_binary_outputs_follow_the_json_in_order() -> None:
    data, length = _response(["label", "predict", "predict_proba"], frozenset({"label", "predict"}))
    header = json.loads(data[:length])
    assert header["outputs"] == [
        {
            "name": "label",
            "shape": [2],
            "datatype": "BYTES",
            "parameters": {"binary_data_size": 23},
        },
        {
            "name": "predict",
            "shape": [2],
            "datatype": "INT64",
            "parameters": {"binary_data_size": 16},
        },
        {
            "name": "predict_proba",
            "shape": [2, 3],
            "datatype": "FP64",
            "data": [0.0, 0.25, 0.75, 1.0, 0.0, 0.0],
        },
    ]
    assert data[length:] == _text("virginica", "setosa") + np.array([2, 0], "<i8").tobytes()


def test_binary_probabilities_are_exact() -> None:
    data, length = _response(["predict_proba"], frozenset({"predict_proba"}))
    np.testing.assert_array_equal(
        np.frombuffer(data[length:], "<f8"), [0.0, 0.25, 0.75, 1.0, 0.0, 0.0]
    )


@pytest.mark.parametrize(
    ("parameters", "outputs", "binary"),
    [
        ({"binary_data_output": True}, None, {"predict"}),
        ({"binary_data_output": False}, None, set()),
        (None, [{"name": "predict", "parameters": {"binary_data": True}}], {"predict"}),
        (
            {"binary_data_output": True},
            [{"name": "predict"}, {"name": "label", "parameters": {"binary_data": False}}],
            {"predict"},
        ),
        (None, [{"name": "predict"}, {"name": "predict_proba"}], set()),
    ],
    ids=["request-level", "request-level-off", "per-output", "per-output-wins", "none"],
)
def test_which_outputs_are_binary(
    parameters: dict[str, Any] | None, outputs: list[dict[str, Any]] | None, binary: set[str]
) -> None:
    payload: dict[str, Any] = {
        "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": ROWS}]
    }
    if parameters is not None:
        payload["parameters"] = parameters
    if outputs is not None:
        payload["outputs"] = outputs
    assert decode_infer_request(payload, IRIS, 10).binary_outputs == binary


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"parameters": {"binary_data_output": 1}},
            "request: parameters.binary_data_output must be true or false, got number 1",
        ),
        (
            {"outputs": [{"name": "predict", "parameters": {"binary_data": "yes"}}]},
            "output 'predict': parameters.binary_data must be true or false, got string 'yes'",
        ),
    ],
    ids=["request-level", "per-output"],
)
def test_binary_flags_must_be_booleans(payload: dict[str, Any], message: str) -> None:
    inputs = [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": ROWS}]
    with pytest.raises(InvalidInput) as error:
        decode_infer_request({"inputs": inputs, **payload}, IRIS, 10)
    assert error.value.message == message


# --- properties ---

DATATYPES = [*WIRE_DTYPES, "BYTES"]


@st.composite
def _tensors(draw: st.DrawFn) -> tuple[str, np.ndarray]:
    datatype = draw(st.sampled_from(DATATYPES))
    shape = draw(st.lists(st.integers(0, 4), min_size=1, max_size=3))
    if datatype == "BYTES":
        return datatype, np.array(
            draw(st.lists(st.text(), min_size=math.prod(shape), max_size=math.prod(shape))),
            dtype=object,
        ).reshape(shape)
    dtype: np.dtype[Any] = np.dtype(bool if datatype == "BOOL" else WIRE_DTYPES[datatype])
    return datatype, draw(arrays(dtype, tuple(shape)))


@PROPERTY
@given(_tensors())
def test_valid_tensors_round_trip(tensor: tuple[str, np.ndarray]) -> None:
    datatype, array = tensor
    raw = encode_tensor(datatype, array.ravel().tolist())
    decoded = decode_tensor(Tensor("t", array.shape, datatype, [], len(raw)), raw)
    expected = array.ravel().tolist()
    if array.dtype.kind == "f":  # a NaN is a missing cell
        expected = [None if math.isnan(v) else v for v in expected]
    assert decoded == expected


def _outcome(body: bytes, header: str | None, manifest: Any) -> None:
    try:
        rows = _decode(body, header, manifest).rows
    except (InvalidInput, PayloadTooLarge) as error:
        assert error.message.strip()
        return
    assert 1 <= len(rows) <= 10


@PROPERTY
@given(st.binary(max_size=256), st.integers(-2, 300).map(str) | st.text(max_size=6) | st.none())
def test_arbitrary_bodies_are_refused_cleanly(body: bytes, header: str | None) -> None:
    for manifest in (FRAME, IRIS):
        _outcome(body, header, manifest)


_SIZES = st.integers(-3, 80) | st.sampled_from([2**31, 2**64, 10**30, True, 1.5, "8", None])


@st.composite
def _binary_requests(draw: st.DrawFn) -> tuple[bytes, str]:
    inputs = []
    for name in draw(
        st.lists(st.sampled_from([*(f.name for f in FRAME.features), "x"]), max_size=6)
    ):
        shape = draw(st.lists(st.integers(0, 3), max_size=2) | st.just([2]))
        datatype = draw(st.sampled_from([*DATATYPES, "FP128"]))
        inputs.append(
            {
                "name": name,
                "shape": shape,
                "datatype": datatype,
                "parameters": {"binary_data_size": draw(_SIZES)},
            }
        )
    tail = draw(
        st.binary(max_size=96) | st.lists(st.text(max_size=5), max_size=4).map(lambda e: _text(*e))
    )
    body, header = _body({"inputs": inputs}, tail)
    return body, draw(st.just(header) | st.integers(0, len(body) + 2).map(str))


@PROPERTY
@given(_binary_requests())
def test_nearly_valid_binary_requests_are_refused_cleanly(request: tuple[bytes, str]) -> None:
    for manifest in (FRAME, IRIS):
        _outcome(*request, manifest)


@st.composite
def _frame_rows(draw: st.DrawFn) -> dict[str, list[Any]]:
    n = draw(st.integers(1, 10))
    column = partial(st.lists, min_size=n, max_size=n)
    return {
        "age": draw(column(st.integers(-(2**63), 2**63 - 1))),
        "city": draw(column(st.sampled_from(["Lyon", "Paris"]))),
        "street": draw(column(st.text())),
        "income": draw(column(st.floats(allow_nan=False, allow_infinity=False) | st.none())),
        "member": draw(column(st.booleans())),
    }


@PROPERTY
@given(_frame_rows())
def test_binary_and_json_requests_give_the_same_rows(columns: dict[str, list[Any]]) -> None:
    datatypes = {"age": "INT64", "city": "BYTES", "street": "BYTES", "income": "FP64"}
    n = len(columns["age"])
    raws = [
        encode_tensor(datatype, [math.nan if v is None else v for v in columns[name]])
        for name, datatype in datatypes.items()
    ]
    member = {"name": "member", "shape": [n], "datatype": "BOOL", "data": columns["member"]}
    inputs = [
        _binary_input(name, dt, len(raw), [n])
        for (name, dt), raw in zip(datatypes.items(), raws, strict=True)
    ]
    in_binary = _decode(*_body({"inputs": [*inputs, member]}, *raws)).rows
    as_json = [{**i, "data": columns[i["name"]], "parameters": {}} for i in inputs]
    in_json = _decode(json.dumps({"inputs": [*as_json, member]}).encode(), None).rows
    assert isinstance(in_binary, Table) and isinstance(in_json, Table)
    assert (
        in_binary.rows()
        == in_json.rows()
        == [list(row) for row in zip(*columns.values(), strict=True)]
    )
