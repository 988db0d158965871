"""What the model card reads from training and from the fitted estimator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from flaskserve.artifact import MANIFEST_NAME, Feature, ModelManifest, read_manifest
from flaskserve.modelcard import describe_features, feature_importances
from flaskserve.packaging import save_model
from flaskserve.training import IRIS_FEATURES

NAMES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(60, 3))
    return rows, (rows[:, 0] + 0.5 * rows[:, 1] > 0).astype(int)


def _forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=5, random_state=0)


# --- what training records


def test_iris_training_records_per_class_and_confusion(
    model_dir: Path, tutorial_accuracy: float
) -> None:
    metrics = read_manifest(model_dir).metrics
    assert metrics["accuracy"] == tutorial_accuracy
    assert metrics["confusion_matrix"] == [[16, 0, 0], [0, 16, 1], [0, 1, 11]]
    per_class = metrics["per_class"]
    assert list(per_class) == ["setosa", "versicolor", "virginica"]  # the manifest's order
    assert {name: r["support"] for name, r in per_class.items()} == {
        "setosa": 16,
        "versicolor": 17,
        "virginica": 12,
    }
    for name, expected in [("setosa", 1.0), ("versicolor", 16 / 17), ("virginica", 11 / 12)]:
        row = per_class[name]
        assert list(row) == ["precision", "recall", "f1", "support"]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((expected,) * 3)


def test_confusion_matrix_agrees_with_the_report(model_dir: Path) -> None:
    manifest = read_manifest(model_dir)
    matrix = np.array(manifest.metrics["confusion_matrix"])
    per_class = manifest.metrics["per_class"]
    supports = [per_class[name]["support"] for name in manifest.class_names]
    assert matrix.sum(axis=1).tolist() == supports  # rows are the true classes
    assert matrix.sum() == manifest.metrics["test_rows"]
    assert np.trace(matrix) / matrix.sum() == manifest.metrics["accuracy"]
    for i, name in enumerate(manifest.class_names):
        assert per_class[name]["recall"] == pytest.approx(matrix[i, i] / matrix[i].sum())
        assert per_class[name]["precision"] == pytest.approx(matrix[i, i] / matrix[:, i].sum())


def test_iris_manifest_records_importances(model_dir: Path) -> None:
    importances = read_manifest(model_dir).feature_importances
    assert list(importances) == list(IRIS_FEATURES)
    assert sum(importances.values()) == pytest.approx(1.0)
    assert all(v >= 0 for v in importances.values())
    # the petals separate the species; the tutorial's forest agrees
    assert max(importances, key=importances.__getitem__).startswith("petal")


# --- feature_importances


def test_forest_importances_by_name(data: tuple[np.ndarray, np.ndarray]) -> None:
    forest = _forest().fit(*data)
    importances = feature_importances(forest, NAMES)
    assert list(importances) == NAMES
    assert sum(importances.values()) == pytest.approx(1.0)
    assert list(importances.values()) == forest.feature_importances_.tolist()
    assert all(type(v) is float for v in importances.values())  # JSON-ready, not np.float64


def test_regressor_importances(data: tuple[np.ndarray, np.ndarray]) -> None:
    rows, _ = data
    forest = RandomForestRegressor(n_estimators=5, random_state=0).fit(rows, rows[:, 2])
    importances = feature_importances(forest, NAMES)
    assert sum(importances.values()) == pytest.approx(1.0)
    assert max(importances, key=importances.__getitem__) == "c"


def test_no_importances_for_linear_models(data: tuple[np.ndarray, np.ndarray]) -> None:
    assert feature_importances(LogisticRegression().fit(*data), NAMES) == {}


def test_pipeline_importances_are_the_final_steps(data: tuple[np.ndarray, np.ndarray]) -> None:
    pipeline = Pipeline([("scale", StandardScaler()), ("forest", _forest())]).fit(*data)
    importances = feature_importances(pipeline, NAMES)
    assert importances == feature_importances(pipeline.named_steps["forest"], NAMES)
    assert sum(importances.values()) == pytest.approx(1.0)


def test_pipeline_that_changes_the_columns_has_none(data: tuple[np.ndarray, np.ndarray]) -> None:
    pipeline = Pipeline([("poly", PolynomialFeatures(2)), ("forest", _forest())]).fit(*data)
    assert len(pipeline.named_steps["forest"].feature_importances_) > len(NAMES)
    assert feature_importances(pipeline, NAMES) == {}  # they would name other columns


class _Reports:
    """Stands in for an estimator that reports the importances given."""

    def __init__(self, values: Any) -> None:
        self.feature_importances_ = values


@pytest.mark.parametrize(
    "values",
    [[np.nan, 0.5, 0.5], [np.inf, 0.0, 0.0], [0.5, 0.5]],
    ids=["nan", "infinite", "wrong-count"],
)
def test_unusable_importances_are_dropped(values: list[float]) -> None:
    assert feature_importances(_Reports(np.array(values)), NAMES) == {}


# --- the manifest field


def test_save_model_records_importances(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray]
) -> None:
    rows, labels = data
    forest = _forest().fit(rows, labels)
    saved = save_model(forest, tmp_path / "forest", sample=rows, feature_names=NAMES, compile=False)
    assert saved.feature_importances == feature_importances(forest, NAMES)
    assert read_manifest(tmp_path / "forest").feature_importances == saved.feature_importances
    linear = LogisticRegression().fit(rows, labels)
    assert (
        save_model(linear, tmp_path / "linear", sample=rows, compile=False).feature_importances
        == {}
    )


def test_manifest_from_before_importances_loads(model_dir: Path) -> None:
    data = json.loads((model_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    del data["feature_importances"]
    manifest = ModelManifest.from_dict(data)
    assert manifest.feature_importances == {}
    assert list(manifest.feature_names) == list(IRIS_FEATURES)
    assert "feature_importances" in manifest.to_dict()  # written back with the field


# --- the features as /model and the card describe them


def test_describe_features_of_each_kind() -> None:
    features = (
        Feature("x", "float64", min=0.5, max=2.0),
        Feature("n", "int64", min=1.0, max=9.0, nullable=True),
        Feature("flag", "bool"),
        Feature(
            "city", "str", nullable=True, categories=("Oslo", "Rome"), unknown_categories="refused"
        ),
        Feature("note", "object", unknown_categories="ignored"),
        Feature("kind", "category", categories=("a", "b"), unknown_categories="ignored"),
    )
    assert describe_features(features) == [
        {
            "name": "x",
            "type": "number",
            "dtype": "float64",
            "nullable": False,
            "min": 0.5,
            "max": 2.0,
        },
        {
            "name": "n",
            "type": "integer",
            "dtype": "int64",
            "nullable": True,
            "min": 1.0,
            "max": 9.0,
        },
        {"name": "flag", "type": "boolean", "dtype": "bool", "nullable": False},
        {
            "name": "city",
            "type": "text",
            "dtype": "str",
            "nullable": True,
            "categories": ["Oslo", "Rome"],
            "unknown_categories": "refused",
        },
        {
            "name": "note",
            "type": "text",
            "dtype": "object",
            "nullable": False,
            "categories": None,  # free text: too many values to list
            "unknown_categories": "ignored",
        },
        {
            "name": "kind",
            "type": "text",
            "dtype": "category",
            "nullable": False,
            "categories": ["a", "b"],
            "unknown_categories": "ignored",
        },
    ]


def test_model_endpoint_shows_the_census_features(census_app: Flask) -> None:
    client = census_app.test_client()
    body = client.get("/model/census").json
    assert body is not None and client.get("/model").json == body
    features = {f["name"]: f for f in body["features"]}
    assert list(features) == [
        "age",
        "workclass",
        "education",
        "sex",
        "hours_per_week",
        "capital_gain",
    ]
    assert features["age"] == {
        "name": "age",
        "type": "integer",
        "dtype": "int64",
        "nullable": True,
        "min": 17.0,
        "max": 79.0,
    }
    assert features["sex"] == {
        "name": "sex",
        "type": "text",
        "dtype": "str",
        "nullable": True,
        "categories": ["Female", "Male"],
        "unknown_categories": "ignored",
    }
    assert features["hours_per_week"]["type"] == "number"
    assert features["hours_per_week"]["nullable"] is True
    assert body["input"] == "frame"


def test_model_endpoint_of_iris_types_every_feature(client: FlaskClient, model_dir: Path) -> None:
    manifest = read_manifest(model_dir)
    body = client.get("/model").json
    assert body is not None
    assert body["features"] == [
        {
            "name": f.name,
            "type": "number",
            "dtype": "float64",
            "nullable": False,
            "min": f.min,
            "max": f.max,
        }
        for f in manifest.features
    ]
