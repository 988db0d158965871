from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LinearRegression

from flaskserve.admission import load_runtime
from flaskserve.artifact import load_model
from flaskserve.errors import ArtifactError, InvalidInput, ModelError
from flaskserve.runtime.sklearn import SklearnRuntime

ROW = np.array([[5.9, 3.0, 5.1, 1.8]])


class ConstantRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """A real estimator whose output is whatever it was built with."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def fit(self, x: Any, y: Any) -> ConstantRegressor:
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def predict(self, x: Any) -> np.ndarray:
        if np.asarray(x).shape[1] != self.n_features_in_:
            raise ValueError("X has the wrong number of features")
        return np.full(len(x), self.value)


@pytest.mark.parametrize("kind", ["sklearn", "compiled"])
def test_loaded_runtime_predicts_like_the_estimator(model_dir: Path, kind: str) -> None:
    runtime = load_runtime(model_dir, kind)
    assert runtime.kind == ("onnx" if kind == "compiled" else "sklearn")
    estimator = load_model(model_dir).estimator
    prediction = runtime.predict(ROW, proba=True)
    np.testing.assert_array_equal(prediction.predictions, estimator.predict(ROW))
    assert prediction.probabilities is not None
    np.testing.assert_allclose(prediction.probabilities, estimator.predict_proba(ROW), atol=1e-6)
    assert runtime.predict(ROW).probabilities is None


def test_sample_rows_reproduce_recorded_predictions(model_dir: Path) -> None:
    runtime = load_runtime(model_dir)
    sample = runtime.manifest.sample
    result = runtime.predict(np.array(sample["inputs"]))
    assert result.predictions.tolist() == sample["predictions"]


def test_missing_artifact_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"flaskserve\.json"):
        load_runtime(tmp_path)


def _runtime(estimator: Any, model_dir: Path) -> SklearnRuntime:
    manifest = load_model(model_dir).manifest
    return SklearnRuntime(estimator, manifest)


def test_non_finite_output_is_a_model_error(model_dir: Path) -> None:
    runtime = _runtime(ConstantRegressor(float("nan")).fit(ROW, [0]), model_dir)
    with pytest.raises(ModelError, match="non-finite predictions") as info:
        runtime.predict(ROW)
    assert info.value.status_code == 500


def test_estimator_failure_is_a_model_error(model_dir: Path) -> None:
    runtime = _runtime(ConstantRegressor().fit(np.ones((1, 3)), [0]), model_dir)
    with pytest.raises(ModelError, match="failed to predict"):
        runtime.predict(ROW)


def test_probabilities_of_a_regressor_are_refused(model_dir: Path) -> None:
    runtime = _runtime(LinearRegression().fit(np.ones((2, 4)), [0, 1]), model_dir)
    with pytest.raises(InvalidInput, match="does not give probabilities"):
        runtime.predict(ROW, proba=True)
