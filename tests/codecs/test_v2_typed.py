"""v2 requests for a typed (``frame``) model: one input per feature, text as BYTES, nulls.

The manifest is made here, so no model is fitted; tests/api/test_v2_typed.py
checks the answers against a real pipeline's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from flaskserve.artifact import ModelManifest
from flaskserve.codecs.v2 import InferRequest, decode_infer_request, encode_model_metadata
from flaskserve.errors import InvalidInput, PayloadTooLarge
from flaskserve.schema import Table
from v2_examples import FRAME, NULLABLE_MATRIX

DATATYPES = {"age": "INT64", "city": "BYTES", "street": "BYTES", "income": "FP64", "member": "BOOL"}
COLUMNS: dict[str, list[Any]] = {
    "age": [39, 50],
    "city": ["Paris", "Lyon"],
    "street": ["Rue A", None],
    "income": [None, 2500.5],
    "member": [True, False],
}


def _inputs(shape: list[int] | None = None, **changes: dict[str, Any]) -> list[dict[str, Any]]:
    inputs: list[dict[str, Any]] = [
        {"name": name, "shape": shape or [2], "datatype": DATATYPES[name], "data": data}
        for name, data in COLUMNS.items()
    ]
    for tensor in inputs:
        tensor.update(changes.get(tensor["name"], {}))
    return inputs


def _decode(inputs: list[dict[str, Any]], manifest: ModelManifest = FRAME) -> InferRequest:
    return decode_infer_request({"inputs": inputs}, manifest, 10)


def test_one_input_per_feature_gives_a_table() -> None:
    rows = _decode(list(reversed(_inputs()))).rows
    assert isinstance(rows, Table)
    assert rows.names == list(COLUMNS)
    age, city, street, income, member = rows.columns
    assert age.dtype == np.int64 and age.tolist() == [39, 50]
    assert city.tolist() == ["Paris", "Lyon"]
    assert street[0] == "Rue A" and np.isnan(street[1])  # missing text, as pandas has it
    assert np.isnan(income[0]) and income[1] == 2500.5
    assert member.dtype == bool and member.tolist() == [True, False]


def test_column_shaped_inputs_nested_or_flat() -> None:
    nested = _inputs([2, 1], age={"data": [[39], [50]]})
    flat, from_nested = _decode(_inputs([2, 1])).rows, _decode(nested).rows
    assert isinstance(flat, Table) and isinstance(from_nested, Table)
    assert from_nested.rows() == flat.rows()


def test_number_features_take_any_numeric_datatype() -> None:
    rows = _decode(
        _inputs(
            age={"datatype": "FP32", "data": [39.0, 50.0]},
            income={"datatype": "INT32", "data": [None, 2500]},
        )
    ).rows
    assert isinstance(rows, Table)
    assert rows.columns[0].tolist() == [39, 50]


def test_parameters_of_mlservers_pandas_codec_are_accepted() -> None:
    inputs = _inputs(city={"parameters": {"content_type": "str"}})
    payload = {"parameters": {"content_type": "pd"}, "inputs": inputs}
    assert len(decode_infer_request(payload, FRAME, 10).rows) == 2


BAD: dict[str, tuple[list[dict[str, Any]], str]] = {
    "bytes-for-a-number": (
        _inputs(income={"datatype": "BYTES", "data": ["1", "2"]}),
        "input 'income': datatype BYTES does not fit feature 'income' \\(number, float64\\);"
        " expected FP64",
    ),
    "fp64-for-text": (
        _inputs(city={"datatype": "FP64", "data": [1.0, 2.0]}),
        "input 'city': datatype FP64 does not fit feature 'city' \\(text, str\\); expected BYTES",
    ),
    "int-for-a-boolean": (
        _inputs(member={"datatype": "INT64", "data": [1, 0]}),
        "input 'member': datatype INT64 does not fit feature 'member' \\(boolean, bool\\)",
    ),
    "unknown-datatype": (
        _inputs(city={"datatype": "STRING"}),
        "input 'city': unknown datatype 'STRING' \\(expected one of BOOL, .*, BYTES\\)",
    ),
    "number-in-bytes": (
        _inputs(city={"data": ["Paris", 3]}),
        "row 1: feature 'city': expected text, got number 3",
    ),
    "text-in-int64": (
        _inputs(age={"data": [39, "old"]}),
        "input 'age': row 1, feature 'age': expected an integer \\(INT64\\), got string 'old'",
    ),
    "out-of-range": (
        _inputs(age={"datatype": "INT8", "data": [39, 300]}),
        "input 'age': row 1, feature 'age': 300 is out of range for INT8",
    ),
    "fraction-for-an-integer": (
        _inputs(age={"datatype": "FP64", "data": [39.5, 50.0]}),
        "row 0: feature 'age': expected an integer, got number 39.5",
    ),
    "null-not-allowed": (
        _inputs(age={"data": [None, 50]}),
        "row 0: feature 'age': may not be missing \\(null\\)",
    ),
    "null-boolean": (_inputs(member={"data": [True, None]}), "row 1: feature 'member'"),
    "unknown-category": (
        _inputs(city={"data": ["Paris", "Nice"]}),
        "row 1: feature 'city': string 'Nice' is not a category the model knows"
        " \\(one of 'Lyon', 'Paris'\\)",
    ),
    "missing-input": (
        _inputs()[1:],
        "inputs: missing feature input\\(s\\) 'age' \\(expected one input per feature: age,"
        " city, street, income, member\\)$",
    ),
    "unknown-input": ([*_inputs(), {**_inputs()[0], "name": "Age"}], "unknown input\\(s\\) 'Age'"),
    "combined-layout": (
        [{"name": "input-0", "shape": [1, 5], "datatype": "FP64", "data": [1, 2, 3, 4, 5]}],
        "missing feature input\\(s\\) 'age', 'city'",
    ),
    "lengths-differ": (
        _inputs(income={"shape": [3], "data": [1.0, 2.0, 3.0]}),
        "input 'income': expected 2 rows like input 'age', got shape \\[3\\]",
    ),
    "wrong-shape": (
        _inputs(city={"shape": [1, 2], "data": [["Paris", "Lyon"]]}),
        "input 'city': expected shape \\[-1\\] or \\[-1, 1\\] for one feature, got \\[1, 2\\]",
    ),
    "too-few-values": (
        _inputs(street={"data": ["x"]}),
        "input 'street': shape \\[2\\] needs 2 values, got 1",
    ),
    "no-rows": (_inputs([0]), "input 'age': expected at least one row"),
}


@pytest.mark.parametrize(("inputs", "message"), BAD.values(), ids=BAD)
def test_bad_typed_inputs(inputs: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        _decode(inputs)


def test_row_limit() -> None:
    inputs = [{**t, "shape": [11], "data": t["data"] * 6} for t in _inputs()]
    with pytest.raises(PayloadTooLarge, match="11 rows is over the limit of 10"):
        _decode(inputs)


def test_a_matrix_model_with_missing_cells_takes_nulls_in_either_layout() -> None:
    combined = [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [0.5, None, 0.2, 0.3]}]
    rows = _decode(combined, NULLABLE_MATRIX).rows
    assert isinstance(rows, np.ndarray) and rows.dtype == np.float64
    np.testing.assert_array_equal(rows, [[0.5, np.nan], [0.2, 0.3]])
    columns = [
        {"name": "b", "shape": [2], "datatype": "FP32", "data": [None, 0.3]},
        {"name": "a", "shape": [2], "datatype": "INT64", "data": [1, 0]},
    ]
    np.testing.assert_array_equal(_decode(columns, NULLABLE_MATRIX).rows, [[1, np.nan], [0, 0.3]])


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [None, 0.5]}],
            "row 0: feature 'a': may not be missing",
        ),
        (
            [{"name": "x", "shape": [1, 2], "datatype": "BYTES", "data": ["1", "2"]}],
            "input 'x': datatype BYTES is not supported for numeric features; use FP64",
        ),
        (
            [{"name": "x", "shape": [1, 2], "datatype": "INT8", "data": [1, 999]}],
            "input 'x': row 0, feature 'b': 999 is out of range for INT8",
        ),
    ],
    ids=["null-not-allowed", "bytes", "out-of-range"],
)
def test_a_matrix_model_with_missing_cells_refuses(
    inputs: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        _decode(inputs, NULLABLE_MATRIX)


def test_metadata_of_a_frame_model() -> None:
    metadata = encode_model_metadata(FRAME, name="people", versions=["1"])
    assert metadata["inputs"] == [
        {"name": name, "datatype": datatype, "shape": [-1]} for name, datatype in DATATYPES.items()
    ]
    assert "combined_input" not in metadata["parameters"]
    assert metadata["parameters"]["features"] == [
        {"name": "age", "min": 17.0, "max": 90.0, "dtype": "int64"},
        {
            "name": "city",
            "min": None,
            "max": None,
            "dtype": "str",
            "categories": ["Lyon", "Paris"],
            "unknown_categories": "refused",
        },
        {
            "name": "street",
            "min": None,
            "max": None,
            "dtype": "str",
            "nullable": True,
            "unknown_categories": "ignored",
        },
        {"name": "income", "min": 0.0, "max": 1e6, "dtype": "float64", "nullable": True},
        {"name": "member", "min": None, "max": None, "dtype": "bool"},
    ]


def test_metadata_inputs_make_a_valid_request() -> None:
    metadata = encode_model_metadata(FRAME, name="people", versions=["1"])
    inputs = [{**spec, "shape": [2], "data": COLUMNS[spec["name"]]} for spec in metadata["inputs"]]
    assert len(_decode(inputs).rows) == 2


def test_metadata_of_a_matrix_model_with_missing_cells() -> None:
    metadata = encode_model_metadata(NULLABLE_MATRIX, name="gaps", versions=["1"])
    assert [i["datatype"] for i in metadata["inputs"]] == ["FP64", "FP64"]
    assert metadata["parameters"]["features"][1] == {
        "name": "b",
        "min": 0.0,
        "max": 1.0,
        "nullable": True,
    }
    assert metadata["parameters"]["combined_input"]["shape"] == [-1, 2]
