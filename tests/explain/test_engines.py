"""Every exact method against a reference: shap's explainers, and the model's own output.

Each case trains a real model (scikit-learn, XGBoost, LightGBM) on data made here,
saves it with ``save_model`` and explains rows it was not trained on. Two things
are checked on every row and class, within 1e-6: the contributions equal the
reference implementation's (shap's TreeExplainer or LinearExplainer on the same
estimator), and base value + contributions equal the model's own output in the
space the explanation names (``predict_proba``, ``decision_function``, XGBoost's
``output_margin``, LightGBM's ``raw_score``, ``predict``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from components import require_module
from flaskserve import save_model
from flaskserve.artifact import read_manifest
from flaskserve.explain import Explanation, build_explainer

shap = require_module("shap", "the reference explanations are checked against")
xgboost = require_module("xgboost", "XGBoost models are explained")
lightgbm = require_module("lightgbm", "LightGBM models are explained")

IRIS_X, IRIS_Y = load_iris(return_X_y=True)
DIABETES_X, DIABETES_Y = load_diabetes(return_X_y=True)
TOLERANCE = 1e-6


def _fresh(x: np.ndarray, count: int = 300, seed: int = 5) -> np.ndarray:
    """Rows over the training ranges, none of them trained on."""
    rng = np.random.default_rng(seed)
    return rng.uniform(x.min(axis=0), x.max(axis=0), size=(count, x.shape[1]))


def _binary(y: np.ndarray) -> np.ndarray:
    return np.asarray(y == 2, dtype=np.int64)


@dataclass(frozen=True)
class Case:
    model: Callable[[], Any]
    x: np.ndarray
    y: np.ndarray
    space: str
    output: Callable[[Any, np.ndarray], np.ndarray]  # (n, k) in the space
    reference: Callable[[Any, np.ndarray], np.ndarray]  # (n, f, k) from shap


def _proba(model: Any, rows: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict_proba(rows))


def _two_sided(margin: np.ndarray) -> np.ndarray:
    margin = np.asarray(margin, dtype=np.float64).reshape(len(margin), -1)[:, -1]
    return np.stack([-margin, margin], axis=1)


def _decision(model: Any, rows: np.ndarray) -> np.ndarray:
    scores = np.asarray(model.decision_function(rows), dtype=np.float64)
    return _two_sided(scores) if scores.ndim == 1 else scores


def _value(model: Any, rows: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(rows), dtype=np.float64).reshape(-1, 1)


def _xgb_margin(model: Any, rows: np.ndarray) -> np.ndarray:
    margin = np.asarray(model.predict(rows, output_margin=True), dtype=np.float64)
    if margin.ndim == 1 and hasattr(model, "classes_"):
        return _two_sided(margin)
    return margin.reshape(len(rows), -1)


def _lgb_raw(model: Any, rows: np.ndarray) -> np.ndarray:
    raw = np.asarray(model.predict(rows, raw_score=True), dtype=np.float64)
    if raw.ndim == 1 and hasattr(model, "classes_"):
        return _two_sided(raw)
    return raw.reshape(len(rows), -1)


def _as_nfk(values: Any, rows: int, width: int, two_sided: bool) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if two_sided:
        one = values.reshape(rows, width)
        return np.stack([-one, one], axis=2)
    return np.asarray(values.reshape(rows, width, -1))


def _tree_shap(two_sided: bool = False, cast: bool = True) -> Callable[[Any, np.ndarray], Any]:
    def reference(model: Any, rows: np.ndarray) -> np.ndarray:
        seen = rows.astype(np.float32).astype(np.float64) if cast else rows
        with warnings.catch_warnings():  # shap warns of its own output shapes changing
            warnings.simplefilter("ignore")
            values = shap.TreeExplainer(model).shap_values(seen, check_additivity=False)
        if isinstance(values, list):  # a LightGBM binary model: [class 0, class 1]
            values = values[-1]
        return _as_nfk(values, len(rows), rows.shape[1], two_sided)

    return reference


def _linear_shap(x: np.ndarray, two_sided: bool = False) -> Callable[[Any, np.ndarray], Any]:
    def reference(model: Any, rows: np.ndarray) -> np.ndarray:
        head, last = (model[:-1], model[-1]) if hasattr(model, "steps") else (None, model)
        background = head.transform(x) if head is not None else x
        seen = head.transform(rows) if head is not None else rows
        masker = shap.maskers.Independent(background, max_samples=len(background))
        values = shap.LinearExplainer(last, masker).shap_values(seen)
        return _as_nfk(values, len(rows), rows.shape[1], two_sided)

    return reference


CASES = {
    "forest-iris": Case(
        lambda: RandomForestClassifier(n_estimators=50, random_state=0),
        IRIS_X,
        IRIS_Y,
        "probability",
        _proba,
        _tree_shap(),
    ),
    "gradient-boosting-binary": Case(
        lambda: GradientBoostingClassifier(n_estimators=40, random_state=0),
        IRIS_X,
        _binary(IRIS_Y),
        "log_odds",
        _decision,
        _tree_shap(two_sided=True),
    ),
    "hist-gradient-boosting-3-class": Case(
        lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
        IRIS_X,
        IRIS_Y,
        "raw",
        _decision,
        _tree_shap(),
    ),
    "hist-gradient-boosting-binary": Case(
        lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
        IRIS_X,
        _binary(IRIS_Y),
        "log_odds",
        _decision,
        _tree_shap(two_sided=True),
    ),
    "extra-trees-regressor": Case(
        lambda: ExtraTreesRegressor(n_estimators=30, random_state=0),
        DIABETES_X,
        DIABETES_Y,
        "raw",
        _value,
        _tree_shap(),
    ),
    "gradient-boosting-regressor": Case(
        lambda: GradientBoostingRegressor(n_estimators=40, random_state=0),
        DIABETES_X,
        DIABETES_Y,
        "raw",
        _value,
        _tree_shap(),
    ),
    "decision-tree-regressor": Case(
        lambda: DecisionTreeRegressor(max_depth=6, random_state=0),
        DIABETES_X,
        DIABETES_Y,
        "raw",
        _value,
        _tree_shap(),
    ),
    "xgboost-3-class": Case(
        lambda: xgboost.XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1),
        IRIS_X,
        IRIS_Y,
        "raw",
        _xgb_margin,
        _tree_shap(cast=False),
    ),
    "xgboost-binary": Case(
        lambda: xgboost.XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1),
        IRIS_X,
        _binary(IRIS_Y),
        "log_odds",
        _xgb_margin,
        _tree_shap(two_sided=True, cast=False),
    ),
    "xgboost-regressor": Case(
        lambda: xgboost.XGBRegressor(n_estimators=30, max_depth=3, n_jobs=1),
        DIABETES_X,
        DIABETES_Y,
        "raw",
        _xgb_margin,
        _tree_shap(cast=False),
    ),
    "lightgbm-3-class": Case(
        lambda: lightgbm.LGBMClassifier(n_estimators=30, verbose=-1, n_jobs=1),
        IRIS_X,
        IRIS_Y,
        "raw",
        _lgb_raw,
        _tree_shap(cast=False),
    ),
    "lightgbm-binary": Case(
        lambda: lightgbm.LGBMClassifier(n_estimators=30, verbose=-1, n_jobs=1),
        IRIS_X,
        _binary(IRIS_Y),
        "log_odds",
        _lgb_raw,
        _tree_shap(two_sided=True, cast=False),
    ),
    "lightgbm-regressor": Case(
        lambda: lightgbm.LGBMRegressor(n_estimators=30, verbose=-1, n_jobs=1),
        DIABETES_X,
        DIABETES_Y,
        "raw",
        _lgb_raw,
        _tree_shap(cast=False),
    ),
    "logistic-3-class": Case(
        lambda: LogisticRegression(max_iter=1000),
        IRIS_X,
        IRIS_Y,
        "raw",
        _decision,
        _linear_shap(IRIS_X),
    ),
    "logistic-binary-scaled": Case(
        lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        IRIS_X,
        _binary(IRIS_Y),
        "log_odds",
        _decision,
        _linear_shap(IRIS_X, two_sided=True),
    ),
    "linear-regression": Case(
        LinearRegression, DIABETES_X, DIABETES_Y, "raw", _value, _linear_shap(DIABETES_X)
    ),
    "ridge": Case(Ridge, DIABETES_X, DIABETES_Y, "raw", _value, _linear_shap(DIABETES_X)),
}


def _explain(case: Case, tmp_path: Path) -> tuple[Any, Explanation, np.ndarray]:
    model = case.model().fit(case.x, case.y)
    save_model(model, tmp_path / "model", sample=case.x, compile=False)
    rows = _fresh(case.x)
    explainer = build_explainer(tmp_path / "model", read_manifest(tmp_path / "model"))
    return model, explainer.explain(rows), rows


@pytest.mark.parametrize("name", sorted(CASES))
def test_contributions_equal_the_reference_and_add_up_to_the_output(
    name: str, tmp_path: Path
) -> None:
    case = CASES[name]
    model, explanation, rows = _explain(case, tmp_path)
    assert explanation.space == case.space
    assert explanation.contributions.shape[:2] == (len(rows), case.x.shape[1])
    np.testing.assert_allclose(
        explanation.contributions, case.reference(model, rows), rtol=0, atol=TOLERANCE
    )
    # additivity, against the model's own output in the space the explanation names
    expected = case.output(model, rows)
    scale = np.maximum(1.0, np.abs(expected))  # a regression's values reach 300
    assert np.max(np.abs(explanation.outputs - expected) / scale) <= TOLERANCE


@pytest.mark.parametrize("name", ["forest-iris", "logistic-binary-scaled", "lightgbm-3-class"])
def test_the_manifest_records_the_method_and_global_importance(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    model = case.model().fit(case.x, case.y)
    holdout = _fresh(case.x, count=40, seed=9)
    manifest = save_model(model, tmp_path / "m", sample=case.x, holdout=holdout, compile=False)
    record = manifest.explanation
    assert record["space"] == case.space and record["method"] in ("tree_shap", "linear", "booster")
    assert record["importance_rows"] == 40 and record["importance_over"] == "held-out"
    explanation = build_explainer(tmp_path / "m", read_manifest(tmp_path / "m")).explain(holdout)
    chosen = np.argmax(explanation.outputs, axis=1)
    toward = explanation.contributions[np.arange(40), :, chosen]
    expected = dict(zip(explanation.columns, np.abs(toward).mean(axis=0), strict=True))
    assert record["importance"] == pytest.approx(expected, abs=1e-12)
