"""The tutorial's /predict and the health endpoints, through Flask's test client."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flaskserve.app import create_app
from flaskserve.settings import Settings

ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
SETOSA = {"sepal_length": 5.0, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_tutorial_request_answers_exactly(client: FlaskClient, method: str) -> None:
    response = client.open("/predict", method=method, json=ROW)
    assert response.status_code == 200
    assert response.data == b'{"result":[2]}\n'
    assert response.content_type == "application/json"


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain", "application/json; charset=utf-8"],
    ids=["none", "curl-default-form", "text", "json-charset"],
)
def test_any_content_type_is_read_as_json(client: FlaskClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = b'{"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}'
    response = client.post("/predict", data=body, headers=headers)
    assert response.status_code == 200
    assert response.json == {"result": [2]}


def test_batch_keeps_order(client: FlaskClient) -> None:
    response = client.post("/predict", json=[ROW, SETOSA, ROW])
    assert response.json == {"result": [2, 0, 2]}


def test_positional_rows_follow_manifest_order(client: FlaskClient) -> None:
    response = client.post("/predict", json=[[5.9, 3.0, 5.1, 1.8], [5, 3.5, 1.4, 0.2]])
    assert response.json == {"result": [2, 0]}


def test_feature_order_in_object_does_not_matter(client: FlaskClient) -> None:
    reordered = dict(reversed(list(ROW.items())))
    assert client.post("/predict", json=reordered).json == {"result": [2]}


def test_probabilities_and_labels(client: FlaskClient) -> None:
    response = client.post("/predict?proba=true&labels=true", json=[ROW, SETOSA])
    body = response.json
    assert body is not None
    assert list(body) == ["result", "probabilities", "labels"]
    assert body["result"] == [2, 0]
    assert body["labels"] == ["virginica", "setosa"]
    assert len(body["probabilities"]) == 2
    for row, predicted in zip(body["probabilities"], body["result"], strict=True):
        assert len(row) == 3
        assert sum(row) == pytest.approx(1.0)
        assert max(range(3), key=row.__getitem__) == predicted


@pytest.mark.parametrize("query", ["proba=false", "labels=0", "proba=no&labels=off"])
def test_false_flags_keep_the_tutorial_shape(client: FlaskClient, query: str) -> None:
    assert client.post(f"/predict?{query}", json=ROW).data == b'{"result":[2]}\n'


def test_get_predict_is_405_with_allow(client: FlaskClient) -> None:
    response = client.get("/predict")
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"POST", "PUT"}
    assert response.json == {"error": "method GET is not allowed on /predict; use POST, PUT"}


def test_health_ready_model(client: FlaskClient, tutorial_accuracy: float) -> None:
    assert client.get("/health").json == {"status": "alive"}
    assert client.get("/ready").json == {"status": "ready", "model": "iris", "version": 1}
    model = client.get("/model").json
    assert model is not None
    assert model["name"] == "iris"
    assert model["class_names"] == ["setosa", "versicolor", "virginica"]
    assert [f["name"] for f in model["features"]] == list(ROW)
    assert model["metrics"]["accuracy"] == tutorial_accuracy
    assert "sha256" not in model


def test_missing_model_is_not_ready(tmp_path: Path) -> None:
    client = create_app(Settings(model_dir=tmp_path / "nothing")).test_client()
    assert client.get("/health").status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert "flaskserve.json" in ready.json["error"]  # type: ignore[index]
    response = client.post("/predict", json=ROW)
    assert response.status_code == 503
    assert "no model is ready" in response.json["error"]  # type: ignore[index]
    assert client.get("/model").status_code == 503


def test_factory_reads_settings_from_environment(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASKSERVE_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("FLASKSERVE_MAX_ROWS", "2")
    client = create_app().test_client()
    assert client.post("/predict", json=ROW).json == {"result": [2]}
    assert client.post("/predict", json=[ROW] * 3).status_code == 413


def test_views_run_outside_the_observing_middleware(app: Flask) -> None:
    """A view called in a bare request context (no WSGI layer) finds the state through Flask."""
    with app.test_request_context("/predict", method="POST", json=ROW):
        response = app.full_dispatch_request()
    assert response.get_json() == {"result": [2]}
