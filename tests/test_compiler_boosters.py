"""XGBoost and LightGBM models compiled to ONNX (onnxmltools) behind the parity gate: what
passes, what the compiled runtime answers, and what is left to the library with a reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.datasets import load_diabetes, load_iris

from census import as_categories, census_frame
from components import require_module
from flaskserve.admission import admit
from flaskserve.artifact import read_manifest
from flaskserve.cli import main
from flaskserve.compiler import COMPILED_FILE, RANDOM_ROWS
from flaskserve.packaging import save_model
from flaskserve.parity import TOLERANCE

xgb = require_module("xgboost", "pip install 'flaskserve[xgboost]'")
lgb = require_module("lightgbm", "pip install 'flaskserve[lightgbm]'")
require_module("onnxmltools", "pip install 'flaskserve[xgboost]'")

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
SPECIES = np.array(["setosa", "versicolor", "virginica"])[Y_IRIS]


def _with_missing(x: np.ndarray, seed: int) -> np.ndarray:
    """*x* with 10% of its cells missing (NaN), which the boosters take natively."""
    x = x.astype(np.float64).copy()
    x[np.random.default_rng(seed).random(x.shape) < 0.1] = np.nan
    return x


def _models() -> dict[str, tuple[Any, np.ndarray]]:
    iris = _with_missing(X_IRIS, 1)
    binary = Y_IRIS == 2
    measures, width = _with_missing(X_IRIS[:, :3], 2), X_IRIS[:, 3]  # petal width, regressed
    xgb_options: dict[str, Any] = {"n_estimators": 30, "max_depth": 3, "n_jobs": 1}
    lgb_options: dict[str, Any] = {"n_estimators": 30, "verbose": -1, "n_jobs": 1}
    lgb_options["min_child_samples"] = 5
    return {
        "xgb-iris": (xgb.XGBClassifier(**xgb_options).fit(iris, Y_IRIS), iris),
        "xgb-binary": (xgb.XGBClassifier(**xgb_options).fit(iris, binary), iris),
        "xgb-regressor": (xgb.XGBRegressor(**xgb_options).fit(measures, width), measures),
        "lgb-iris": (lgb.LGBMClassifier(**lgb_options).fit(iris, SPECIES), iris),
        "lgb-binary": (lgb.LGBMClassifier(**lgb_options).fit(iris, binary), iris),
        "lgb-regressor": (lgb.LGBMRegressor(**lgb_options).fit(measures, width), measures),
    }


MODELS = _models()


def _fresh_rows(sample: np.ndarray, count: int = 2_000) -> np.ndarray:
    """Random rows over the sample's ranges, some cells missing: none of them trained on."""
    rng = np.random.default_rng(99)
    low, high = np.nanmin(sample, axis=0), np.nanmax(sample, axis=0)
    return _with_missing(rng.uniform(low, high, size=(count, sample.shape[1])), 3)


@pytest.mark.parametrize("case", sorted(MODELS))
def test_boosters_compile_and_answer_as_their_library(case: str, tmp_path: Path) -> None:
    model, sample = MODELS[case]
    manifest = save_model(model, tmp_path / case, sample=sample)
    compiled = manifest.compiled
    assert compiled["status"] == "passed", compiled
    assert compiled["converter"] == "onnxmltools" and compiled["file"] == COMPILED_FILE
    parity = compiled["parity"]
    assert parity["mismatches"] == 0 and parity["max_difference"] <= TOLERANCE
    assert parity["parallel"]["passed"] is True  # a large batch may use every core
    assert parity["parts"]["training"] == len(sample) and parity["parts"]["missing"] > 0
    assert parity["parts"]["random"] == RANDOM_ROWS and parity["parts"]["thresholds"] > 0
    assert read_manifest(tmp_path / case).compiled == compiled
    runtime = admit(tmp_path / case, "auto")
    assert runtime.kind == "onnx"
    rows = _fresh_rows(sample)
    classifier = manifest.task == "classification"
    answer = runtime.predict(rows, proba=classifier)
    expected = np.asarray(model.predict(rows))
    if classifier:
        assert np.array_equal(answer.predictions, expected)
        assert answer.predictions.dtype == expected.dtype  # labels, not class indices
        difference = np.abs(answer.probabilities - model.predict_proba(rows)).max()
        assert difference <= TOLERANCE
    else:
        gap = np.abs(answer.predictions - expected) / np.maximum(1.0, np.abs(expected))
        assert gap.max() <= TOLERANCE
    native = admit(tmp_path / case, "sklearn")  # the library itself, on request
    assert native.kind == case.split("-")[0].replace("xgb", "xgboost").replace("lgb", "lightgbm")


def test_a_booster_that_is_not_compiled_says_why_and_serves_natively(tmp_path: Path) -> None:
    frame, target = census_frame(rows=300)
    typed = as_categories(frame)  # category columns: not compiled yet
    model = lgb.LGBMClassifier(n_estimators=20, verbose=-1, min_child_samples=5)
    manifest = save_model(model.fit(typed, target), tmp_path / "census", sample=typed)
    assert manifest.compiled["status"] == "unsupported"
    assert "category" in manifest.compiled["reason"]
    assert not (tmp_path / "census" / COMPILED_FILE).exists()
    runtime = admit(tmp_path / "census", "auto")
    assert runtime.kind == "lightgbm"


def test_a_booster_that_fails_the_gate_is_served_by_its_library(tmp_path: Path) -> None:
    # Features centred on 0: LightGBM splits there at its zero threshold, 1e-35, and on the
    # float32 steps around it the ONNX trees branch otherwise (2026-12, lightgbm 4.7)
    diabetes, progression = load_diabetes(return_X_y=True)
    model = lgb.LGBMRegressor(n_estimators=30, verbose=-1, n_jobs=1, min_child_samples=5)
    model.fit(diabetes[:300], progression[:300])
    manifest = save_model(model, tmp_path / "diabetes", sample=diabetes[:300])
    assert manifest.compiled["status"] == "failed"
    assert manifest.compiled["parity"]["mismatches"] > 0
    assert admit(tmp_path / "diabetes", "auto").kind == "lightgbm"
    assert admit(tmp_path / "diabetes", "compiled").kind == "onnx"  # the operator's override


def test_early_stopping_compiles_the_best_trees_only(tmp_path: Path) -> None:
    x, y = _with_missing(X_IRIS, 4), Y_IRIS == 1
    train, held = np.arange(len(x)) % 3 != 0, np.arange(len(x)) % 3 == 0
    model = xgb.XGBClassifier(n_estimators=200, max_depth=3, early_stopping_rounds=5)
    model.fit(x[train], y[train], eval_set=[(x[held], y[held])], verbose=False)
    assert model.best_iteration < 199  # XGBoost answers from fewer trees than it holds
    manifest = save_model(model, tmp_path / "early", sample=x[train], holdout=x[held])
    assert manifest.compiled["status"] == "passed", manifest.compiled
    rows = _fresh_rows(x)
    answer = admit(tmp_path / "early").predict(rows, proba=True)
    assert np.array_equal(answer.predictions, model.predict(rows))
    assert np.abs(answer.probabilities - model.predict_proba(rows)).max() <= TOLERANCE


def test_lightgbm_category_splits_in_a_matrix_fail_the_gate(tmp_path: Path) -> None:
    # a column of integer codes declared categorical: onnxmltools' graph answers otherwise
    rng = np.random.default_rng(0)
    codes, noise = rng.integers(0, 6, 600), rng.normal(size=600)
    x = np.column_stack([codes, noise]).astype(np.float64)
    y = (codes % 2 == 0) ^ (noise > 0)
    model = lgb.LGBMClassifier(n_estimators=20, verbose=-1, min_child_samples=5)
    manifest = save_model(model.fit(x, y, categorical_feature=[0]), tmp_path / "codes", sample=x)
    assert manifest.compiled["status"] == "failed"
    assert admit(tmp_path / "codes").kind == "lightgbm"


def test_a_missing_value_other_than_nan_is_not_compiled(tmp_path: Path) -> None:
    model = xgb.XGBClassifier(n_estimators=20, max_depth=3, missing=0.0).fit(X_IRIS, Y_IRIS)
    manifest = save_model(model, tmp_path / "zero", sample=X_IRIS)
    assert manifest.compiled["status"] == "unsupported"
    assert "missing=0.0" in manifest.compiled["reason"]
    assert admit(tmp_path / "zero").kind == "xgboost"


def test_flaskserve_compile_rebuilds_a_booster_artifact(tmp_path: Path) -> None:
    model, sample = MODELS["lgb-iris"]
    save_model(model, tmp_path / "m", sample=sample, compile=False)
    assert read_manifest(tmp_path / "m").compiled["status"] == "unsupported"
    result = CliRunner().invoke(main, ["compile", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    compiled = read_manifest(tmp_path / "m").compiled
    assert compiled["status"] == "passed", compiled
    assert compiled["parity"]["parts"]["random"] == RANDOM_ROWS  # around the recorded ranges
    runtime = admit(tmp_path / "m")
    assert runtime.kind == "onnx"
    rows = _fresh_rows(sample, 200)
    assert np.array_equal(runtime.predict(rows).predictions, model.predict(rows))
