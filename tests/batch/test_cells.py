"""Cells to numbers: the HTTP API's rules, with a reason for every refusal."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from flaskserve.batch.cells import decode_features


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("5.1", 5.1),
        (" 5.1 ", 5.1),
        ("-2", -2.0),
        ("+3", 3.0),
        (".5", 0.5),
        ("1.", 1.0),
        ("1e3", 1e3),
    ],
    ids=["plain", "spaces", "negative", "plus", "leading-dot", "trailing-dot", "exponent"],
)
def test_text_numbers(cell: str, value: float) -> None:
    matrix, valid, reasons = decode_features(pa.table({"x": [cell, "1"]}), ["x"])

    assert reasons == []
    assert valid.tolist() == [True, True]
    assert matrix[:, 0].tolist() == [value, 1.0]


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("", "expected a number, got an empty cell"),
        ("  ", "expected a number, got an empty cell"),
        (None, "expected a number, got null"),
        ("abc", "expected a number, got string 'abc'"),
        ("1_000", "expected a number, got string '1_000'"),
        ("0x10", "expected a number, got string '0x10'"),
        ("NaN", "expected a finite number, got string 'NaN'"),
        ("-Infinity", "expected a finite number, got string '-Infinity'"),
        ("1e400", "expected a finite number, got string '1e400'"),
        ("x" * 60, f"expected a number, got string '{'x' * 37}...'"),
    ],
    ids=[
        "empty",
        "blank",
        "null",
        "text",
        "underscore",
        "hex",
        "nan",
        "infinity",
        "overflow",
        "long",
    ],
)
def test_text_refusals(cell: str | None, reason: str) -> None:
    table = pa.table({"x": pa.array(["1", cell, "2"], pa.string()), "y": ["1", "2", "3"]})

    matrix, valid, reasons = decode_features(table, ["x", "y"])

    assert valid.tolist() == [True, False, True]
    assert matrix.tolist() == [[1.0, 1.0], [2.0, 3.0]]
    assert reasons == [(1, f"column 'x': {reason}")]


def test_typed_columns() -> None:
    table = pa.table(
        {
            "i": pa.array([1, 2**60, None, 4], pa.int64()),
            "f": pa.array([0.5, 1.5, 2.5, math.inf], pa.float32()),
        }
    )

    matrix, valid, reasons = decode_features(table, ["f", "i"])

    assert valid.tolist() == [True, True, False, False]
    np.testing.assert_array_equal(matrix, [[0.5, 1.0], [1.5, float(2**60)]])
    assert reasons == [
        (2, "column 'i': expected a number, got null"),
        (3, "column 'f': expected a finite number, got inf"),
    ]
