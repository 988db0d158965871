"""MLflow's /invocations formats: JSON (four wrappers) and CSV, decoded without pandas."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from flaskserve.codecs.mlflow import decode_csv, decode_json, encode_predictions
from flaskserve.errors import InvalidInput, PayloadTooLarge
from flaskserve.runtime import Prediction

NAMES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
ROW_0 = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
ROW_1 = {"sepal_length": 6.2, "sepal_width": 2.9, "petal_length": 4.3, "petal_width": 1.3}
EXPECTED = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]
REVERSED = list(reversed(NAMES))
COLUMNS = {name: [ROW_0[name], ROW_1[name]] for name in NAMES}
CSV = b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.2,2.9,4.3,1.3\n"


def _reversed_row(row: dict[str, float]) -> list[float]:
    return [row[name] for name in REVERSED]


SAME_TWO_ROWS = {
    "split": {"dataframe_split": {"columns": list(NAMES), "data": EXPECTED}},
    "split-other-order": {
        "dataframe_split": {
            "columns": REVERSED,
            "data": [_reversed_row(ROW_0), _reversed_row(ROW_1)],
        }
    },
    "split-with-index": {
        "dataframe_split": {"index": [7, "b"], "columns": list(NAMES), "data": EXPECTED}
    },
    "split-positional": {"dataframe_split": {"data": EXPECTED}},
    "records": {"dataframe_records": [ROW_0, ROW_1]},
    "records-other-order": {
        "dataframe_records": [{n: ROW_0[n] for n in REVERSED}, {n: ROW_1[n] for n in REVERSED}]
    },
    "instances-objects": {"instances": [ROW_0, ROW_1]},
    "instances-arrays": {"instances": EXPECTED},
    "inputs-arrays": {"inputs": EXPECTED},
    "inputs-objects": {"inputs": [ROW_0, ROW_1]},
    "inputs-columns": {"inputs": COLUMNS},
    "instances-columns-other-order": {"instances": {n: COLUMNS[n] for n in REVERSED}},
    "empty-params": {"inputs": EXPECTED, "params": {}},
}


@pytest.mark.parametrize("payload", SAME_TWO_ROWS.values(), ids=SAME_TWO_ROWS.keys())
def test_every_json_format_gives_the_same_matrix(payload: dict[str, Any]) -> None:
    rows = decode_json(payload, NAMES, 10)
    assert rows.dtype == np.float64
    np.testing.assert_array_equal(rows, EXPECTED)


@pytest.mark.parametrize(
    "body",
    [
        CSV,
        b"\xef\xbb\xbf" + CSV,
        CSV.replace(b"\n", b"\r\n"),
        b"petal_width, petal_length ,sepal_width,sepal_length\n0.2,1.4,3.5,5.1\n\n1.3,4.3,2.9,6.2",
        b"sepal_length,sepal_width,petal_length,petal_width\n"
        b'"5.1", 3.5 ,1.4,.2\n6.2,2.9,4.3,13e-1\n',
    ],
    ids=["plain", "bom", "crlf", "other-order-blank-line-no-final-newline", "quoted-spaced"],
)
def test_csv_gives_the_same_matrix(body: bytes) -> None:
    rows = decode_csv(body, NAMES, 10)
    assert rows.dtype == np.float64
    np.testing.assert_array_equal(rows, EXPECTED)


# MLflow's documented requests, with iris columns in place of "a", "b", "c".
# "Deploy MLflow Model as a Local Inference Server":
#   curl .../invocations -H "Content-Type:application/json" \
#        --data '{"inputs": [[1, 2], [3, 4], [5, 6]]}'
#   curl .../invocations -H 'Content-Type: application/csv' --data '1,2,3,4'
# MLflow 2.x models docs ("Deploy MLflow models", local REST API example requests):
#   {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3], [4, 5, 6]]}}
#   {"dataframe_records": [{"a": 1,"b": 2,"c": 3}, {"a": 4,"b": 5,"c": 6}]}
#   {"instances": [{"a": "s1", "b": 1, "c": [1, 2, 3]}, ...]}
#   {"inputs": {"a": ["s1", "s2", "s3"], "b": [1, 2, 3], "c": [[1, 2, 3], ...]}}
DOC_ROWS = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]
DOC_EXAMPLES = {
    "quickstart-inputs": {"inputs": DOC_ROWS},
    "dataframe_split": {"dataframe_split": {"columns": list(NAMES), "data": DOC_ROWS}},
    "dataframe_records": {
        "dataframe_records": [dict(zip(NAMES, r, strict=True)) for r in DOC_ROWS]
    },
    "instances": {"instances": [dict(zip(NAMES, r, strict=True)) for r in DOC_ROWS]},
    "inputs-columnar": {"inputs": {n: [r[i] for r in DOC_ROWS] for i, n in enumerate(NAMES)}},
}


@pytest.mark.parametrize("payload", DOC_EXAMPLES.values(), ids=DOC_EXAMPLES.keys())
def test_mlflow_documented_examples(payload: dict[str, Any]) -> None:
    np.testing.assert_array_equal(decode_json(payload, NAMES, 10), DOC_ROWS)


def test_mlflow_documented_csv_needs_a_header() -> None:
    body = b"sepal_length,sepal_width,petal_length,petal_width\n1,2,3,4\n"
    np.testing.assert_array_equal(decode_csv(body, NAMES, 10), [[1, 2, 3, 4]])
    # the docs' bare '1,2,3,4' reads as a header of four unknown names, as in pandas
    with pytest.raises(InvalidInput, match="unknown column\\(s\\) '1', '2', '3', '4'"):
        decode_csv(b"1,2,3,4", NAMES, 10)


def test_mlflow_documented_non_numeric_examples_are_refused() -> None:
    # the docs' string and nested-array cells, and its {"instances": [1.0, 2.0, 5.0]}
    instances = {"instances": [{"a": "s1", "b": 1, "c": [1, 2, 3]}]}
    with pytest.raises(InvalidInput, match="missing feature"):
        decode_json(instances, NAMES, 10)
    strings = {"instances": [{**ROW_0, "sepal_length": "s1"}]}
    with pytest.raises(InvalidInput, match="feature 'sepal_length': expected a number"):
        decode_json(strings, NAMES, 10)
    with pytest.raises(InvalidInput, match="flat array of 3 values"):
        decode_json({"instances": [1.0, 2.0, 5.0]}, NAMES, 10)
    with_params = {"inputs": DOC_ROWS, "params": {"max_answer_len": 10}}
    with pytest.raises(InvalidInput, match="params are not supported by scikit-learn models"):
        decode_json(with_params, NAMES, 10)


SPLIT = {"columns": list(NAMES), "data": EXPECTED}
BAD_PAYLOADS: list[tuple[str, Any, str]] = [
    ("not-object", [ROW_0], 'got an array (wrap it: {"inputs": [...]})'),
    ("string", "rows", "with one of the keys dataframe_split, dataframe_records"),
    ("no-key", {}, "expected exactly one of the keys dataframe_split"),
    ("only-params", {"params": {}}, "got none"),
    ("two-keys", {"inputs": EXPECTED, "instances": EXPECTED}, "got 2: 'instances', 'inputs'"),
    ("unknown-key", {"inputs": EXPECTED, "extra": 1}, "unknown key(s) 'extra'"),
    ("mlflow-1-split", {"columns": list(NAMES), "data": EXPECTED}, "unknown key(s) 'columns'"),
    ("params", {"inputs": EXPECTED, "params": {"k": 1}}, "scikit-learn models: got 'k'"),
    ("params-null", {"inputs": EXPECTED, "params": None}, "scikit-learn models: got null"),
    ("params-array", {"inputs": EXPECTED, "params": []}, "scikit-learn models: got an array"),
    ("split-array", {"dataframe_split": EXPECTED}, "dataframe_split: expected an object"),
    ("split-no-data", {"dataframe_split": {"columns": list(NAMES)}}, "missing 'data'"),
    (
        "split-unknown-key",
        {"dataframe_split": {**SPLIT, "index_names": [None]}},
        "dataframe_split: unknown key(s) 'index_names'",
    ),
    ("split-data-object", {"dataframe_split": {"data": ROW_0}}, "'data': expected an array"),
    ("split-data-objects", {"dataframe_split": {"data": [ROW_0]}}, "'data' row 0: expected an"),
    ("split-empty", {"dataframe_split": {**SPLIT, "data": []}}, "at least one row"),
    (
        "split-columns-string",
        {"dataframe_split": {**SPLIT, "columns": "sepal_length"}},
        "'columns': expected an array of feature names, got string",
    ),
    (
        "split-columns-number",
        {"dataframe_split": {**SPLIT, "columns": [*NAMES[:3], 4]}},
        "got number 4 at position 3",
    ),
    (
        "split-duplicate-column",
        {"dataframe_split": {**SPLIT, "columns": [*NAMES, "petal_width"]}},
        "'columns': 'petal_width' appears more than once",
    ),
    (
        "split-unknown-column",
        {"dataframe_split": {"columns": [*NAMES, "colour"], "data": [[1, 2, 3, 4, 5]]}},
        "'columns': unknown column(s) 'colour'",
    ),
    (
        "split-missing-column",
        {"dataframe_split": {"columns": list(NAMES[:3]), "data": [[1, 2, 3]]}},
        "'columns': missing feature(s) 'petal_width' (expected: sepal_length",
    ),
    (
        "split-short-row",
        {"dataframe_split": {**SPLIT, "data": [EXPECTED[0], [1, 2, 3]]}},
        "dataframe_split: row 1: expected 4 values",
    ),
    (
        "split-positional-long-row",
        {"dataframe_split": {"data": [[1, 2, 3, 4, 5]]}},
        "row 0: expected 4 values (sepal_length, sepal_width, petal_length, petal_width), got 5",
    ),
    (
        "split-null-cell",
        {"dataframe_split": {"columns": REVERSED, "data": [[1, 2, None, 4]]}},
        "dataframe_split: row 0: feature 'sepal_width': expected a number, got null",
    ),
    (
        "split-index-short",
        {"dataframe_split": {**SPLIT, "index": [0]}},
        "'index': expected an array of 2 labels, one per row, got 1 labels",
    ),
    (
        "split-index-object",
        {"dataframe_split": {**SPLIT, "index": {}}},
        "'index': expected an array of 2 labels, one per row, got an object",
    ),
    ("records-object", {"dataframe_records": ROW_0}, "dataframe_records: expected an array of"),
    ("records-arrays", {"dataframe_records": EXPECTED}, "row 0: expected an object of features"),
    ("records-empty", {"dataframe_records": []}, "dataframe_records: expected at least one row"),
    (
        "records-missing",
        {"dataframe_records": [ROW_0, {"sepal_length": 1}]},
        "dataframe_records: row 1: missing feature(s) 'sepal_width'",
    ),
    (
        "records-bool",
        {"dataframe_records": [{**ROW_0, "petal_width": True}]},
        "feature 'petal_width': expected a number, got boolean true",
    ),
    ("inputs-number", {"inputs": 5.1}, "inputs: expected an array of rows or an object of"),
    ("inputs-flat-row", {"inputs": [5.1, 3.5, 1.4, 0.2]}, "wrap a single row in a list"),
    ("instances-flat-row", {"instances": [5.1, 3.5, 1.4, 0.2]}, "instances: a flat array of 4"),
    ("inputs-mixed", {"inputs": [EXPECTED[0], ROW_1]}, "row 1: expected an array of numbers"),
    ("inputs-string-cell", {"inputs": [[5.1, "3.5", 1.4, 0.2]]}, "got string '3.5'"),
    ("inputs-empty", {"inputs": []}, "inputs: expected at least one row"),
    ("inputs-nested", {"instances": [[[5.1, 3.5, 1.4, 0.2]]]}, "expected 4 values"),
    (
        "columns-unknown",
        {"inputs": {**COLUMNS, "colour": [1, 2]}},
        "inputs: unknown column(s) 'colour'",
    ),
    (
        "columns-missing",
        {"inputs": {n: COLUMNS[n] for n in NAMES[1:]}},
        "inputs: missing feature(s) 'sepal_length'",
    ),
    (
        "columns-scalar",
        {"inputs": {**COLUMNS, "petal_width": 0.2}},
        "column 'petal_width': expected an array of values, got number 0.2",
    ),
    (
        "columns-ragged",
        {"instances": {**COLUMNS, "sepal_width": [3.5]}},
        "same length, got sepal_length: 2, sepal_width: 1, petal_length: 2",
    ),
    (
        "columns-null",
        {"inputs": {**COLUMNS, "petal_length": [1.4, None]}},
        "inputs: row 1: feature 'petal_length': expected a number, got null",
    ),
    ("columns-empty", {"inputs": {n: [] for n in NAMES}}, "at least one row"),
    ("huge-number", {"inputs": [[10**400, 1, 1, 1]]}, "number too large for float64"),
]


@pytest.mark.parametrize(
    ("payload", "message"),
    [(payload, message) for _, payload, message in BAD_PAYLOADS],
    ids=[name for name, _, _ in BAD_PAYLOADS],
)
def test_bad_json_payloads(payload: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        decode_json(payload, NAMES, 10)


HEADER = "sepal_length,sepal_width,petal_length,petal_width\n"
BAD_CSV: list[tuple[str, bytes, str]] = [
    ("empty", b"", "CSV: empty body: expected a header row"),
    ("blank-lines", b"\n\n", "empty body"),
    ("header-only", HEADER.encode(), "at least one data row after the header"),
    ("latin-1", HEADER.encode() + b"5.1,3.5,1.4,0.2 \xe9\n", "not UTF-8 text"),
    ("unknown-column", b"sepal_length,sepal_width,petal_length,petal_width,x\n", "'x'"),
    ("missing-column", b"sepal_length,sepal_width,petal_length\n1,2,3\n", "'petal_width'"),
    ("duplicate-column", (HEADER[:-1] + ",sepal_width\n").encode(), "appears more than once"),
    ("short-line", (HEADER + "1,2,3,4\n1,2,3\n").encode(), "line 3: expected 4 values"),
    ("long-line", (HEADER + "1,2,3,4,5\n").encode(), "line 2: expected 4 values"),
    ("empty-cell", (HEADER + "1,,3,4\n").encode(), "line 2, column 'sepal_width': expected a"),
    ("nan", (HEADER + "1,2,nan,4\n").encode(), "column 'petal_length': expected a finite number"),
    ("inf", (HEADER + "1,2,3,-inf\n").encode(), "got string '-inf'"),
    ("text", (HEADER + "1,2,3,4\n1,two,3,4\n").encode(), "line 3, column 'sepal_width'"),
    ("underscore", (HEADER + "1_000,2,3,4\n").encode(), "got string '1_000'"),
    ("overflow", (HEADER + "1e999,2,3,4\n").encode(), "(out of float64 range)"),
    ("bad-quote", (HEADER + '1,"2"x,3,4\n').encode(), "CSV: line 2: invalid CSV"),
    ("open-quote", (HEADER + '1,"2,3,4\n').encode(), "invalid CSV (unexpected end of data)"),
]


@pytest.mark.parametrize(
    ("body", "message"),
    [(body, message) for _, body, message in BAD_CSV],
    ids=[name for name, _, _ in BAD_CSV],
)
def test_bad_csv(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        decode_csv(body, NAMES, 10)


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {"columns": list(NAMES), "data": EXPECTED * 2}},
        {"dataframe_split": {"data": EXPECTED * 2}},
        {"dataframe_records": [ROW_0, ROW_1] * 2},
        {"instances": EXPECTED * 2},
        {"inputs": {n: COLUMNS[n] * 2 for n in NAMES}},
    ],
    ids=["split", "split-positional", "records", "instances", "columns"],
)
def test_json_row_limit(payload: dict[str, Any]) -> None:
    with pytest.raises(PayloadTooLarge, match="4 rows is over the limit of 3"):
        decode_json(payload, NAMES, 3)
    assert decode_json(payload, NAMES, 4).shape == (4, 4)


def test_csv_row_limit() -> None:
    body = (HEADER + "1,2,3,4\n" * 4).encode()
    with pytest.raises(PayloadTooLarge, match="4 rows is over the limit of 3"):
        decode_csv(body, NAMES, 3)
    assert decode_csv(body, NAMES, 4).shape == (4, 4)


def test_invalid_input_is_chained() -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_json({"inputs": [[1, 2, 3, None]]}, NAMES, 10)
    assert isinstance(caught.value.__cause__, InvalidInput)


@pytest.mark.parametrize(
    ("predictions", "expected"),
    [
        (np.array([0, 2]), [0, 2]),
        (np.array([1.5, -0.25]), [1.5, -0.25]),
        (np.array(["setosa", "virginica"]), ["setosa", "virginica"]),
    ],
    ids=["ints", "floats", "strings"],
)
def test_encode_predictions(predictions: np.ndarray, expected: list[Any]) -> None:
    body = encode_predictions(Prediction(predictions, np.array([[0.5, 0.5], [0.0, 1.0]])))
    assert body == {"predictions": expected}
    assert [type(p) for p in body["predictions"]] == [type(e) for e in expected]


def test_module_imports_neither_web_framework_nor_pandas() -> None:
    banned = "('flask', 'werkzeug', 'pandas')"
    code = (
        "import sys, flaskserve.codecs.mlflow; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {banned}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
