from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from flaskserve.artifact import Feature, ModelManifest
from flaskserve.codecs.jsonbody import parse_json
from flaskserve.codecs.v2 import (
    OUTPUT_NAMES,
    InferRequest,
    decode_infer_request,
    encode_infer_response,
    encode_model_metadata,
)
from flaskserve.errors import InvalidInput, PayloadTooLarge
from flaskserve.runtime import Prediction

NAMES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
ROWS = [[5.9, 3.0, 5.1, 1.8], [5.0, 3.5, 1.4, 0.2]]
_DROP = object()  # a key to leave out of _input/_request


def _manifest(
    task: str = "classification",
    labels: tuple[Any, ...] = (0, 1, 2),
    class_names: tuple[str, ...] = ("setosa", "versicolor", "virginica"),
) -> ModelManifest:
    classifier = task == "classification"
    return ModelManifest(
        name="iris",
        version=1,
        task=task,
        estimator="x",
        features=tuple(Feature(n, "float64", 0.1, 7.9) for n in NAMES),
        sha256="0" * 64,
        created="now",
        labels=labels if classifier else (),
        class_names=class_names if classifier else (),
    )


IRIS = _manifest()
REGRESSION = _manifest("regression")


def _input(**changes: Any) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": ROWS}
    tensor.update(changes)
    return {k: v for k, v in tensor.items() if v is not _DROP}


def _request(*inputs: dict[str, Any], **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"inputs": list(inputs) or [_input()]}
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not _DROP}


def _columns(shape: list[int] | None = None) -> list[dict[str, Any]]:
    """One input per feature, in manifest order."""
    return [
        {"name": name, "shape": shape or [2], "datatype": "FP64", "data": [r[i] for r in ROWS]}
        for i, name in enumerate(NAMES)
    ]


def _decode(payload: Any, manifest: ModelManifest = IRIS, max_rows: int = 10) -> InferRequest:
    return decode_infer_request(payload, manifest, max_rows)


def test_kserve_example() -> None:
    payload = {
        "id": "42",
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 4],
                "datatype": "FP32",
                "data": [[5.9, 3.0, 5.1, 1.8], [5.0, 3.5, 1.4, 0.2]],
            }
        ],
        "outputs": [{"name": "predict"}],
    }
    request = _decode(payload)
    assert isinstance(request.rows, np.ndarray) and request.rows.dtype == np.float64
    np.testing.assert_array_equal(request.rows, ROWS)
    assert (request.outputs, request.id, request.parameters) == (("predict",), "42", None)
    body = encode_infer_response(
        Prediction(np.array([2, 0])), request, IRIS, model_name="iris", model_version="1"
    )
    assert body == {
        "model_name": "iris",
        "model_version": "1",
        "id": "42",
        "outputs": [{"name": "predict", "shape": [2], "datatype": "INT64", "data": [2, 0]}],
    }
    assert type(body["outputs"][0]["data"][0]) is int


def test_flat_and_nested_data_give_the_same_rows() -> None:
    flat = _decode(_request(_input(data=[v for row in ROWS for v in row])))
    nested = _decode(_request(_input(data=ROWS)))
    np.testing.assert_array_equal(flat.rows, nested.rows)
    np.testing.assert_array_equal(flat.rows, ROWS)


def test_defaults() -> None:
    request = _decode(_request())
    assert request.outputs == ("predict",)
    assert request.id is None
    assert request.parameters is None


def test_combined_input_may_have_any_name() -> None:
    request = _decode(_request(_input(name="sepal_length")))
    np.testing.assert_array_equal(request.rows, ROWS)


@pytest.mark.parametrize("shape", [[2], [2, 1]], ids=["1-d", "column"])
def test_per_feature_inputs_in_any_order(shape: list[int]) -> None:
    columns = _columns(shape)
    if shape == [2, 1]:
        for column in columns:
            column["data"] = [[v] for v in column["data"]]
    request = _decode(_request(*reversed(columns)))
    np.testing.assert_array_equal(request.rows, ROWS)


def test_per_feature_inputs_accept_every_datatype() -> None:
    columns = _columns()
    columns[0].update(datatype="INT8", data=[5, -6])
    columns[1].update(datatype="BOOL", data=[True, False])
    request = _decode(_request(*columns))
    assert isinstance(request.rows, np.ndarray)
    np.testing.assert_array_equal(request.rows[:, :2], [[5.0, 1.0], [-6.0, 0.0]])


@pytest.mark.parametrize(
    ("datatype", "data", "expected"),
    [
        ("FP16", [1, 2.5, -65504.0, 0.0], [1.0, 2.5, -65504.0, 0.0]),
        ("FP32", [1, 2.5, 3.4e38, 1e-40], [1.0, 2.5, 3.4e38, 1e-40]),
        ("FP64", [1, 1.7e308, 2**63, -(10**300)], [1.0, 1.7e308, 2.0**63, -1e300]),
        ("INT8", [-128, 127, 0, 1], [-128.0, 127.0, 0.0, 1.0]),
        ("INT16", [-32768, 32767, 0, 1], [-32768.0, 32767.0, 0.0, 1.0]),
        ("INT32", [-(2**31), 2**31 - 1, 0, 1], [-(2.0**31), 2.0**31 - 1, 0.0, 1.0]),
        ("INT64", [-(2**63), 2**63 - 1, 0, 1], [-(2.0**63), 2.0**63, 0.0, 1.0]),
        ("UINT8", [0, 255, 1, 2], [0.0, 255.0, 1.0, 2.0]),
        ("UINT16", [0, 65535, 1, 2], [0.0, 65535.0, 1.0, 2.0]),
        ("UINT32", [0, 2**32 - 1, 1, 2], [0.0, 2.0**32 - 1, 1.0, 2.0]),
        ("UINT64", [0, 2**64 - 1, 1, 2], [0.0, 2.0**64, 1.0, 2.0]),
        ("BOOL", [True, False, False, True], [1.0, 0.0, 0.0, 1.0]),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_datatypes(datatype: str, data: list[Any], expected: list[float]) -> None:
    request = _decode(_request(_input(shape=[1, 4], datatype=datatype, data=data)))
    assert isinstance(request.rows, np.ndarray) and request.rows.dtype == np.float64
    np.testing.assert_array_equal(request.rows, [expected])


@pytest.mark.parametrize(
    ("datatype", "good", "bad", "message"),
    [
        ("FP64", 1.5, True, "expected a number \\(FP64\\), got boolean true"),
        ("FP64", 1.5, 10**400, "number too large for float64"),
        ("FP32", 1.5, 1e39, "1e\\+39 is out of range for FP32"),
        ("INT8", 1, 128, "128 is out of range for INT8 \\(-128 to 127\\)"),
        ("INT64", 1, 2**63, f"{2**63} is out of range for INT64"),
        ("UINT64", 1, -1, "-1 is out of range for UINT64"),
        ("BOOL", True, 1, "expected true or false \\(BOOL\\), got number 1"),
    ],
    ids=lambda value: value if isinstance(value, str) and value.isupper() else "",
)
def test_a_large_tensor_is_checked_in_bulk_and_its_bad_value_named(
    datatype: str, good: Any, bad: Any, message: str
) -> None:
    data = [good] * 40_000
    rows = _decode(_request(_input(shape=[10_000, 4], datatype=datatype, data=data)), IRIS, 10_000)
    assert isinstance(rows.rows, np.ndarray) and rows.rows.shape == (10_000, 4)
    data[-1] = bad
    with pytest.raises(InvalidInput, match=f"row 9999, feature 'petal_width': {message}"):
        _decode(_request(_input(shape=[10_000, 4], datatype=datatype, data=data)), IRIS, 10_000)


def test_parameters_are_accepted() -> None:
    payload = _request(
        _input(parameters={"content_type": "np"}),
        parameters={"trace": "abc"},
        outputs=[{"name": "predict", "parameters": {"binary_data": False}}],
    )
    assert _decode(payload).parameters == {"trace": "abc"}


def _bad(**changes: Any) -> dict[str, Any]:
    return _request(_input(**changes))


def _columns_with(index: int, **changes: Any) -> dict[str, Any]:
    columns = _columns()
    columns[index].update(changes)
    return _request(*columns)


BAD_REQUESTS: dict[str, tuple[Any, str]] = {
    "not-an-object": ([], "expected a JSON object with 'inputs', got an array"),
    "no-inputs": ({}, "request: missing key\\(s\\) 'inputs'"),
    "unknown-key": (
        _request(model="iris"),
        "request: unknown key\\(s\\) 'model' \\(allowed: id, parameters, inputs, outputs\\)",
    ),
    "id-number": (_request(id=42), "request: 'id' must be a string, got number 42"),
    "parameters-array": (
        _request(parameters=[]),
        "request: 'parameters' must be an object, got an array",
    ),
    "inputs-empty": ({"inputs": []}, "'inputs': expected a non-empty array .*got an empty array"),
    "inputs-object": ({"inputs": {}}, "'inputs': expected a non-empty array .*got an object"),
    "input-not-object": ({"inputs": [1]}, "inputs\\[0\\]: expected an input tensor object"),
    "input-no-name": (_bad(name=_DROP), "inputs\\[0\\]: missing key\\(s\\) 'name'"),
    "input-name-number": (
        _bad(name=1),
        "inputs\\[0\\]: 'name' must be a non-empty string, got number 1",
    ),
    "input-name-empty": (_bad(name=""), "'name' must be a non-empty string, got string ''"),
    "input-no-data": (_bad(data=_DROP), "input 'input-0': missing key\\(s\\) 'data'"),
    "input-no-shape-datatype": (
        _bad(shape=_DROP, datatype=_DROP),
        "missing key\\(s\\) 'shape', 'datatype'",
    ),
    "input-unknown-key": (
        _bad(contents=[]),
        "input 'input-0': unknown key\\(s\\) 'contents' \\(allowed: name, shape, datatype",
    ),
    "shape-string": (
        _bad(shape="2,4"),
        "'shape' must be an array of non-negative integers, got string '2,4'",
    ),
    "shape-negative": (_bad(shape=[-1, 4]), "non-negative integers, got \\[-1, 4\\]"),
    "shape-bool": (_bad(shape=[True, 4]), "non-negative integers, got \\[true, 4\\]"),
    "shape-float": (_bad(shape=[2.0, 4]), "non-negative integers, got \\[2.0, 4\\]"),
    "datatype-null": (_bad(datatype=None), "'datatype' must be a string, got null"),
    "datatype-bytes": (
        _bad(datatype="BYTES"),
        "input 'input-0': datatype BYTES is not supported for numeric features; use FP64",
    ),
    "datatype-unknown": (
        _bad(datatype="FLOAT"),
        "unknown datatype 'FLOAT' \\(expected one of BOOL, INT8, .*, FP64\\)",
    ),
    "datatype-lowercase": (_bad(datatype="fp32"), "unknown datatype 'fp32'"),
    "data-string": (_bad(data="1,2"), "'data' must be an array, got string '1,2'"),
    "input-parameters-array": (
        _bad(parameters=[]),
        "input 'input-0': 'parameters' must be an object, got an array",
    ),
    "shape-width": (
        _bad(shape=[2, 3]),
        "input 'input-0': expected shape \\[-1, 4\\] \\(rows of sepal_length, .*\\),"
        " got \\[2, 3\\]",
    ),
    "shape-1d": (_bad(shape=[4], data=ROWS[0]), "expected shape \\[-1, 4\\] .*got \\[4\\]"),
    "shape-3d": (_bad(shape=[2, 4, 1]), "expected shape \\[-1, 4\\] .*got \\[2, 4, 1\\]"),
    "shape-scalar": (_bad(shape=[], data=[1]), "expected shape \\[-1, 4\\] .*got \\[\\]"),
    "zero-rows": (
        _bad(shape=[0, 4], data=[]),
        "input 'input-0': expected at least one row, got shape \\[0, 4\\]",
    ),
    "too-few-values": (
        _bad(data=[1, 2, 3, 4, 5, 6]),
        "input 'input-0': shape \\[2, 4\\] needs 8 values, got 6",
    ),
    "too-many-nested": (_bad(data=[*ROWS, ROWS[0]]), "shape \\[2, 4\\] needs 8 values, got 12"),
    "nested-wrong-split": (
        _bad(data=[[1, 2], [3, 4], [5, 6], [7, 8]]),
        "nested data does not match shape \\[2, 4\\]:"
        " data should be an array of 2, got an array of 4",
    ),
    "nested-ragged": (
        _bad(data=[[1, 2, 3, 4, 5], [6, 7, 8]]),
        "data\\[0\\] should be an array of 4, got an array of 5",
    ),
    "nested-mixed": (
        _bad(data=[1, 2, 3, 4, [5, 6, 7, 8]]),
        "data should be an array of 2, got an array of 5",
    ),
    "nested-too-deep": (
        _bad(data=[[[1, 2, 3, 4]], [[5, 6, 7, 8]]]),
        "data\\[0\\] should be an array of 4, got an array of 1",
    ),
    "nested-leaf": (
        _bad(shape=[1, 4], data=[[1, 2, 3, [4]]]),
        "data\\[0\\]\\[3\\] should be a value, got an array",
    ),
    "value-string": (
        _bad(datatype="FP32", data=[[5.9, "3.0", 5.1, 1.8], ROWS[1]]),
        "input 'input-0': row 0, feature 'sepal_width': expected a number \\(FP32\\),"
        " got string '3.0'",
    ),
    "value-null": (
        _bad(data=[ROWS[0], [5.0, 3.5, 1.4, None]]),
        "row 1, feature 'petal_width': expected a number \\(FP64\\), got null",
    ),
    "value-bool-as-float": (
        _bad(data=[True, 2, 3, 4, 5, 6, 7, 8]),
        "row 0, feature 'sepal_length': expected a number \\(FP64\\), got boolean true",
    ),
    "value-inf": (_bad(data=[1e999, 2, 3, 4, 5, 6, 7, 8]), "expected a finite number, got inf"),
    "value-huge-int": (
        _bad(data=[10**400, 2, 3, 4, 5, 6, 7, 8]),
        "row 0, feature 'sepal_length': number too large for float64",
    ),
    "value-fp16-range": (
        _bad(datatype="FP16", data=[70000.0, 2, 3, 4, 5, 6, 7, 8]),
        "70000.0 is out of range for FP16",
    ),
    "value-fp32-range": (
        _bad(datatype="FP32", data=[1, 2, 3, 1e300, 5, 6, 7, 8]),
        "feature 'petal_width': 1e\\+300 is out of range for FP32",
    ),
    "value-float-as-int": (
        _bad(datatype="INT32", data=[1, 2, 3, 4, 5, 6, 7.5, 8]),
        "row 1, feature 'petal_length': expected an integer \\(INT32\\), got number 7.5",
    ),
    "value-integral-float-as-int": (
        _bad(datatype="INT64", data=[1.0, 2, 3, 4, 5, 6, 7, 8]),
        "expected an integer \\(INT64\\), got number 1.0",
    ),
    "value-bool-as-int": (
        _bad(datatype="INT64", data=[1, 2, 3, 4, 5, 6, 7, False]),
        "expected an integer \\(INT64\\), got boolean false",
    ),
    "value-int8-range": (
        _bad(datatype="INT8", data=[1, 200, 3, 4, 5, 6, 7, 8]),
        "row 0, feature 'sepal_width': 200 is out of range for INT8 \\(-128 to 127\\)",
    ),
    "value-uint-negative": (
        _bad(datatype="UINT16", data=[1, 2, -1, 4, 5, 6, 7, 8]),
        "-1 is out of range for UINT16 \\(0 to 65535\\)",
    ),
    "value-int64-range": (
        _bad(datatype="INT64", data=[2**63, 2, 3, 4, 5, 6, 7, 8]),
        "9223372036854775808 is out of range for INT64",
    ),
    "value-number-as-bool": (
        _bad(datatype="BOOL", data=[1, 0, 1, 0, 1, 0, 1, 0]),
        "row 0, feature 'sepal_length': expected true or false \\(BOOL\\), got number 1",
    ),
    "value-string-as-bool": (
        _bad(datatype="BOOL", shape=[1, 4], data=["true", True, True, True]),
        "expected true or false \\(BOOL\\), got string 'true'",
    ),
    "duplicate-inputs": (
        _request(*_columns(), _columns()[0]),
        "inputs: duplicate input name\\(s\\) 'sepal_length'",
    ),
    "feature-missing": (
        _request(*_columns()[:3]),
        "inputs: missing feature input\\(s\\) 'petal_width' \\(expected one input per feature:"
        " sepal_length, sepal_width, petal_length, petal_width; or one input of shape"
        " \\[-1, 4\\]\\)",
    ),
    "feature-unknown": (
        _request(*_columns(), {**_columns()[0], "name": "colour"}),
        "inputs: unknown input\\(s\\) 'colour' \\(expected one input per feature",
    ),
    "feature-missing-and-unknown": (
        _request(*_columns()[1:], {**_columns()[0], "name": "Sepal_Length"}),
        "missing feature input\\(s\\) 'sepal_length'; unknown input\\(s\\) 'Sepal_Length'",
    ),
    "feature-alone": (
        _request(_columns()[0]),
        "missing feature input\\(s\\) 'sepal_width', 'petal_length', 'petal_width'",
    ),
    "two-combined-inputs": (
        _request(_input(), _input(name="input-1")),
        "missing feature input\\(s\\) 'sepal_length', .*;"
        " unknown input\\(s\\) 'input-0', 'input-1'",
    ),
    "feature-row-mismatch": (
        _columns_with(3, shape=[3], data=[1, 2, 3]),
        "input 'petal_width': expected 2 rows like input 'sepal_length', got shape \\[3\\]",
    ),
    "feature-shape-2x2": (
        _columns_with(1, shape=[1, 2]),
        "input 'sepal_width': expected shape \\[-1\\] or \\[-1, 1\\] for one feature,"
        " got \\[1, 2\\]",
    ),
    "feature-zero-rows": (
        _request(*[{**c, "shape": [0], "data": []} for c in _columns()]),
        "input 'sepal_length': expected at least one row, got shape \\[0\\]",
    ),
    "feature-nested-leaf": (
        _columns_with(0, data=[[5.9], [5.0]]),
        "input 'sepal_length': nested data does not match shape \\[2\\]:"
        " data\\[0\\] should be a value, got an array",
    ),
    "feature-bad-value": (
        _columns_with(2, data=[5.1, "x"]),
        "input 'petal_length': row 1, feature 'petal_length': expected a number",
    ),
    "outputs-object": (
        _request(outputs={"name": "predict"}),
        "'outputs': expected a non-empty array of \\{\"name\": ...\\} objects, got an object",
    ),
    "outputs-empty": (_request(outputs=[]), "'outputs': .*got an empty array"),
    "output-string": (_request(outputs=["predict"]), "outputs\\[0\\]: expected an object like"),
    "output-no-name": (_request(outputs=[{}]), "outputs\\[0\\]: missing key\\(s\\) 'name'"),
    "output-name-null": (
        _request(outputs=[{"name": None}]),
        "outputs\\[0\\]: 'name' must be a string, got null",
    ),
    "output-unknown": (
        _request(outputs=[{"name": "predict"}, {"name": "probabilities"}]),
        "outputs\\[1\\]: unknown output 'probabilities'"
        " \\(allowed: predict, predict_proba, label\\)",
    ),
    "output-unknown-key": (
        _request(outputs=[{"name": "predict", "datatype": "FP64"}]),
        "outputs\\[0\\]: unknown key\\(s\\) 'datatype' \\(allowed: name, parameters\\)",
    ),
    "output-parameters-string": (
        _request(outputs=[{"name": "predict", "parameters": "x"}]),
        "outputs\\[0\\]: 'parameters' must be an object, got string 'x'",
    ),
    "output-duplicate": (
        _request(outputs=[{"name": "label"}, {"name": "predict"}, {"name": "label"}]),
        "outputs: duplicate output\\(s\\) 'label'",
    ),
}


@pytest.mark.parametrize(
    ("payload", "message"), list(BAD_REQUESTS.values()), ids=list(BAD_REQUESTS)
)
def test_bad_requests(payload: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        _decode(payload)


@pytest.mark.parametrize("output", ["predict_proba", "label"])
def test_regression_has_no_classifier_outputs(output: str) -> None:
    payload = _request(outputs=[{"name": "predict"}, {"name": output}])
    message = f"output '{output}' is only for classifiers; model 'iris' is a regression model"
    with pytest.raises(InvalidInput, match=message):
        _decode(payload, REGRESSION)
    assert _decode(_request(outputs=[{"name": "predict"}]), REGRESSION).outputs == ("predict",)


def test_row_limit_is_checked_before_the_data() -> None:
    with pytest.raises(PayloadTooLarge, match="3 rows is over the limit of 2 per request"):
        _decode(_request(_input(shape=[3, 4], data=["not", "checked"])), max_rows=2)
    columns = [{**c, "shape": [3]} for c in _columns()]
    with pytest.raises(PayloadTooLarge, match="3 rows is over the limit of 2"):
        _decode(_request(*columns), max_rows=2)
    assert len(_decode(_request(), max_rows=2).rows) == 2


def test_overflowing_json_number_is_refused() -> None:
    body = (
        b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",'
        b' "data": [1e999, 1, 2, 3]}]}'
    )
    with pytest.raises(InvalidInput, match=r"input 'x': row 0, feature 'sepal_length': .*finite"):
        _decode(parse_json(body))


def test_deep_nesting_is_a_client_error() -> None:
    deep: list[Any] = [1.0]
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidInput, match="needs 8 values, got 1"):
        _decode(_bad(data=deep))


def _response(prediction: Prediction, request: InferRequest) -> dict[str, Any]:
    return encode_infer_response(prediction, request, IRIS, model_name="iris", model_version="1")


def test_response_lists_outputs_in_the_requested_order() -> None:
    request = InferRequest(
        rows=np.zeros((2, 4)), outputs=("label", "predict_proba", "predict"), id="7"
    )
    prediction = Prediction(np.array([2, 0]), np.array([[0.0, 0.25, 0.75], [1.0, 0.0, 0.0]]))
    assert _response(prediction, request)["outputs"] == [
        {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["virginica", "setosa"]},
        {
            "name": "predict_proba",
            "shape": [2, 3],
            "datatype": "FP64",
            "data": [0.0, 0.25, 0.75, 1.0, 0.0, 0.0],
        },
        {"name": "predict", "shape": [2], "datatype": "INT64", "data": [2, 0]},
    ]


def test_response_echoes_id_and_parameters_only_when_given() -> None:
    plain = _response(Prediction(np.array([1])), InferRequest(rows=np.zeros((1, 4))))
    assert set(plain) == {"model_name", "model_version", "outputs"}
    request = InferRequest(rows=np.zeros((1, 4)), id="a", parameters={"trace": 1})
    echoed = _response(Prediction(np.array([1])), request)
    assert (echoed["id"], echoed["parameters"]) == ("a", {"trace": 1})


@pytest.mark.parametrize(
    ("predictions", "datatype", "data"),
    [
        (np.array([2, 0]), "INT64", [2, 0]),
        (np.array([2, 0], dtype=np.uint8), "INT64", [2, 0]),
        (np.array([1.5, -0.25]), "FP64", [1.5, -0.25]),
        (np.array([1.5, 2.0], dtype=np.float32), "FP64", [1.5, 2.0]),
        (np.array([True, False]), "BOOL", [True, False]),
        (np.array(["spam", "ham"]), "BYTES", ["spam", "ham"]),
        (np.array([b"spam", b"ham"]), "BYTES", ["spam", "ham"]),
        (np.array(["spam", "ham"], dtype=object), "BYTES", ["spam", "ham"]),
    ],
    ids=["int", "uint", "float", "float32", "bool", "str", "bytes", "object"],
)
def test_predict_datatype(predictions: np.ndarray, datatype: str, data: list[Any]) -> None:
    request = InferRequest(rows=np.zeros((2, 4)))
    (output,) = _response(Prediction(predictions), request)["outputs"]
    assert output == {"name": "predict", "shape": [2], "datatype": datatype, "data": data}
    assert [type(v) for v in output["data"]] == [type(v) for v in data]


def test_predict_proba_needs_probabilities() -> None:
    request = InferRequest(rows=np.zeros((1, 4)), outputs=("predict_proba",))
    with pytest.raises(ValueError, match="predict_proba"):
        _response(Prediction(np.array([1])), request)


def test_unsupported_prediction_dtype() -> None:
    with pytest.raises(ValueError, match="no v2 datatype"):
        _response(Prediction(np.array([1 + 2j])), InferRequest(rows=np.zeros((1, 4))))


def test_string_labels() -> None:
    manifest = _manifest(labels=("a", "b"), class_names=("Alpha", "Beta"))
    request = InferRequest(rows=np.zeros((2, 4)), outputs=("predict", "label"))
    body = encode_infer_response(
        Prediction(np.array(["b", "a"])), request, manifest, model_name="m", model_version="2"
    )
    assert body["outputs"] == [
        {"name": "predict", "shape": [2], "datatype": "BYTES", "data": ["b", "a"]},
        {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["Beta", "Alpha"]},
    ]
    metadata = encode_model_metadata(manifest, name="m", versions=["2"])
    assert metadata["outputs"][0] == {"name": "predict", "datatype": "BYTES", "shape": [-1]}


def test_model_metadata_for_a_classifier() -> None:
    assert encode_model_metadata(IRIS, name="iris", versions=("1", "2")) == {
        "name": "iris",
        "versions": ["1", "2"],
        "platform": "sklearn",
        "inputs": [{"name": n, "datatype": "FP64", "shape": [-1]} for n in NAMES],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
        ],
        "parameters": {
            "task": "classification",
            "features": [{"name": n, "min": 0.1, "max": 7.9} for n in NAMES],
            "combined_input": {"name": "input-0", "datatype": "FP64", "shape": [-1, 4]},
        },
    }


def test_model_metadata_for_a_regressor() -> None:
    metadata = encode_model_metadata(REGRESSION, name="r", versions=["3"])
    assert metadata["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    assert metadata["parameters"]["task"] == "regression"
    assert [o["name"] for o in metadata["outputs"]] == [OUTPUT_NAMES[0]]


def test_model_metadata_refuses_a_version_string() -> None:
    with pytest.raises(TypeError, match="versions"):
        encode_model_metadata(IRIS, name="iris", versions="12")


def test_metadata_inputs_decode() -> None:
    """What the metadata advertises is what decoding accepts, both layouts."""
    metadata = encode_model_metadata(IRIS, name="iris", versions=["1"])
    combined = metadata["parameters"]["combined_input"]
    tensor = {**combined, "shape": [2, 4], "data": ROWS}
    per_feature = [
        {**spec, "shape": [2], "data": [row[i] for row in ROWS]}
        for i, spec in enumerate(metadata["inputs"])
    ]
    np.testing.assert_array_equal(_decode({"inputs": [tensor]}).rows, ROWS)
    np.testing.assert_array_equal(_decode({"inputs": per_feature}).rows, ROWS)


def test_no_flask_import() -> None:
    code = (
        "import sys, flaskserve.codecs.v2;"
        " print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
