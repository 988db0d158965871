"""save_model with a DataFrame sample: every common scikit-learn step saves, loads and serves."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder

import flaskserve
from census import ROW, as_categories, census_frame, hist_gradient_boosting
from flaskserve.admission import admit
from flaskserve.codecs.records import decode_records
from flaskserve.errors import InvalidInput

TEXT = ["workclass", "education", "sex"]
NUMBERS = ["age", "hours_per_week", "capital_gain"]


def _ordinal(frame: Any, target: Any) -> Any:
    columns = ColumnTransformer(
        [
            ("text", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), TEXT),
            ("numbers", "passthrough", NUMBERS),
        ]
    )
    return make_pipeline(columns, RandomForestClassifier(20, random_state=0)).fit(frame, target)


def _target_encoded(frame: Any, target: Any) -> Any:
    columns = ColumnTransformer(
        [
            ("text", make_pipeline(SimpleImputer(strategy="most_frequent"), TargetEncoder()), TEXT),
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), NUMBERS),
        ]
    )
    return make_pipeline(columns, LogisticRegression(max_iter=500)).fit(frame, target)


def _no_imputer(frame: Any, target: Any) -> Any:
    """Refuses a missing number (StandardScaler then LogisticRegression) and unknown text."""
    columns = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="error"), ["education", "sex"]),
            ("numbers", StandardScaler(), ["age", "capital_gain"]),
        ]
    )
    return make_pipeline(columns, LogisticRegression(max_iter=500)).fit(frame, target)


def _regressor_on_categories(frame: Any, target: Any) -> Any:
    model = HistGradientBoostingRegressor(categorical_features="from_dtype", max_iter=20)
    return model.fit(as_categories(frame), (target == ">50K").astype(float) * 3.5)


CASES: dict[str, tuple[Callable[[Any, Any], Any], Callable[[Any], Any]]] = {
    "ordinal-encoder": (_ordinal, lambda f: f),
    "target-encoder": (_target_encoded, lambda f: f),
    "hist-gradient-boosting-categories": (hist_gradient_boosting, as_categories),
    "hgb-regressor": (_regressor_on_categories, as_categories),
}


@pytest.fixture(scope="module")
def data() -> tuple[Any, Any]:
    return census_frame(300, seed=11)


@pytest.mark.parametrize("case", list(CASES))
def test_saves_loads_and_answers_like_itself(case: str, data: Any, tmp_path: Path) -> None:
    fit, shape = CASES[case]
    frame, target = data
    estimator = fit(frame, target)
    flaskserve.save_model(estimator, tmp_path / case, sample=shape(frame))
    runtime = admit(tmp_path / case, "auto")  # skops loads it: every type it needs is trusted
    rows = [ROW, {**ROW, "workclass": None, "education": "Masters"}, {**ROW, "sex": "Female"}]
    got = runtime.predict(decode_records(rows, runtime.manifest, 10)).predictions
    expected = estimator.predict(shape(pd.DataFrame(rows)))
    assert got.tolist() == expected.tolist()


def test_what_the_model_refuses_is_refused_before_it(data: Any, tmp_path: Path) -> None:
    frame, target = data
    estimator = _no_imputer(frame[["education", "sex", "age", "capital_gain"]], target)
    manifest = flaskserve.save_model(estimator, tmp_path / "strict", sample=frame)
    kinds = {f.name: (f.nullable, f.unknown_categories) for f in manifest.features}
    assert kinds == {
        "education": (False, "refused"),
        "sex": (False, "refused"),
        "age": (False, None),
        "capital_gain": (False, None),
    }
    row = {"education": "Masters", "sex": "Male", "age": 30, "capital_gain": 0.0}
    with pytest.raises(InvalidInput, match="feature 'age': may not be missing"):
        decode_records({**row, "age": None}, manifest, 10)
    with pytest.raises(InvalidInput, match="feature 'education': string 'PhD' is not a category"):
        decode_records({**row, "education": "PhD"}, manifest, 10)
    with pytest.raises(InvalidInput, match="feature 'sex': may not be missing"):
        decode_records({**row, "sex": None}, manifest, 10)


def test_boolean_and_integer_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"member": rng.random(200) < 0.5, "visits": rng.integers(0, 9, 200), "plan": "a"}
    )
    frame.loc[::7, "plan"] = "b"
    target = frame["member"] ^ (frame["visits"] > 4)
    columns = ColumnTransformer([("plan", OneHotEncoder(), ["plan"])], remainder="passthrough")
    model = make_pipeline(columns, RandomForestClassifier(10, random_state=0)).fit(frame, target)
    manifest = flaskserve.save_model(model, tmp_path / "members", sample=frame)
    assert [(f.name, f.dtype) for f in manifest.features] == [
        ("member", "bool"),
        ("visits", "int64"),
        ("plan", "str"),
    ]
    rows = decode_records([{"member": True, "visits": 7, "plan": "b"}], manifest, 10)
    assert admit(tmp_path / "members", "auto").predict(rows).predictions.tolist() == [False]
    with pytest.raises(
        InvalidInput, match="feature 'member': expected true or false, got number 1"
    ):
        decode_records({"member": 1, "visits": 7, "plan": "b"}, manifest, 10)
    with pytest.raises(
        InvalidInput, match=re.escape("feature 'visits': expected an integer, got number 7.5")
    ):
        decode_records({"member": True, "visits": 7.5, "plan": "b"}, manifest, 10)


def test_a_numeric_frame_keeps_the_matrix_input(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": np.arange(50.0), "b": np.arange(50.0) % 7})
    model = RandomForestClassifier(5, random_state=0).fit(frame, frame["a"] > 20)
    manifest = flaskserve.save_model(model, tmp_path / "numbers", sample=frame)
    assert manifest.input == "matrix"
    assert [(f.dtype, f.nullable) for f in manifest.features] == [("float64", False)] * 2


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"when": pd.to_datetime(["2026-01-01"] * 3)}), "has dtype datetime64"),
        (pd.DataFrame({"mixed": ["a", 1, "b"]}), "column 'mixed' mixes text with int values"),
        (pd.DataFrame({"x": [1.0, np.inf, 2.0]}), "column 'x' contains infinite values"),
        (pd.DataFrame({"x": []}, dtype=float), "expected at least one row"),
    ],
)
def test_unservable_columns_are_refused_at_save(frame: Any, message: str, tmp_path: Path) -> None:
    model = RandomForestClassifier(2).fit(np.zeros((4, 1)), [0, 1, 0, 1])
    model.feature_names_in_ = np.array(list(frame.columns), dtype=object)
    with pytest.raises(ValueError, match=message):
        flaskserve.save_model(model, tmp_path / "bad", sample=frame)
    assert not (tmp_path / "bad").exists()
