"""A census-like table made in the tests (no download), and pipelines fitted on it.

Six features, three of them text, with missing cells in a number and a text
column: the shape of the adult census, churn or claims data real models serve.
"""

from __future__ import annotations

from typing import Any

import numpy as np

WORKCLASSES = ("Private", "Self-emp", "Federal-gov", "Local-gov")
EDUCATIONS = ("HS-grad", "Some-college", "Bachelors", "Masters", "Doctorate")
SEXES = ("Female", "Male")
FEATURES = ("age", "workclass", "education", "sex", "hours_per_week", "capital_gain")
#: the v2 datatype of each feature, as a v2 client sends them
V2_DATATYPES = {
    "age": "INT64",
    "workclass": "BYTES",
    "education": "BYTES",
    "sex": "BYTES",
    "hours_per_week": "FP64",
    "capital_gain": "FP64",
}
#: one row as a client sends it: a missing cell is null
ROW = {
    "age": 39,
    "workclass": "Private",
    "education": "Bachelors",
    "sex": "Male",
    "hours_per_week": None,
    "capital_gain": 2174.0,
}


def census_frame(rows: int = 600, seed: int = 7) -> tuple[Any, Any]:
    """A DataFrame of features and the income target (``>50K`` or ``<=50K``)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    age = rng.integers(17, 80, rows)
    education = rng.choice(EDUCATIONS, rows)
    hours = rng.normal(40, 10, rows).round()
    hours[rng.random(rows) < 0.1] = np.nan
    workclass = rng.choice(WORKCLASSES, rows).astype(object)
    workclass[rng.random(rows) < 0.08] = np.nan
    gain = np.where(rng.random(rows) < 0.1, rng.exponential(5000, rows), 0.0).round()
    score = (
        (age - 40) / 12
        + np.array([EDUCATIONS.index(e) for e in education]) * 0.6
        + np.nan_to_num(hours - 40, nan=0.0) / 10
        + gain / 4000
        + rng.normal(0, 1, rows)
    )
    frame = pd.DataFrame(
        {
            "age": age,
            "workclass": workclass,
            "education": education,
            "sex": rng.choice(SEXES, rows),
            "hours_per_week": hours,
            "capital_gain": gain,
        }
    )
    target = np.where(score > 1.2, ">50K", "<=50K")
    return frame, target


def onehot_pipeline(frame: Any, target: Any, *, unknown: str = "ignore") -> Any:
    """ColumnTransformer: imputed one-hot text, imputed scaled numbers; a logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    text = ["workclass", "education", "sex"]
    numbers = ["age", "hours_per_week", "capital_gain"]
    columns = ColumnTransformer(
        [
            (
                "text",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown=unknown),
                ),
                text,
            ),
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), numbers),
        ]
    )
    return make_pipeline(columns, LogisticRegression(max_iter=500)).fit(frame, target)


def hist_gradient_boosting(frame: Any, target: Any) -> Any:
    """HistGradientBoosting on ``category`` columns (``from_dtype``), missing cells native."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    typed = as_categories(frame)
    model = HistGradientBoostingClassifier(
        categorical_features="from_dtype", max_iter=30, random_state=0
    )
    return model.fit(typed, target)


def as_categories(frame: Any) -> Any:
    typed = frame.copy()
    for column in ("workclass", "education", "sex"):
        typed[column] = typed[column].astype("category")
    return typed


def strict_pipeline(frame: Any, target: Any) -> tuple[Any, Any]:
    """No imputers, unknown categories refused: fitted on *frame*'s complete rows, and those rows.

    Saved with ``save_model``, none of its features may be missing and its text
    features refuse categories they were not fitted on: every refusal a typed model has.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    complete = frame.notna().all(axis=1).to_numpy()
    columns = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="error"), ["workclass", "education", "sex"]),
            ("numbers", StandardScaler(), ["age", "hours_per_week", "capital_gain"]),
        ]
    )
    model = make_pipeline(columns, LogisticRegression(max_iter=500))
    return model.fit(frame[complete], target[complete]), frame[complete]


def booster(library: str, frame: Any, target: Any, trees: int = 20) -> Any:
    """An XGBoost or LightGBM classifier on *frame* (``category`` columns, missing cells)."""
    if library == "xgboost":
        import xgboost

        model = xgboost.XGBClassifier(n_estimators=trees, max_depth=3, enable_categorical=True)
        return model.fit(frame, target == ">50K")
    import lightgbm

    model = lightgbm.LGBMClassifier(n_estimators=trees, verbose=-1, min_child_samples=5)
    return model.fit(frame, target)
