"""Tests for the Flask tutorial examples in examples/tutorial/."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import pytest
from flask import Flask
from flask.testing import FlaskClient

TUTORIAL_DIR = Path(__file__).resolve().parents[2] / "examples" / "tutorial"

IRIS_ROW = {
    "sepal_length": 5.9,
    "sepal_width": 3.0,
    "petal_length": 5.1,
    "petal_width": 1.8,
}


class TrainingRun(NamedTuple):
    workdir: Path
    stdout: str


def _load_module(name: str, path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Register so Flask(__name__) resolves its root path; undone after the test.
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def _flask_app(module: ModuleType) -> Flask:
    app = module.app
    assert isinstance(app, Flask)
    app.config["TESTING"] = True
    return app


@pytest.fixture(scope="module")
def training_run(tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
    workdir = tmp_path_factory.mktemp("tutorial")
    proc = subprocess.run(
        [sys.executable, str(TUTORIAL_DIR / "train.py")],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return TrainingRun(workdir=workdir, stdout=proc.stdout)


@pytest.fixture()
def hello_app(monkeypatch: pytest.MonkeyPatch) -> Flask:
    return _flask_app(_load_module("tutorial_app", TUTORIAL_DIR / "app.py", monkeypatch))


@pytest.fixture()
def hello_client(hello_app: Flask) -> FlaskClient:
    return hello_app.test_client()


@pytest.fixture()
def server_app(training_run: TrainingRun, monkeypatch: pytest.MonkeyPatch) -> Flask:
    # flask_server.py loads ./build/model.pkl at import time.
    monkeypatch.chdir(training_run.workdir)
    return _flask_app(
        _load_module("tutorial_flask_server", TUTORIAL_DIR / "flask_server.py", monkeypatch)
    )


@pytest.fixture()
def server_client(server_app: Flask) -> FlaskClient:
    return server_app.test_client()


# --- train.py ---------------------------------------------------------------


def test_train_prints_accuracy_first(training_run: TrainingRun) -> None:
    assert training_run.stdout.splitlines()[0] == "Accuracy :  0.9555555555555556"


def test_train_prints_classification_report(training_run: TrainingRun) -> None:
    lines = training_run.stdout.splitlines()
    expected = [
        "              precision    recall  f1-score   support",
        "           0       1.00      1.00      1.00        16",
        "           1       0.94      0.94      0.94        17",
        "           2       0.92      0.92      0.92        12",
        "    accuracy                           0.96        45",
        "   macro avg       0.95      0.95      0.95        45",
        "weighted avg       0.96      0.96      0.96        45",
    ]
    for line in expected:
        assert line in lines


def test_train_writes_model_relative_to_cwd(training_run: TrainingRun) -> None:
    model = training_run.workdir / "build" / "model.pkl"
    assert model.is_file()
    assert model.stat().st_size > 0


# --- app.py -----------------------------------------------------------------


def test_hello_world(hello_client: FlaskClient) -> None:
    response = hello_client.get("/")
    assert response.status_code == 200
    assert response.data == b"<p>Hello, World!</p>"
    assert response.mimetype == "text/html"


def test_hello_ai(hello_client: FlaskClient) -> None:
    response = hello_client.get("/helloai")
    assert response.status_code == 200
    assert response.data == b"<p>Hello, AI!</p>"


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_predict_post_put(hello_client: FlaskClient, method: str) -> None:
    response = hello_client.open("/predict", method=method)
    assert response.status_code == 200
    assert response.data == b'{"hello": "world"}'


def test_predict_get_not_allowed(hello_client: FlaskClient) -> None:
    response = hello_client.get("/predict")
    assert response.status_code == 405
    assert set(response.allow) == {"POST", "PUT", "OPTIONS"}


# --- flask_server.py --------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        None,  # no content type at all
        "application/x-www-form-urlencoded",  # what `curl --data` sends by default
    ],
)
def test_server_predict(server_client: FlaskClient, content_type: str | None) -> None:
    # The tutorial uses request.get_json(force=True): the content type is ignored.
    response = server_client.post("/predict", data=json.dumps(IRIS_ROW), content_type=content_type)
    assert response.status_code == 200
    assert response.is_json
    assert response.json == {"result": [2]}
    assert response.data == b'{"result":[2]}\n'


def test_server_predict_json_kwarg(server_client: FlaskClient) -> None:
    response = server_client.post("/predict", json=IRIS_ROW)
    assert response.status_code == 200
    assert response.data == b'{"result":[2]}\n'


def test_server_predict_get_not_allowed(server_client: FlaskClient) -> None:
    assert server_client.get("/predict").status_code == 405
