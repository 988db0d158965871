"""Properties of the typed cell rules (flaskserve.schema): a cell fits its feature, or is named."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flaskserve.artifact import Feature
from flaskserve.errors import InvalidInput
from flaskserve.schema import Table, kind_of, typed_column

pytestmark = pytest.mark.no_cover  # Hypothesis under coverage's tracer doubles the time

PROPERTY = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CATEGORIES = ("a", "b", "Z")

features = st.builds(
    Feature,
    name=st.sampled_from(["age", "workclass", "flag"]),
    dtype=st.sampled_from(["float64", "int64", "bool", "str", "category"]),
    nullable=st.booleans(),
    categories=st.just(CATEGORIES),
    unknown_categories=st.sampled_from([None, "refused", "ignored"]),
)
cells = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.sampled_from(CATEGORIES),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


def _fits(feature: Feature, cell: Any) -> bool:
    """The rules of docs/typing.md, written out once more."""
    kind = kind_of(feature)
    if cell is None:
        return feature.nullable and kind != "boolean"
    if kind == "number":
        return type(cell) in (int, float) and math.isfinite(float(cell))
    if kind == "integer":
        whole = type(cell) is float and cell.is_integer() and abs(cell) < 2**53
        return (type(cell) is int and -(2**63) <= cell < 2**63) or whole
    if kind == "boolean":
        return type(cell) is bool
    if type(cell) is not str:
        return False
    return feature.unknown_categories != "refused" or cell in CATEGORIES


@PROPERTY
@given(feature=features, column=st.lists(cells, min_size=1, max_size=6))
def test_a_column_is_built_or_its_first_bad_cell_named(feature: Feature, column: list[Any]) -> None:
    bad = [i for i, cell in enumerate(column) if not _fits(feature, cell)]
    try:
        built = typed_column(feature, column, "row {}: ".format)
    except InvalidInput as error:
        assert bad, f"refused a good column: {error.message}"
        assert error.message.startswith(f"row {bad[0]}: feature {feature.name!r}: ")
        return
    assert not bad, f"took bad cells at {bad}"
    assert len(built) == len(column)
    back = Table((feature,), (built,)).rows()
    for got, (sent,) in zip([c for c in back], [[c] for c in column], strict=True):
        expected = None if sent is None else sent
        if kind_of(feature) in ("number", "integer") and sent is not None:
            assert got[0] == pytest.approx(float(sent), rel=1e-15)
        else:
            assert got[0] == expected


def test_missing_text_is_nan_as_pandas_has_it() -> None:
    column = typed_column(Feature("w", "str", nullable=True), ["a", None], "row {}: ".format)
    assert column.dtype == object and column[0] == "a" and math.isnan(column[1])


def test_an_integer_column_with_a_missing_cell_is_float() -> None:
    feature = Feature("n", "int64", nullable=True)
    assert typed_column(feature, [1, 2], str).dtype == np.int64
    assert typed_column(feature, [1, None], str).dtype == np.float64


def test_unknown_categories_of_a_category_column_are_missing_to_the_model() -> None:
    feature = Feature("c", "category", nullable=True, categories=CATEGORIES)
    frame = Table((feature,), (typed_column(feature, ["b", "new", None], str),)).to_frame()
    assert frame["c"].cat.codes.tolist() == [1, -1, -1]
    assert list(frame["c"].cat.categories) == list(CATEGORIES)


def test_the_public_dataframe_constructor_gives_the_same_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``_from_arrays`` is pandas' private API: without it the frame is built the public way."""
    import pandas as pd

    features = (
        Feature("n", "float64", nullable=True),
        Feature("w", "str", nullable=True),
        Feature("c", "category", categories=CATEGORIES),
        Feature("b", "bool"),
    )
    cells: list[list[Any]] = [[1.5, None], ["x", None], ["a", "Z"], [True, False]]
    table = Table(
        features, tuple(typed_column(f, c, str) for f, c in zip(features, cells, strict=True))
    )
    fast = table.to_frame()
    monkeypatch.delattr(pd.DataFrame, "_from_arrays")
    public = table.to_frame()
    pd.testing.assert_frame_equal(fast, public, check_dtype=False)
    # text may be object or pandas' str dtype: scikit-learn takes both alike
    for name in ("n", "c", "b"):
        assert fast[name].dtype == public[name].dtype
