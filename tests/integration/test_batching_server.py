"""A real threaded gunicorn server batching scikit-learn calls: every client gets its own answer."""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from flaskserve import load_model
from liveserver import LiveServer

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def test_concurrent_clients_get_their_own_rows(
    model_dir: Path, start: Callable[..., LiveServer]
) -> None:
    args = [str(BIN / "flaskserve"), "serve", str(model_dir), "--port", "{port}", "--workers", "2"]
    server = start([*args, "--runtime", "sklearn", "--threads", "8"])
    assert requests.get(f"{server.url}/model", timeout=10).json()["runtime"] == "sklearn"
    rng = np.random.default_rng(7)
    batches = [
        rng.uniform([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5], (1 + i % 4, 4)) for i in range(96)
    ]
    estimator = load_model(model_dir).estimator

    def call(rows: np.ndarray) -> tuple[list[int], list[list[float]]]:
        body = [dict(zip(FEATURES, row, strict=True)) for row in rows.tolist()]
        response = requests.post(f"{server.url}/predict?proba=true", json=body, timeout=60)
        response.raise_for_status()
        answer = response.json()
        return answer["result"], answer["probabilities"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, batches))
    for rows, (labels, probabilities) in zip(batches, answers, strict=True):
        assert labels == estimator.predict(rows).tolist()
        np.testing.assert_array_equal(probabilities, estimator.predict_proba(rows))


def test_more_clients_than_threads_are_all_answered(
    model_dir: Path, start: Callable[..., LiveServer]
) -> None:
    """A worker takes only as many connections as it has threads; the rest wait their turn."""
    args = [str(BIN / "flaskserve"), "serve", str(model_dir), "--port", "{port}", "--workers", "2"]
    server = start([*args, "--runtime", "sklearn", "--threads", "2"])
    row = dict(zip(FEATURES, [5.9, 3.0, 5.1, 1.8], strict=True))

    def call(_: int) -> list[int]:
        with requests.Session() as session:  # each client keeps its connection open
            answers = [
                session.post(f"{server.url}/predict", json=row, timeout=60) for _ in range(3)
            ]
        assert all(a.status_code == 200 for a in answers)
        result: list[int] = answers[-1].json()["result"]
        return result

    with ThreadPoolExecutor(24) as pool:  # 24 clients, 4 threads in all
        results = list(pool.map(call, range(24)))
    assert results == [[2]] * 24
    assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
