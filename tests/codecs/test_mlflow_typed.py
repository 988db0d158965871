"""The MLflow codec for a typed model: CSV cells read as their feature's type, no app.

The property: any census-like DataFrame with text, booleans and missing cells,
written by pandas as CSV or as ``dataframe_split`` with its columns in any
order, decodes to exactly its cells (a missing one as missing).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flaskserve.artifact import Feature, ModelManifest
from flaskserve.codecs.mlflow import decode_csv, decode_json, parse_cell
from flaskserve.schema import Table

FEATURES = (
    Feature("age", "int64", nullable=True),
    Feature("workclass", "str", nullable=True, unknown_categories="ignored"),
    Feature("sex", "str", categories=("Female", "Male"), unknown_categories="refused"),
    Feature("hours", "float64", nullable=True),
    Feature("employed", "bool"),
)
TYPED = ModelManifest(
    name="census",
    version=1,
    task="classification",
    estimator="x",
    features=FEATURES,
    sha256="0" * 64,
    created="now",
    labels=("<=50K", ">50K"),
    class_names=("<=50K", ">50K"),
    input="frame",
)
NUMBER, TEXT, BOOLEAN = Feature("x"), Feature("t", "str"), Feature("b", "bool")


@pytest.mark.parametrize(
    ("feature", "cell", "value"),
    [
        (NUMBER, " 2.5 ", 2.5),
        (NUMBER, "39", 39),
        (NUMBER, "", None),
        (NUMBER, "  ", None),
        (NUMBER, "nan", "nan"),
        (NUMBER, "12345678901234567891", 12345678901234567891),
        (TEXT, "12", "12"),
        (TEXT, " a ", " a "),
        (TEXT, "", None),
        (BOOLEAN, "True", True),
        (BOOLEAN, "false", False),
        (BOOLEAN, "1", "1"),
        (BOOLEAN, "", None),
    ],
)
def test_parse_cell(feature: Feature, cell: str, value: Any) -> None:
    assert parse_cell(feature, cell) == value


def test_an_empty_text_cell_is_text_where_empty_is_not_missing() -> None:
    assert parse_cell(TEXT, "", empty_is_missing=False) == ""
    assert parse_cell(TEXT, None, empty_is_missing=False) is None


def test_a_typed_csv_body_becomes_a_table_in_the_manifests_order() -> None:
    body = b"employed,sex,hours,workclass,age\nTrue,Male,,,39\nfalse,Female,40.5,Private,\n"

    table = decode_csv(body, TYPED, 8)

    assert isinstance(table, Table)
    assert table.names == [f.name for f in FEATURES]
    assert table.rows() == [
        [39.0, None, "Male", None, True],
        [None, "Private", "Female", 40.5, False],
    ]


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (
            "x,Private,Male,1,True",
            "CSV: line 2: feature 'age': expected an integer, got string 'x'",
        ),
        ("1,Private,Male,1,yes", "CSV: line 2: feature 'employed': expected true or false"),
        ("1,Private,Man,1,True", "CSV: line 2: feature 'sex': string 'Man' is not a category"),
        ("1,Private,,1,True", "CSV: line 2: feature 'sex': may not be missing (null)"),
        ("1.5,Private,Male,1,True", "feature 'age': expected an integer, got number 1.5"),
        ("1,Private,Male,1e400,True", "feature 'hours': expected a finite number, got inf"),
    ],
)
def test_typed_csv_refusals_name_line_and_feature(line: str, says: str) -> None:
    from flaskserve.errors import InvalidInput

    body = f"age,workclass,sex,hours,employed\n{line}\n".encode()

    with pytest.raises(InvalidInput) as error:
        decode_csv(body, TYPED, 8)

    assert says in error.value.message


# --- the property: pandas' own bodies decode to the frame's cells ---

# pandas writes a lone carriage return unquoted, which no CSV reader can tell from a line's end
TEXTS = st.text(st.characters(codec="utf-8", exclude_characters="\x00\r"), min_size=1)
ROWS = st.fixed_dictionaries(
    {
        "age": st.none() | st.integers(0, 120),
        "workclass": st.none() | TEXTS,
        "sex": st.sampled_from(["Female", "Male"]),
        # quarters: exact in the ten digits pandas' to_json keeps
        "hours": st.none() | st.integers(-4000, 4000).map(lambda n: n / 4),
        "employed": st.booleans(),
    }
)


def _cells(frame: pd.DataFrame) -> list[list[Any]]:
    return [
        [None if not isinstance(v, str) and pd.isna(v) else v for v in row]
        for row in frame[[f.name for f in FEATURES]].itertuples(index=False)
    ]


def _same(got: list[list[Any]], expected: list[list[Any]]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a == b, (a, b)
        assert all(isinstance(x, str) == isinstance(y, str) for x, y in zip(a, b, strict=True))


@pytest.mark.no_cover  # Hypothesis under the tracer doubles its time
@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.lists(ROWS, min_size=1, max_size=6), st.permutations([f.name for f in FEATURES]))
def test_pandas_bodies_decode_to_the_frames_cells(rows: list[dict[str, Any]], order: Any) -> None:
    frame = pd.DataFrame(rows)[list(order)]
    expected = _cells(frame)

    from_csv = decode_csv(frame.to_csv(index=False).encode(), TYPED, 8)
    split = {"dataframe_split": json.loads(frame.to_json(orient="split"))}
    from_json = decode_json(split, TYPED, 8)

    for table in (from_csv, from_json):
        assert isinstance(table, Table)
        _same(table.rows(), expected)
        assert not any(isinstance(v, float) and math.isnan(v) for r in table.rows() for v in r)
