"""Drift on a real ``flaskserve serve`` with two workers: rows counted by both, summed."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from conftest import FLASKSERVE, ServerStarter

from flaskserve.training import RANDOM_SEED, TEST_SIZE, load_iris_dataset

pytestmark = pytest.mark.integration
NAMES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
ROWS, BATCH = 1200, 20  # 60 requests a round, on 8 connections at once


def _training_rows() -> np.ndarray:
    from sklearn.model_selection import train_test_split

    features = load_iris_dataset().features
    x_train, _ = train_test_split(features, test_size=TEST_SIZE, random_state=RANDOM_SEED)
    return np.asarray(x_train, dtype=np.float64)


def _send(url: str, rows: np.ndarray) -> None:
    def post(start: int) -> int:
        chunk = rows[start : start + BATCH].tolist()
        body = [dict(zip(NAMES, row, strict=True)) for row in chunk]
        return requests.post(f"{url}/predict/iris", json=body, timeout=10).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(post, range(0, len(rows), BATCH))) == {200}


def _drift_once_counted(url: str, rows: int) -> dict[str, Any]:
    """The report once every worker's counts reached the shared files (a fraction of a second)."""
    deadline = time.monotonic() + 10
    while True:
        report: dict[str, Any] = requests.get(f"{url}/model/iris/drift", timeout=10).json()
        if report["rows"]["since_start"] >= rows or time.monotonic() > deadline:
            return report
        time.sleep(0.1)


def test_drift_summed_over_two_workers(start: ServerStarter, model_dir: Path) -> None:
    server = start([FLASKSERVE, "serve", str(model_dir), "--port", "{port}", "--workers", "2"])
    rng = np.random.default_rng(7)
    training = _training_rows()
    sent = 0
    for _ in range(5):  # the kernel may hand one round's connections all to one worker
        _send(server.url, training[rng.integers(0, len(training), ROWS)])
        sent += ROWS
        report = _drift_once_counted(server.url, sent)
        assert report["rows"] == {"since_start": sent, "window": sent}
        if report["workers"] == 2:
            break
    assert report["workers"] == 2 and report["dropped"] == 0
    assert report["status"] == "stable", [(f["name"], f["since_start"]) for f in report["features"]]

    longer_petals = np.array([0, 0, 3.0, 0])  # petal_length 3 cm longer
    shifted = training[rng.integers(0, len(training), sent)] + longer_petals
    _send(server.url, shifted)
    report = _drift_once_counted(server.url, 2 * sent)
    assert report["rows"] == {"since_start": 2 * sent, "window": 2 * sent}
    for feature in report["features"]:
        bins = sum(b["since_start"] for b in feature["bins"])
        assert bins == pytest.approx(1, abs=1e-3)
    statuses = {f["name"]: f["since_start"]["status"] for f in report["features"]}
    assert statuses == {**dict.fromkeys(NAMES, "stable"), "petal_length": "drift"}

    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    gauges = {
        line.split('feature="')[1].split('"')[0]: float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("flaskserve_feature_psi{")
    }
    assert set(gauges) == set(NAMES) and gauges["petal_length"] > 0.25
    assert all(gauges[name] < 0.1 for name in NAMES if name != "petal_length")
