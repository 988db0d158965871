from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from flaskserve.artifact import Feature, ModelManifest
from flaskserve.codecs.records import class_names_of, decode_rows, encode_result
from flaskserve.errors import InvalidInput, PayloadTooLarge
from flaskserve.runtime import Prediction
from flaskserve.schema import describe

NAMES = ("a", "b")


def _manifest(task: str = "classification") -> ModelManifest:
    return ModelManifest(
        name="m",
        version=1,
        task=task,
        estimator="x",
        features=(Feature("a"), Feature("b")),
        sha256="0" * 64,
        created="now",
        labels=(0, 1) if task == "classification" else (),
        class_names=("no", "yes") if task == "classification" else (),
    )


def test_object_is_one_row_in_manifest_order() -> None:
    rows = decode_rows({"b": 2, "a": 1.5}, NAMES, 10)
    assert rows.dtype == np.float64
    np.testing.assert_array_equal(rows, [[1.5, 2.0]])


def test_list_of_objects_and_of_arrays() -> None:
    np.testing.assert_array_equal(
        decode_rows([{"a": 1, "b": 2}, {"a": 3, "b": 4}], NAMES, 10), [[1, 2], [3, 4]]
    )
    np.testing.assert_array_equal(decode_rows([[1, 2], [3, 4]], NAMES, 10), [[1, 2], [3, 4]])


def test_large_finite_numbers_pass() -> None:
    rows = decode_rows({"a": 1.7e308, "b": -(10**300)}, NAMES, 10)
    assert np.isfinite(rows).all()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"a": 1}, "missing feature\\(s\\) 'b' \\(expected: a, b\\)"),
        ({"a": 1, "b": 2, "c": 3}, "unknown feature\\(s\\) 'c'"),
        ({"a": 1, "c": 3}, "missing feature\\(s\\) 'b'; unknown feature\\(s\\) 'c'"),
        ({"a": None, "b": 1}, "feature 'a': expected a number, got null"),
        ({"a": False, "b": 1}, "feature 'a': expected a number, got boolean false"),
        ({"a": "1", "b": 1}, "feature 'a': expected a number, got string '1'"),
        ({"a": float("inf"), "b": 1}, "feature 'a': expected a finite number"),
        ({"a": 10**400, "b": 1}, "feature 'a': number too large for float64"),
        (
            [{"a": 1, "b": 2}, [1, 2]],
            "row 1: expected an object of features like row 0, got an array",
        ),
        (
            [[1, 2], {"a": 1, "b": 2}],
            "row 1: expected an array of numbers like row 0, got an object",
        ),
        (["x"], "row 0: expected an object of features or an array of numbers"),
        ([[1, 2, 3]], "row 0: expected 2 values \\(a, b\\), got 3"),
        ([[1, [2]]], "row 0, feature 'b'|row 0: feature 'b'"),
        ([], "at least one row"),
        ("text", "got string 'text'"),
    ],
    ids=[
        "missing",
        "unknown",
        "missing-and-unknown",
        "null",
        "bool",
        "string",
        "inf",
        "huge-int",
        "object-then-array",
        "array-then-object",
        "scalar-row",
        "long-array",
        "nested",
        "empty",
        "string",
    ],
)
def test_bad_payloads(payload: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        decode_rows(payload, NAMES, 10)


def test_row_limit() -> None:
    with pytest.raises(PayloadTooLarge, match="3 rows is over the limit of 2"):
        decode_rows([[1, 2]] * 3, NAMES, 2)


def test_encode_result_shapes() -> None:
    prediction = Prediction(np.array([1, 0]), np.array([[0.25, 0.75], [1.0, 0.0]]))
    body = encode_result(prediction, _manifest(), labels=True)
    assert body == {
        "result": [1, 0],
        "probabilities": [[0.25, 0.75], [1.0, 0.0]],
        "labels": ["yes", "no"],
    }
    assert encode_result(Prediction(np.array([1])), _manifest()) == {"result": [1]}
    assert type(encode_result(Prediction(np.array([1])), _manifest())["result"][0]) is int


def test_regression_has_no_class_names() -> None:
    with pytest.raises(InvalidInput, match="regression"):
        class_names_of([1.0], _manifest("regression"))


def test_describe_truncates_long_strings() -> None:
    assert describe("x" * 100).endswith("...'")
    assert describe(1.5) == "number 1.5"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([[1, 2]] * 5 + [[1, True]], "row 5: feature 'b': expected a number, got boolean true"),
        ([{"a": 1, "b": 2}] * 3 + [{"a": None, "b": 2}], "row 3: feature 'a': expected a number"),
        ([[1, 2], [10**400, 2]], "row 1: feature 'a': number too large for float64"),
        ([[1, 2], [1, float("-inf")]], "row 1: feature 'b': expected a finite number"),
    ],
    ids=["bool-late", "null-late", "huge-int-late", "inf-late"],
)
def test_a_bad_cell_in_a_batch_is_named_by_row_and_feature(payload: Any, message: str) -> None:
    """The batch is checked in C first; a doubt sends it cell by cell, to name the cell."""
    with pytest.raises(InvalidInput, match=message):
        decode_rows(payload, NAMES, 10)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([[1, 2]] * 40 + [[10**400, 2]], "row 40: feature 'a': number too large for float64"),
        ([[1, 2]] * 40 + [[1, float("-inf")]], "row 40: feature 'b': expected a finite number"),
        ([{"a": 1, "b": 2}] * 40 + [{"a": 1e308, "b": float("nan")}], "row 40: feature 'b'"),
    ],
    ids=["huge-int", "inf", "nan"],
)
def test_a_bad_number_in_a_large_batch_is_named(payload: Any, message: str) -> None:
    """Past a few cells the finiteness check is numpy's, not math's: the same errors."""
    with pytest.raises(InvalidInput, match=message):
        decode_rows(payload, NAMES, 100)


def test_ints_and_floats_mix_exactly() -> None:
    rows = decode_rows([[1, 2.5], [2**53, -0.0]], NAMES, 10)
    np.testing.assert_array_equal(rows, [[1.0, 2.5], [float(2**53), -0.0]])
    assert rows.shape == (2, 2) and rows.flags.c_contiguous
