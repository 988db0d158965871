"""Tests for flaskserve.artifact: saving, loading, and refusing model artifacts."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pathlib
import pickle
import platform
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn
import skops
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.cluster import KMeans
from sklearn.datasets import load_iris
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import flaskserve
from flaskserve.artifact import MANIFEST_NAME, MODEL_NAME, ModelManifest, read_manifest
from flaskserve.errors import ArtifactError

TUTORIAL_ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]

IRIS = load_iris()
X_IRIS: np.ndarray = IRIS["data"]
Y_IRIS: np.ndarray = IRIS["target"]


class Doubler(RegressorMixin, BaseEstimator):  # type: ignore[misc]  # sklearn ships no types
    """A custom estimator: not a type flaskserve trusts, and without n_features_in_."""

    def fit(self, x: Any, y: Any = None) -> Doubler:
        self.scale_ = 2.0
        return self

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)[:, 0] * self.scale_


class TouchOnUnpickle:
    """Unpickling this creates *sentinel*: a stand-in for a malicious pickle."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.sentinel,))


def _tutorial_train_split() -> np.ndarray:
    x_train: np.ndarray = train_test_split(X_IRIS, Y_IRIS, test_size=0.3, random_state=1234)[0]
    return x_train


def _row(names: Sequence[str]) -> np.ndarray:
    return np.array([[TUTORIAL_ROW[n] for n in names]])


def _copy(model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "iris"
    shutil.copytree(model_dir, copy)
    return copy


def _read_json(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    return data


def _write_json(directory: Path, data: Any) -> None:
    (directory / MANIFEST_NAME).write_text(json.dumps(data), encoding="utf-8")


def _fitted_forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(X_IRIS, Y_IRIS)


# --- the iris artifact from conftest ---------------------------------------------------------


def test_round_trip_predicts_tutorial_row(model_dir: Path) -> None:
    loaded = flaskserve.load_model(model_dir)
    assert isinstance(loaded, flaskserve.LoadedModel)
    assert loaded.path == model_dir
    assert isinstance(loaded.estimator, RandomForestClassifier)
    assert loaded.estimator.n_estimators == 300
    np.testing.assert_array_equal(
        loaded.estimator.predict(_row(loaded.manifest.feature_names)), [2]
    )


def test_manifest_identity(model_dir: Path) -> None:
    manifest = flaskserve.load_model(model_dir).manifest
    assert manifest.name == "iris"
    assert manifest.version == 1
    assert manifest.task == "classification"
    assert manifest.estimator == "sklearn.ensemble._forest.RandomForestClassifier"
    assert manifest.model_file == MODEL_NAME
    assert manifest.format_version == 1
    created = dt.datetime.fromisoformat(manifest.created)
    assert created.tzinfo is not None
    assert abs(dt.datetime.now(dt.timezone.utc) - created) < dt.timedelta(days=1)


def test_manifest_features(model_dir: Path) -> None:
    manifest = flaskserve.load_model(model_dir).manifest
    assert list(manifest.feature_names) == IRIS_FEATURES
    x_train = _tutorial_train_split()
    for i, feature in enumerate(manifest.features):
        assert feature.dtype == "float64"
        assert feature.min is not None and feature.max is not None
        assert feature.min <= feature.max
        # The ranges are those of the training split, inside the whole data set's.
        assert feature.min == x_train[:, i].min()
        assert feature.max == x_train[:, i].max()
        assert X_IRIS[:, i].min() <= feature.min
        assert feature.max <= X_IRIS[:, i].max()
    petal_width = manifest.features[3]
    assert petal_width.min is not None and petal_width.max is not None
    assert 0.1 <= petal_width.min < 0.5
    assert 2.0 < petal_width.max <= 2.5


def test_manifest_classes(model_dir: Path) -> None:
    manifest = flaskserve.load_model(model_dir).manifest
    assert manifest.labels == (0, 1, 2)
    assert all(type(label) is int for label in manifest.labels)
    assert manifest.class_names == tuple(IRIS_CLASSES)


def test_manifest_metrics(model_dir: Path, tutorial_accuracy: float) -> None:
    metrics = flaskserve.load_model(model_dir).manifest.metrics
    assert metrics["accuracy"] == tutorial_accuracy
    assert 0.9 < metrics["f1_macro"] <= 1.0
    assert metrics["train_rows"] == 105
    assert metrics["test_rows"] == 45


def test_manifest_versions(model_dir: Path) -> None:
    versions = flaskserve.load_model(model_dir).manifest.versions
    assert versions == {
        "flaskserve": flaskserve.__version__,
        "scikit-learn": sklearn.__version__,
        "skops": skops.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def test_manifest_sha256_is_that_of_the_model_file(model_dir: Path) -> None:
    manifest = flaskserve.load_model(model_dir).manifest
    assert re.fullmatch(r"[0-9a-f]{64}", manifest.sha256)
    assert manifest.sha256 == hashlib.sha256((model_dir / MODEL_NAME).read_bytes()).hexdigest()


def test_manifest_sample(model_dir: Path) -> None:
    loaded = flaskserve.load_model(model_dir)
    sample = loaded.manifest.sample
    assert set(sample) == {"inputs", "predictions"}
    assert len(sample["inputs"]) == 5
    assert len(sample["predictions"]) == 5
    np.testing.assert_array_equal(sample["inputs"], _tutorial_train_split()[:5])
    np.testing.assert_array_equal(
        sample["predictions"], loaded.estimator.predict(np.array(sample["inputs"]))
    )


def test_read_manifest_matches_the_file(model_dir: Path) -> None:
    manifest = read_manifest(model_dir)
    assert manifest == flaskserve.load_model(model_dir).manifest
    on_disk = _read_json(model_dir)
    assert on_disk["name"] == "iris"
    assert on_disk["features"][0] == {
        "name": "sepal_length",
        "dtype": "float64",
        "min": manifest.features[0].min,
        "max": manifest.features[0].max,
    }
    assert ModelManifest.from_dict(on_disk) == manifest


# --- saving other estimators -----------------------------------------------------------------

Y_NAMES = np.array(["setosa", "versicolor", "virginica"])[Y_IRIS]


def _pipeline() -> Any:
    pipe = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=500))])
    return pipe.fit(X_IRIS, Y_NAMES)


def _forest_regressor() -> Any:
    return RandomForestRegressor(n_estimators=5, random_state=0).fit(X_IRIS[:, :3], X_IRIS[:, 3])


def _hist_gradient_boosting() -> Any:
    return HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X_IRIS, Y_IRIS)


def _knn(algorithm: str) -> Callable[[], Any]:
    def make() -> Any:
        return KNeighborsClassifier(n_neighbors=3, algorithm=algorithm).fit(X_IRIS, Y_IRIS)

    return make


@pytest.mark.parametrize(
    ("make", "task", "labels"),
    [
        (_pipeline, "classification", ("setosa", "versicolor", "virginica")),
        (_forest_regressor, "regression", ()),
        (_hist_gradient_boosting, "classification", (0, 1, 2)),
        (_knn("kd_tree"), "classification", (0, 1, 2)),
        (_knn("ball_tree"), "classification", (0, 1, 2)),
        (_knn("brute"), "classification", (0, 1, 2)),
    ],
    ids=[
        "pipeline-string-labels",
        "random-forest-regressor",
        "hist-gradient-boosting",
        "knn-kd-tree",
        "knn-ball-tree",
        "knn-brute",
    ],
)
def test_save_and_load_predicts_identically(
    make: Callable[[], Any], task: str, labels: tuple[Any, ...], tmp_path: Path
) -> None:
    estimator = make()
    x = X_IRIS[:, : estimator.n_features_in_]
    manifest = flaskserve.save_model(estimator, tmp_path / "model", sample=x)
    assert manifest.task == task
    assert manifest.labels == labels
    assert manifest.class_names == tuple(str(label) for label in labels)
    assert manifest.estimator.endswith("." + type(estimator).__name__)

    loaded = flaskserve.load_model(tmp_path / "model")
    assert type(loaded.estimator) is type(estimator)
    assert loaded.manifest == manifest
    np.testing.assert_array_equal(loaded.estimator.predict(x), estimator.predict(x))
    np.testing.assert_array_equal(manifest.sample["predictions"], estimator.predict(x[:5]))


def test_save_records_names_version_and_metrics(tmp_path: Path) -> None:
    manifest = flaskserve.save_model(
        _fitted_forest(),
        tmp_path / "flowers",
        sample=X_IRIS,
        feature_names=["a", "b", "c", "d"],
        class_names=IRIS_CLASSES,
        name="blooms",
        version=3,
        metrics={"accuracy": 0.5},
    )
    assert manifest.name == "blooms"
    assert manifest.version == 3
    assert manifest.metrics == {"accuracy": 0.5}
    assert list(manifest.feature_names) == ["a", "b", "c", "d"]
    assert manifest.class_names == tuple(IRIS_CLASSES)
    assert flaskserve.load_model(tmp_path / "flowers").manifest == manifest


def test_save_defaults_name_and_feature_names(tmp_path: Path) -> None:
    manifest = flaskserve.save_model(_fitted_forest(), tmp_path / "my-model", sample=X_IRIS)
    assert manifest.name == "my-model"
    assert list(manifest.feature_names) == ["x0", "x1", "x2", "x3"]
    assert manifest.class_names == ("0", "1", "2")
    assert manifest.metrics == {}


def test_save_accepts_a_list_sample(tmp_path: Path) -> None:
    manifest = flaskserve.save_model(_fitted_forest(), tmp_path / "m", sample=X_IRIS.tolist())
    assert manifest.features[0].min == X_IRIS[:, 0].min()
    assert len(manifest.sample["inputs"]) == 5


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (
            lambda: RandomForestClassifier(n_estimators=5),
            {"sample": X_IRIS},
            "expected a fitted scikit-learn estimator",
        ),
        (lambda: object(), {"sample": X_IRIS}, "expected a fitted scikit-learn estimator"),
        (
            _fitted_forest,
            {"sample": X_IRIS, "feature_names": ["a", "b", "c"]},
            "feature_names: expected 4 names, got 3",
        ),
        (
            _fitted_forest,
            {"sample": X_IRIS, "feature_names": ["a", "b", "a", "d"]},
            "feature_names: names must be unique and non-empty",
        ),
        (
            _fitted_forest,
            {"sample": X_IRIS, "feature_names": ["a", "b", "", "d"]},
            "feature_names: names must be unique and non-empty",
        ),
        (
            _fitted_forest,
            {"sample": X_IRIS, "class_names": ["setosa", "versicolor"]},
            "class_names: expected 3 names, got 2",
        ),
        (
            _forest_regressor,
            {"sample": X_IRIS[:, :3], "class_names": ["a"]},
            "class_names: expected 0 names, got 1",
        ),
        (
            lambda: LogisticRegression(max_iter=500).fit(X_IRIS, IRIS["target"]),
            {"sample": np.where(np.eye(150, 4, dtype=bool), np.nan, X_IRIS)},
            "sample: missing cells .NaN. in 'x0', 'x1', 'x2', 'x3', and the estimator"
            " cannot predict with them",
        ),
        (
            _fitted_forest,
            {"sample": np.full((3, 4), np.inf)},
            "sample: contains infinite values",
        ),
        (_fitted_forest, {"sample": X_IRIS[0]}, r"sample: expected a non-empty 2-D array"),
        (_fitted_forest, {"sample": np.empty((0, 4))}, r"sample: expected a non-empty 2-D array"),
        (_fitted_forest, {"sample": [["a", "b", "c", "d"]]}, "sample: expected numeric rows"),
        (
            _fitted_forest,
            {"sample": np.hstack([X_IRIS, X_IRIS[:, :1]])},
            "sample: the estimator expects 4 features, the sample has 5",
        ),
        (_fitted_forest, {"sample": X_IRIS, "version": 0}, "version: expected a positive integer"),
        (
            _fitted_forest,
            {"sample": X_IRIS, "version": -2},
            "version: expected a positive integer",
        ),
        (
            lambda: KMeans(n_clusters=3, n_init=1, random_state=0).fit(X_IRIS),
            {"sample": X_IRIS},
            "KMeans is neither a classifier nor a regressor",
        ),
        (
            lambda: Doubler().fit(X_IRIS),
            {},
            "feature_names: required when neither a sample nor n_features_in_",
        ),
    ],
    ids=[
        "unfitted",
        "not-an-estimator",
        "feature-names-too-few",
        "feature-names-duplicate",
        "feature-names-empty",
        "class-names-too-few",
        "class-names-for-regressor",
        "sample-nan",
        "sample-inf",
        "sample-1d",
        "sample-no-rows",
        "sample-text",
        "sample-too-wide",
        "version-zero",
        "version-negative",
        "clusterer",
        "no-width-known",
    ],
)
def test_save_refuses(
    make: Callable[[], Any], kwargs: dict[str, Any], message: str, tmp_path: Path
) -> None:
    estimator = make()
    with pytest.raises(ValueError, match=message):
        flaskserve.save_model(estimator, tmp_path / "model", **kwargs)
    assert not (tmp_path / "model").exists()
    assert list(tmp_path.iterdir()) == []


def test_save_without_sample_but_with_feature_names(tmp_path: Path) -> None:
    estimator = _fitted_forest()
    manifest = flaskserve.save_model(estimator, tmp_path / "m", feature_names=IRIS_FEATURES)
    assert manifest.sample == {}
    assert list(manifest.feature_names) == IRIS_FEATURES
    assert all(f.min is None and f.max is None for f in manifest.features)
    loaded = flaskserve.load_model(tmp_path / "m")
    assert loaded.manifest == manifest
    assert _read_json(tmp_path / "m")["features"][0] == {
        "name": "sepal_length",
        "dtype": "float64",
        "min": None,
        "max": None,
    }
    np.testing.assert_array_equal(
        loaded.estimator.predict(_row(IRIS_FEATURES)), estimator.predict(_row(IRIS_FEATURES))
    )


def test_save_without_sample_uses_n_features_in(tmp_path: Path) -> None:
    manifest = flaskserve.save_model(_fitted_forest(), tmp_path / "m")
    assert list(manifest.feature_names) == ["x0", "x1", "x2", "x3"]
    assert manifest.sample == {}


def test_save_without_sample_or_width_needs_feature_names(tmp_path: Path) -> None:
    # Doubler has no n_features_in_: only the names can tell the width.
    manifest = flaskserve.save_model(Doubler().fit(X_IRIS), tmp_path / "m", feature_names=["a"])
    assert list(manifest.feature_names) == ["a"]
    assert manifest.task == "regression"


def test_save_replaces_an_existing_artifact(tmp_path: Path) -> None:
    target = tmp_path / "iris"
    first = flaskserve.save_model(_fitted_forest(), target, sample=X_IRIS, version=1)
    (target / "stale.txt").write_text("from the first save")
    second = flaskserve.save_model(
        LogisticRegression(max_iter=500).fit(X_IRIS, Y_IRIS), target, sample=X_IRIS, version=2
    )
    assert first.sha256 != second.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iris"]  # no .iris.* left behind
    assert sorted(p.name for p in target.iterdir()) == [MANIFEST_NAME, "model.onnx", MODEL_NAME]
    loaded = flaskserve.load_model(target)
    assert loaded.manifest.version == 2
    assert isinstance(loaded.estimator, LogisticRegression)


def test_failed_save_leaves_the_existing_artifact(tmp_path: Path) -> None:
    target = tmp_path / "iris"
    first = flaskserve.save_model(_fitted_forest(), target, sample=X_IRIS)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    # JSON has no NaN: the write fails at the manifest, after the model files were written
    # beside the artifact, so only write_artifact's clean-up keeps the folder as it was.
    second = LogisticRegression(max_iter=500).fit(X_IRIS, Y_IRIS)
    refused = "^Out of range float values are not JSON compliant"
    with pytest.raises(ValueError, match=refused) as caught:
        flaskserve.save_model(second, target, sample=X_IRIS, metrics={"accuracy": float("nan")})
    assert "write_artifact" in [entry.name for entry in caught.traceback]  # not a check before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iris"]  # nothing half-written left
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert flaskserve.load_model(target).manifest == first


def test_saved_artifact_is_readable_by_others(tmp_path: Path) -> None:
    flaskserve.save_model(_fitted_forest(), tmp_path / "m", sample=X_IRIS)
    assert (tmp_path / "m").stat().st_mode & 0o755 == 0o755


# --- load refusals ---------------------------------------------------------------------------


def test_load_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"no flaskserve\.json; is this a model artifact\?"):
        flaskserve.load_model(tmp_path / "nowhere")


def test_load_refuses_a_directory_without_manifest(tmp_path: Path) -> None:
    (tmp_path / MODEL_NAME).write_bytes(b"")
    with pytest.raises(ArtifactError, match=r"flaskserve\.json"):
        flaskserve.load_model(tmp_path)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def edit(data: dict[str, Any]) -> Any:
        data[key] = value
        return data

    return edit


def _delete(key: str) -> Callable[[dict[str, Any]], Any]:
    def edit(data: dict[str, Any]) -> Any:
        del data[key]
        return data

    return edit


def _rename_feature(data: dict[str, Any]) -> Any:
    data["features"][1]["name"] = data["features"][0]["name"]
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda data: [data], "expected a JSON object"),
        (lambda data: "iris", "expected a JSON object"),
        (_set("format_version", 99), "format_version 99 is not supported"),
        (_delete("format_version"), "format_version None is not supported"),
        (_delete("features"), "missing field 'features'"),
        (_delete("sha256"), "malformed"),
        (_set("unexpected", 1), "malformed"),
        (_set("features", [{"name": "a", "colour": "red"}]), "malformed"),
        (_set("features", "abc"), "malformed"),
        (_set("labels", None), "malformed"),
        (_set("features", []), "features must be unique non-empty names"),
        (_rename_feature, "features must be unique non-empty names"),
        (_set("model_file", "../model.skops"), "model_file must be a plain file name"),
        (_set("model_file", "/etc/passwd"), "model_file must be a plain file name"),
        (_set("model_file", ".."), "model_file must be a plain file name"),
        (_set("model_file", ""), "model_file must be a plain file name"),
        (_set("task", "clustering"), "task 'clustering' is not supported"),
        (_set("class_names", ["setosa"]), "class_names and labels differ in length"),
    ],
    ids=[
        "json-list",
        "json-string",
        "format-version-99",
        "format-version-missing",
        "features-missing",
        "sha256-missing",
        "unknown-field",
        "feature-unknown-field",
        "features-not-a-list",
        "labels-null",
        "features-empty",
        "features-duplicate",
        "model-file-parent",
        "model-file-absolute",
        "model-file-dotdot",
        "model-file-empty",
        "task-clustering",
        "class-names-short",
    ],
)
def test_load_refuses_a_bad_manifest(
    edit: Callable[[dict[str, Any]], Any], message: str, model_dir: Path, tmp_path: Path
) -> None:
    copy = _copy(model_dir, tmp_path)
    _write_json(copy, edit(_read_json(copy)))
    with pytest.raises(ArtifactError, match=re.escape(message)):
        flaskserve.load_model(copy)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("model_file", 5, "model_file must be a plain file name"),
        ("model_file", None, "model_file must be a plain file name"),
        ("sha256", 5, "sha256 must be 64 hexadecimal digits"),
        ("features", [{"name": ["sepal_length"]}], "features must be unique non-empty names"),
    ],
    ids=["model-file-int", "model-file-null", "sha256-int", "feature-name-list"],
)
def test_load_refuses_wrongly_typed_fields(
    key: str, value: Any, message: str, model_dir: Path, tmp_path: Path
) -> None:
    copy = _copy(model_dir, tmp_path)
    _write_json(copy, _set(key, value)(_read_json(copy)))
    with pytest.raises(ArtifactError, match=rf"^flaskserve\.json: {message}$"):
        flaskserve.load_model(copy)


@pytest.mark.parametrize(
    "text",
    ["{not json", "", '{"format_version": 1,'],
    ids=["garbage", "empty", "truncated"],
)
def test_load_refuses_a_manifest_that_is_not_json(
    text: str, model_dir: Path, tmp_path: Path
) -> None:
    copy = _copy(model_dir, tmp_path)
    (copy / MANIFEST_NAME).write_text(text, encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"flaskserve\.json: not a readable JSON file"):
        flaskserve.load_model(copy)


def test_load_refuses_path_traversal_even_to_a_valid_file(model_dir: Path, tmp_path: Path) -> None:
    copy = _copy(model_dir, tmp_path)
    shutil.copy(copy / MODEL_NAME, tmp_path / MODEL_NAME)  # hash matches, outside the artifact
    _write_json(copy, _set("model_file", "../model.skops")(_read_json(copy)))
    with pytest.raises(ArtifactError, match="model_file must be a plain file name"):
        flaskserve.load_model(copy)


def test_load_reads_a_renamed_model_file(model_dir: Path, tmp_path: Path) -> None:
    copy = _copy(model_dir, tmp_path)
    (copy / MODEL_NAME).rename(copy / "forest.skops")
    _write_json(copy, _set("model_file", "forest.skops")(_read_json(copy)))
    loaded = flaskserve.load_model(copy)
    np.testing.assert_array_equal(loaded.estimator.predict(_row(IRIS_FEATURES)), [2])


def test_load_refuses_a_missing_model_file(model_dir: Path, tmp_path: Path) -> None:
    copy = _copy(model_dir, tmp_path)
    (copy / MODEL_NAME).unlink()
    with pytest.raises(ArtifactError, match="cannot read the model file"):
        flaskserve.load_model(copy)


def _flip_middle_byte(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [_flip_middle_byte, lambda data: data + b"\0", lambda data: data[:-1], lambda data: b""],
    ids=["flip-byte", "append-byte", "drop-byte", "empty"],
)
def test_load_refuses_a_tampered_model_file(
    tamper: Callable[[bytes], bytes], model_dir: Path, tmp_path: Path
) -> None:
    copy = _copy(model_dir, tmp_path)
    model = copy / MODEL_NAME
    model.write_bytes(tamper(model.read_bytes()))
    with pytest.raises(ArtifactError, match="SHA-256 mismatch") as caught:
        flaskserve.load_model(copy)
    assert "refusing to load it" in caught.value.message


def test_load_refuses_an_edited_sha256(model_dir: Path, tmp_path: Path) -> None:
    copy = _copy(model_dir, tmp_path)
    data = _read_json(copy)
    data["sha256"] = ("0" if data["sha256"][0] != "0" else "1") + data["sha256"][1:]
    _write_json(copy, data)
    with pytest.raises(ArtifactError, match="SHA-256 mismatch"):
        flaskserve.load_model(copy)


def test_load_refuses_an_untrusted_type(tmp_path: Path) -> None:
    manifest = flaskserve.save_model(Doubler().fit(X_IRIS), tmp_path / "m", sample=X_IRIS)
    assert manifest.estimator.endswith(".Doubler")
    with pytest.raises(ArtifactError, match="does not trust") as caught:
        flaskserve.load_model(tmp_path / "m")
    assert re.search(r"\S*Doubler", caught.value.message)
    assert manifest.estimator in caught.value.message


def test_load_does_not_unpickle_a_pickle_posing_as_skops(model_dir: Path, tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    payload = pickle.dumps(TouchOnUnpickle(sentinel))
    # The payload is live: unpickling it elsewhere does create its file.
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(TouchOnUnpickle(control)))
    assert control.exists()

    copy = _copy(model_dir, tmp_path)
    (copy / MODEL_NAME).write_bytes(payload)
    _write_json(copy, _set("sha256", hashlib.sha256(payload).hexdigest())(_read_json(copy)))
    with pytest.raises(ArtifactError, match="not a readable skops file"):
        flaskserve.load_model(copy)
    assert not sentinel.exists()


def test_load_refuses_a_corrupt_zip_with_a_matching_hash(model_dir: Path, tmp_path: Path) -> None:
    copy = _copy(model_dir, tmp_path)
    payload = (copy / MODEL_NAME).read_bytes()[:200]
    (copy / MODEL_NAME).write_bytes(payload)
    _write_json(copy, _set("sha256", hashlib.sha256(payload).hexdigest())(_read_json(copy)))
    with pytest.raises(ArtifactError, match="not a readable skops file"):
        flaskserve.load_model(copy)


def test_load_does_not_need_the_trained_data(tmp_path: Path) -> None:
    # A linear model round-trips exactly: the coefficients are stored, not recomputed.
    model = LinearRegression().fit(X_IRIS[:, :3], X_IRIS[:, 3])
    flaskserve.save_model(model, tmp_path / "lin", sample=X_IRIS[:, :3])
    loaded = flaskserve.load_model(tmp_path / "lin").estimator
    np.testing.assert_array_equal(loaded.coef_, model.coef_)
    assert loaded.intercept_ == model.intercept_


def test_load_refuses_a_model_file_linked_from_outside(model_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.skops"
    shutil.copyfile(model_dir / "model.skops", outside)
    artifact = tmp_path / "artifact"
    shutil.copytree(model_dir, artifact)
    (artifact / "model.skops").unlink()
    (artifact / "model.skops").symlink_to(outside)
    with pytest.raises(ArtifactError, match="leads outside the artifact directory"):
        flaskserve.load_model(artifact)


def test_load_refuses_a_manifest_that_is_a_device(model_dir: Path, tmp_path: Path) -> None:
    artifact = tmp_path / "artifact"
    shutil.copytree(model_dir, artifact)
    (artifact / "flaskserve.json").unlink()
    (artifact / "flaskserve.json").symlink_to("/dev/zero")  # would be read without end
    with pytest.raises(ArtifactError, match="leads outside the artifact directory"):
        flaskserve.load_model(artifact)


def test_load_follows_a_link_that_stays_inside(model_dir: Path, tmp_path: Path) -> None:
    # Kubernetes mounts ConfigMaps and Secrets as links into a ..data folder beside them
    artifact = tmp_path / "artifact"
    (artifact / "..data").mkdir(parents=True)
    for file in model_dir.iterdir():
        shutil.copyfile(file, artifact / "..data" / file.name)
        (artifact / file.name).symlink_to(Path("..data") / file.name)
    assert flaskserve.load_model(artifact).manifest.name == "iris"


def test_load_refuses_a_fifo_model_file(model_dir: Path, tmp_path: Path) -> None:
    artifact = tmp_path / "artifact"
    shutil.copytree(model_dir, artifact)
    (artifact / "model.skops").unlink()
    os.mkfifo(artifact / "model.skops")
    with pytest.raises(ArtifactError, match="not a regular file"):
        flaskserve.load_model(artifact)
