"""The compiler and its parity gate: what is compiled, what is checked, what is recorded."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import skl2onnx
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import flaskserve.parity
from flaskserve import load_model, save_model
from flaskserve.admission import load_runtime
from flaskserve.artifact import MANIFEST_NAME, MODEL_NAME, read_manifest
from flaskserve.compiler import (
    COMPILED_FILE,
    RANDOM_ROWS,
    compile_artifact,
    compile_estimator,
    parity_rows,
    threshold_rows,
)
from flaskserve.parity import TOLERANCE
from flaskserve.runtime.compiled import OnnxSession
from flaskserve.training import RANDOM_SEED, TEST_SIZE

IRIS = load_iris()
X_IRIS: np.ndarray = IRIS["data"]
Y_IRIS: np.ndarray = IRIS["target"]
NAMES_IRIS: np.ndarray = np.array(["setosa", "versicolor", "virginica"])[Y_IRIS]


class Halver(RegressorMixin, BaseEstimator):  # type: ignore[misc]  # sklearn ships no types
    """A real custom regressor that skl2onnx has no converter for."""

    def fit(self, x: Any, y: Any = None) -> Halver:
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)[:, 0] / 2.0


def _iris_split() -> tuple[np.ndarray, np.ndarray]:
    """The training and held-out rows flaskserve's iris training used."""
    x_train, x_test, _, _ = train_test_split(
        X_IRIS, Y_IRIS, test_size=TEST_SIZE, random_state=RANDOM_SEED
    )
    return x_train, x_test


@pytest.fixture(scope="module")
def iris_forest(model_dir: Path) -> Any:
    """The 300-tree forest of the session's iris artifact, loaded once."""
    return load_model(model_dir).estimator


@pytest.fixture(scope="module")
def small_forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(X_IRIS, Y_IRIS)


def _unique_splits(estimator: Any) -> set[tuple[int, float]]:
    splits = set()
    for tree in estimator.estimators_:
        inner = tree.tree_
        for node in np.flatnonzero(inner.feature >= 0):
            splits.add((int(inner.feature[node]), float(inner.threshold[node])))
    return splits


# ---------------------------------------------------------------- the iris artifact


def test_iris_manifest_records_a_passed_gate(model_dir: Path, iris_forest: Any) -> None:
    record = read_manifest(model_dir).compiled
    assert record["status"] == "passed"
    assert record["format"] == "onnx"
    assert record["file"] == COMPILED_FILE == "model.onnx"
    payload = (model_dir / record["file"]).read_bytes()
    assert record["sha256"] == hashlib.sha256(payload).hexdigest()
    assert record["input_cast"] == "float32"  # trees compare float32(x) with their thresholds
    assert record["input_dtype"] in ("float64", "float32")
    assert record["versions"] == {
        "onnxruntime": onnxruntime.__version__,
        "skl2onnx": skl2onnx.__version__,
    }
    parity = record["parity"]
    assert parity["passed"] is True
    assert parity["mismatches"] == 0
    assert TOLERANCE == 1e-6
    assert 0.0 <= parity["max_difference"] <= TOLERANCE
    assert parity["ties"] > 0, "the forest's probabilities tie exactly on some random rows"
    x_train, x_test = _iris_split()
    assert parity["rows"] > 100_000
    assert parity["rows"] == len(parity_rows(iris_forest, 4, x_train, x_test))


# ---------------------------------------------------------------- the rows the gate checks


def test_threshold_rows_bracket_every_split(iris_forest: Any) -> None:
    base, _ = _iris_split()
    rows = threshold_rows(iris_forest, base)
    splits = _unique_splits(iris_forest)
    assert rows.shape == (3 * len(splits), 4)
    triples = rows.reshape(-1, 3, 4)
    checked = 0
    for index in (0, 1, 150, 299):
        tree = iris_forest.estimators_[index]
        inner = tree.tree_
        for node in np.flatnonzero(inner.feature >= 0):
            feature, threshold = int(inner.feature[node]), float(inner.threshold[node])
            step = np.float32(threshold)
            down = np.nextafter(step, np.float32(-np.inf))
            up = np.nextafter(step, np.float32(np.inf))
            assert down < threshold < up  # the neighbours fall on either side of the split
            found = np.flatnonzero(
                (triples[:, 0, feature] == threshold)
                & (triples[:, 1, feature] == down)
                & (triples[:, 2, feature] == up)
            )
            assert len(found) == 1, f"tree {index} node {node}: {len(found)} triples"
            on, below, above = triples[found[0]]
            others = [c for c in range(4) if c != feature]
            assert (on[others] == below[others]).all() and (on[others] == above[others]).all()
            checked += 1
            if node == 0:  # the root sends one step below left, one step above right
                path = tree.decision_path(np.array([below, above])).toarray()
                assert path[0, inner.children_left[0]] and not path[0, inner.children_right[0]]
                assert path[1, inner.children_right[0]] and not path[1, inner.children_left[0]]
    assert checked > 4


def test_threshold_rows_of_a_model_without_trees_are_empty() -> None:
    model = LogisticRegression(max_iter=1000).fit(X_IRIS, Y_IRIS)
    assert threshold_rows(model, X_IRIS).shape == (0, 4)


def test_parity_rows_stack_training_holdout_random_and_threshold_rows(
    small_forest: RandomForestClassifier,
) -> None:
    train, holdout = X_IRIS[:100], X_IRIS[100:]
    rows = parity_rows(small_forest, 4, train, holdout)
    thresholds = threshold_rows(small_forest, train)
    assert len(thresholds) == 3 * len(_unique_splits(small_forest)) > 0
    assert rows.shape == (len(train) + len(holdout) + RANDOM_ROWS + len(thresholds), 4)
    np.testing.assert_array_equal(rows[:100], train)
    np.testing.assert_array_equal(rows[100:150], holdout)
    np.testing.assert_array_equal(rows[150 + RANDOM_ROWS :], thresholds)
    spread = rows[150 : 150 + RANDOM_ROWS]
    low, high = train.min(axis=0), train.max(axis=0)
    margin = (high - low) * 0.1
    assert (spread >= low - margin).all() and (spread <= high + margin).all()
    outside = (spread < low) | (spread > high)
    share_outside = outside.mean(axis=0)  # uniform over 1.2 times each range: about 1/6 out
    assert ((share_outside > 0.1) & (share_outside < 0.25)).all(), share_outside
    np.testing.assert_array_equal(rows, parity_rows(small_forest, 4, train, holdout))


def test_parity_rows_without_training_rows() -> None:
    model = LogisticRegression(max_iter=1000).fit(X_IRIS, Y_IRIS)
    rows = parity_rows(model, 4, None, None)
    assert rows.shape == (RANDOM_ROWS, 4)
    assert np.isfinite(rows).all() and rows.std() > 1.0


# ---------------------------------------------------------------- compile_estimator


def test_logistic_regression_compiles_without_a_cast() -> None:
    model = LogisticRegression(max_iter=1000).fit(X_IRIS, Y_IRIS)
    compiled = compile_estimator(model, "classification", 4, X_IRIS)
    assert compiled.payload is not None
    record = compiled.record
    assert record["status"] == "passed"
    assert record["input_cast"] == "none"
    assert record["sha256"] == hashlib.sha256(compiled.payload).hexdigest()
    assert record["parity"]["mismatches"] == 0
    assert record["parity"]["max_difference"] <= TOLERANCE


def test_pipeline_with_string_labels_compiles() -> None:
    model = Pipeline(
        [("scale", StandardScaler()), ("model", LogisticRegression(max_iter=1000))]
    ).fit(X_IRIS, NAMES_IRIS)
    compiled = compile_estimator(model, "classification", 4, X_IRIS)
    assert compiled.record["status"] == "passed"
    assert compiled.record["input_cast"] == "none"
    assert compiled.payload is not None
    session = OnnxSession(
        compiled.payload,
        input_dtype=compiled.record["input_dtype"],
        input_cast=compiled.record["input_cast"],
    )
    got = session.run(X_IRIS)
    assert all(isinstance(label, str) for label in got.predictions)
    assert got.predictions.tolist() == model.predict(X_IRIS).tolist()
    assert got.probabilities is not None
    np.testing.assert_allclose(got.probabilities, model.predict_proba(X_IRIS), atol=TOLERANCE)


def test_small_forest_regressor_gate_is_consistent(tmp_path: Path) -> None:
    x, y = load_diabetes(return_X_y=True)
    model = RandomForestRegressor(n_estimators=10, random_state=0).fit(x, y)
    manifest = save_model(model, tmp_path / "forest", sample=x)
    record = manifest.compiled
    assert record["status"] in ("passed", "failed")
    parity = record["parity"]
    runtime = load_runtime(tmp_path / "forest")
    if record["status"] == "passed":
        assert parity["mismatches"] == 0 and parity["max_difference"] <= TOLERANCE
        assert runtime.kind == "onnx"
        rows = parity_rows(model, x.shape[1], x, None)
        served = runtime.predict(rows).predictions
        expected = model.predict(rows)
        gap = np.abs(served - expected) / np.maximum(1.0, np.abs(expected))
        assert gap.max() <= TOLERANCE
    else:
        assert parity["mismatches"] > 0 or parity["max_difference"] > TOLERANCE
        assert runtime.kind == "sklearn"


def test_hist_gradient_boosting_converts_or_is_unsupported() -> None:
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X_IRIS, Y_IRIS)
    compiled = compile_estimator(model, "classification", 4, X_IRIS)  # never raises
    record = compiled.record
    assert record["status"] in ("passed", "failed", "unsupported")
    if record["status"] == "unsupported":
        assert compiled.payload is None
        assert isinstance(record["reason"], str) and record["reason"]
        assert "float64:" in record["reason"] and "float32:" in record["reason"]
    else:
        assert compiled.payload is not None
        assert record["format"] == "onnx"
        assert record["input_dtype"] == "float32" or record["status"] == "passed"


def test_custom_estimator_is_unsupported_with_a_reason() -> None:
    model = Halver().fit(X_IRIS, Y_IRIS)
    compiled = compile_estimator(model, "regression", 4, X_IRIS)
    assert compiled.payload is None
    assert compiled.record["status"] == "unsupported"
    assert "Halver" in compiled.record["reason"]
    assert "file" not in compiled.record and "sha256" not in compiled.record


# ---------------------------------------------------------------- artifacts


def test_save_model_without_compile_writes_no_onnx(tmp_path: Path) -> None:
    model = LogisticRegression(max_iter=1000).fit(X_IRIS, Y_IRIS)
    manifest = save_model(model, tmp_path / "plain", sample=X_IRIS, compile=False)
    assert manifest.compiled == {}
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == [MANIFEST_NAME, MODEL_NAME]
    on_disk = json.loads((tmp_path / "plain" / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert on_disk["compiled"] == {}
    assert load_runtime(tmp_path / "plain").kind == "sklearn"


def test_compile_artifact_adds_onnx_and_keeps_the_model(tmp_path: Path) -> None:
    path = tmp_path / "later"
    model = LogisticRegression(max_iter=1000).fit(X_IRIS, Y_IRIS)
    before = save_model(model, path, sample=X_IRIS, compile=False)
    skops_bytes = (path / MODEL_NAME).read_bytes()

    after = compile_artifact(path)

    assert (path / MODEL_NAME).read_bytes() == skops_bytes
    assert after.sha256 == before.sha256 == hashlib.sha256(skops_bytes).hexdigest()
    assert read_manifest(path).sha256 == before.sha256
    assert after.compiled["status"] == "passed"
    onnx_bytes = (path / COMPILED_FILE).read_bytes()
    assert after.compiled["sha256"] == hashlib.sha256(onnx_bytes).hexdigest()
    assert read_manifest(path).compiled == after.compiled
    assert load_runtime(path).kind == "onnx"


def test_a_failed_gate_is_recorded_and_not_served_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(flaskserve.parity, "TOLERANCE", 0.0)
    path = tmp_path / "strict"
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X_IRIS, Y_IRIS)
    manifest = save_model(model, path, sample=X_IRIS)
    record = manifest.compiled
    assert record["status"] == "failed"
    assert record["parity"]["passed"] is False
    assert record["parity"]["mismatches"] == 0
    assert 0.0 < record["parity"]["max_difference"] < 1e-6  # float32 sums differ by ~1e-8
    assert record["input_dtype"] == "float32"  # float64 was tried first and failed too
    assert (path / COMPILED_FILE).read_bytes()
    assert read_manifest(path).compiled == record

    assert load_runtime(path).kind == "sklearn"
    with caplog.at_level(logging.WARNING, logger="flaskserve.admission"):
        forced = load_runtime(path, "compiled")
    assert forced.kind == "onnx"
    assert "failed its parity gate" in caplog.text
