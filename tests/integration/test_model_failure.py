"""A model that fails at predict time, over HTTP on a real server: a JSON 500 that says why
and shows no traceback, the worker that answered it lives on, and /metrics counts it.

The models are real scikit-learn estimators, saved by flaskserve's own ``save_model``, that
load and pass their smoke rows and fail only on some rows: a one-hot encoder that meets a
category it never saw (it raises), a linear model whose answer overflows float64 (scikit-learn
and ONNX Runtime both give inf), and a ridge classifier whose compiled graph computes in
float32 (a value past 3.4e38 does not fit it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from conftest import FLASKSERVE
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from flaskserve import save_model
from flaskserve.metrics import FLUSH_SECONDS
from liveserver import LiveServer, start_server, worker_pids

pytestmark = pytest.mark.integration
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TIMEOUT = (5.0, 30.0)
LOGGED = "model 'onehot' failed in predict"  # scikit-learn's runtime, each failed call
GOOD = {"sepal_length": 5.0, "sepal_width": 3.0, "petal_length": 4.0, "petal_width": 1.0}


@dataclass(frozen=True)
class Failure:
    """A model of the repository, a row it fails on, and what the 500 must say."""

    model: str
    runtime: str  # what GET /model/<model> says it runs on
    bad: dict[str, float]
    error: str


FAILURES = {
    "sklearn-raises": Failure(
        "onehot", "sklearn", {**GOOD, "sepal_length": 5.5}, "model 'onehot' failed to predict"
    ),
    "sklearn-inf": Failure(
        "overflow-sklearn",
        "sklearn",
        {**GOOD, "petal_width": 1e306},
        "the model produced non-finite predictions",
    ),
    "onnx-inf": Failure(
        "overflow-onnx",
        "onnx",
        {**GOOD, "petal_width": 1e306},
        "the model produced non-finite predictions",
    ),
    "onnx-float32": Failure(
        "ridge",
        "onnx",
        {**GOOD, "sepal_length": -1e39},
        "model 'ridge' cannot predict these rows: a value is beyond 3.403e+38, the float32"
        " range its compiled model computes in",
    ),
}


def _save(root: Path, name: str, estimator: Any, sample: np.ndarray, *, compile: bool) -> None:
    path = root / name / "1"
    save_model(estimator, path, sample=sample, feature_names=FEATURES, name=name, compile=compile)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y = load_iris(return_X_y=True)
    root = tmp_path_factory.mktemp("failing") / "repository"
    # every training value is a whole number: 5.5 is a category the encoder never saw
    whole = np.round(x)
    encoder = OneHotEncoder(handle_unknown="error")
    onehot = Pipeline([("encode", encoder), ("model", LogisticRegression(max_iter=1000))])
    _save(root, "onehot", onehot.fit(whole, y), whole, compile=False)
    # petal width in thousandths: 1e306 of it is 1e309, past float64
    linear = LinearRegression().fit(x, x[:, 3] * 1000)
    _save(root, "overflow-sklearn", linear, x, compile=False)
    _save(root, "overflow-onnx", linear, x, compile=True)
    # compiled to a float32 graph: the float64 one fails the parity gate
    _save(root, "ridge", RidgeClassifier().fit(x, y), x, compile=True)
    return root


@pytest.fixture(scope="module")
def server(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("failing-server") / "serve.log"
    args = [FLASKSERVE, "serve", str(repository), "--port", "{port}", "--workers", "2"]
    live = start_server(args, log)
    yield live
    live.stop()


def _predict(server: LiveServer, model: str, body: Any) -> requests.Response:
    return requests.post(f"{server.url}/predict/{model}", json=body, timeout=TIMEOUT)


def _failures_counted(server: LiveServer, model: str) -> float:
    """flaskserve_requests_total of /predict/<name> with status 500 for *model*, all workers."""
    text = requests.get(f"{server.url}/metrics", timeout=TIMEOUT).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "flaskserve_requests_total"
        and sample.labels == {"endpoint": "/predict/<name>", "model": model, "status": "500"}
    )


def _workers(server: LiveServer) -> list[int]:
    deadline = time.monotonic() + 10
    while len(pids := worker_pids(server.process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


@pytest.mark.parametrize("failure", FAILURES.values(), ids=list(FAILURES))
def test_a_model_failing_at_predict_time_answers_500_and_the_worker_lives(
    server: LiveServer, failure: Failure
) -> None:
    served = requests.get(f"{server.url}/model/{failure.model}", timeout=TIMEOUT).json()
    assert served["runtime"] == failure.runtime
    good = _predict(server, failure.model, GOOD)
    assert good.status_code == 200, good.text
    workers = _workers(server)
    counted = _failures_counted(server, failure.model)

    # each on a fresh connection: either worker may take it
    answers = [_predict(server, failure.model, failure.bad) for _ in range(6)]
    answers.append(_predict(server, failure.model, [GOOD, failure.bad, GOOD]))  # no partial answer

    for answer in answers:
        assert answer.status_code == 500, answer.text
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.json() == {"error": failure.error}
        assert "Traceback" not in answer.text and 'File "' not in answer.text
    after = _predict(server, failure.model, GOOD)
    assert after.status_code == 200 and after.json() == good.json()
    assert worker_pids(server.process.pid) == workers, "a worker died or was replaced"
    deadline = time.monotonic() + 20 * FLUSH_SECONDS  # the other worker's flush
    while _failures_counted(server, failure.model) < counted + 7 and time.monotonic() < deadline:
        time.sleep(FLUSH_SECONDS / 4)
    assert _failures_counted(server, failure.model) == counted + 7


def test_the_log_says_why_the_model_failed(server: LiveServer) -> None:
    assert _predict(server, "onehot", FAILURES["sklearn-raises"].bad).status_code == 500

    deadline = time.monotonic() + 5
    while "Found unknown categories" not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log.read_text()
    assert LOGGED in log
    assert "ValueError: Found unknown categories [np.float64(5.5)] in column 0" in log


def test_one_clients_failing_row_does_not_fail_the_others(server: LiveServer) -> None:
    """The scikit-learn worker batches concurrent requests: a failed batch is split up."""
    expected = _predict(server, "onehot", GOOD).json()
    bad = FAILURES["sklearn-raises"].bad
    outcomes: list[tuple[bool, int, Any]] = []
    lock = threading.Lock()

    def client(sends_bad: bool) -> None:
        with requests.Session() as session:
            for _ in range(15):
                answer = session.post(
                    f"{server.url}/predict/onehot", json=bad if sends_bad else GOOD, timeout=TIMEOUT
                )
                with lock:
                    outcomes.append((sends_bad, answer.status_code, answer.json()))

    logged = server.log.read_text().count(LOGGED)
    threads = [threading.Thread(target=client, args=(i == 0,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not any(t.is_alive() for t in threads)
    assert len(outcomes) == 8 * 15
    failed = [(code, body) for sends_bad, code, body in outcomes if sends_bad]
    answered = [(code, body) for sends_bad, code, body in outcomes if not sends_bad]
    assert failed == [(500, {"error": "model 'onehot' failed to predict"})] * 15
    assert answered == [(200, expected)] * (7 * 15)
    # logged once per failed call: a bad request that shared a batch failed twice
    deadline = time.monotonic() + 5
    while server.log.read_text().count(LOGGED) < logged + 15 and time.monotonic() < deadline:
        time.sleep(0.05)
    shared = server.log.read_text().count(LOGGED) - logged - 15
    print(f"the bad request shared {shared} of its 15 batches")
    assert shared > 0, "no batch held the bad request and another: nothing was split"
