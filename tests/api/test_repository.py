"""A ``<name>/<version>/`` repository served through Flask's test client."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression
from werkzeug.test import TestResponse

from flaskserve import save_model
from flaskserve.api.state import EXTENSION_KEY, ServerState
from flaskserve.app import create_app
from flaskserve.artifact import MODEL_NAME
from flaskserve.settings import Settings
from flaskserve.training import IRIS_FEATURES

ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
SETOSA = {"sepal_length": 5.0, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
PETALS = {"petal_length": 5.1, "petal_width": 1.8}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two small, different models: an iris classifier and a sepal-length regressor."""
    x, y = load_iris(return_X_y=True)
    out = tmp_path_factory.mktemp("artifacts")
    classifier = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    save_model(
        classifier,
        out / "iris",
        sample=x,
        feature_names=IRIS_FEATURES,
        class_names=["setosa", "versicolor", "virginica"],
        name="iris",
    )
    regressor = LinearRegression().fit(x[:, 2:], x[:, 0])
    save_model(regressor, out / "sepal", sample=x[:, 2:], feature_names=IRIS_FEATURES[2:])
    return {"iris": out / "iris", "sepal": out / "sepal"}


def drop(source: Path, root: Path, name: str, version: int, *, broken: bool = False) -> Path:
    """Copy an artifact into ``root/name/version`` atomically, optionally tampered with."""
    target = root / name / str(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = root / f".incoming-{name}-{version}"
    shutil.copytree(source, staging)
    if broken:
        with (staging / MODEL_NAME).open("ab") as model_file:
            model_file.write(b"\x00tampered")
    os.replace(staging, target)
    return target


@pytest.fixture()
def root(artifacts: dict[str, Path], tmp_path: Path) -> Path:
    """iris versions 1 and 2, sepal version 1."""
    drop(artifacts["iris"], tmp_path, "iris", 1)
    drop(artifacts["iris"], tmp_path, "iris", 2)
    drop(artifacts["sepal"], tmp_path, "sepal", 1)
    return tmp_path


def make_app(root: Path) -> Flask:
    return create_app(Settings(model_dir=root, poll_seconds=0))


@pytest.fixture()
def client(root: Path) -> FlaskClient:
    return make_app(root).test_client()


def answered_by(response: TestResponse) -> tuple[str, str]:
    return response.headers["X-Model-Name"], response.headers["X-Model-Version"]


def test_predict_serves_the_default_model(client: FlaskClient) -> None:
    response = client.post("/predict", json=[ROW, SETOSA])
    assert response.status_code == 200
    assert response.json == {"result": [2, 0]}
    assert answered_by(response) == ("iris", "2")


def test_predict_by_name_picks_the_model(client: FlaskClient) -> None:
    response = client.post("/predict/sepal", json=[PETALS])
    assert response.status_code == 200
    assert answered_by(response) == ("sepal", "1")
    body = response.json
    assert body is not None
    assert list(body) == ["result"]
    assert isinstance(body["result"][0], float)
    assert 6.0 < body["result"][0] < 7.5
    iris = client.put("/predict/iris?labels=true", json=ROW)
    assert iris.json == {"result": [2], "labels": ["virginica"]}
    assert answered_by(iris) == ("iris", "2")


def test_predict_by_name_uses_that_models_schema(client: FlaskClient) -> None:
    response = client.post("/predict/sepal", json=[[5.1, 1.8]])
    assert response.status_code == 200
    assert answered_by(response) == ("sepal", "1")
    assert client.post("/predict/sepal", json=[[5.9, 3.0, 5.1, 1.8]]).status_code == 400


def test_model_metadata_by_name(client: FlaskClient) -> None:
    sepal = client.get("/model/sepal").json
    assert sepal is not None
    assert sepal["served_version"] == 1
    assert sepal["task"] == "regression"
    assert [f["name"] for f in sepal["features"]] == ["petal_length", "petal_width"]
    assert "sha256" not in sepal
    iris = client.get("/model/iris").json
    assert iris is not None
    assert iris["served_version"] == 2
    assert iris["class_names"] == ["setosa", "versicolor", "virginica"]
    assert client.get("/model").json == iris


def test_ready_while_an_extra_version_fails(artifacts: dict[str, Path], root: Path) -> None:
    drop(artifacts["iris"], root, "iris", 3, broken=True)
    client = make_app(root).test_client()
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json == {"status": "ready", "model": "iris", "version": 2}
    assert client.get("/v2/health/ready").status_code == 200
    assert answered_by(client.post("/predict", json=ROW)) == ("iris", "2")
    metadata = client.get("/v2/models/iris").json
    assert metadata is not None
    assert "SHA-256" in metadata["parameters"]["load_failures"]["3"]


def test_not_ready_when_a_model_has_no_loadable_version(
    artifacts: dict[str, Path], root: Path
) -> None:
    drop(artifacts["iris"], root, "wine", 1, broken=True)  # sorts after the default, iris
    client = make_app(root).test_client()
    v2_ready = client.get("/v2/health/ready")
    assert v2_ready.status_code == 503
    assert v2_ready.json == {"ready": False}
    assert client.get("/ready").status_code == 200  # the default model itself is fine
    response = client.post("/predict/wine", json=ROW)
    assert response.status_code == 503
    assert "SHA-256" in response.json["error"]  # type: ignore[index]
    assert client.post("/predict", json=ROW).status_code == 200


def test_a_new_version_switches_predict_after_refresh(
    artifacts: dict[str, Path], root: Path
) -> None:
    app = make_app(root)
    client = app.test_client()
    assert answered_by(client.post("/predict", json=ROW)) == ("iris", "2")
    drop(artifacts["iris"], root, "iris", 3)
    assert answered_by(client.post("/predict", json=ROW)) == ("iris", "2")  # no polling
    state: ServerState = app.extensions[EXTENSION_KEY]
    state.registry.refresh()
    response = client.post("/predict", json=ROW)
    assert response.json == {"result": [2]}
    assert answered_by(response) == ("iris", "3")
    assert client.get("/ready").json == {"status": "ready", "model": "iris", "version": 3}
    older = client.get("/v2/models/iris/versions/1")
    assert older.status_code == 200
    assert answered_by(older) == ("iris", "1")


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("POST", "/predict/nope", "no model named 'nope'"),
        ("GET", "/model/nope", "no model named 'nope'"),
        ("GET", "/v2/models/iris/versions/9", "model 'iris' has no version 9"),
    ],
    ids=["predict", "model", "v2-version"],
)
def test_unknown_model_is_404(client: FlaskClient, method: str, path: str, message: str) -> None:
    response = client.open(path, method=method, json=ROW if method == "POST" else None)
    assert response.status_code == 404
    assert response.json == {"error": message}


@pytest.mark.parametrize(
    "name",
    ["bad%20name", "-x", ".hidden", "_x", "%2E%2E", "x" * 65],
    ids=["space", "dash-first", "dot-first", "underscore-first", "dotdot", "65-chars"],
)
def test_malformed_model_name_is_400(client: FlaskClient, name: str) -> None:
    response = client.post(f"/predict/{name}", json=ROW)
    assert response.status_code == 400
    assert "model name" in response.json["error"]  # type: ignore[index]
    assert client.get(f"/model/{name}").status_code == 400
