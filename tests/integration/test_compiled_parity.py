"""The compiled model over real HTTP answers like scikit-learn; ``--runtime sklearn`` opts out."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from flaskserve import load_model
from flaskserve.artifact import MODEL_NAME, read_manifest
from flaskserve.compiler_typed import random_rows
from liveserver import LiveServer

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
TIMEOUT = 30
COUNT = 2_000


@pytest.fixture(scope="module")
def rows(model_dir: Path) -> np.ndarray:
    """2,000 rows spread over the iris ranges widened by 10% on each side."""
    features = read_manifest(model_dir).features
    low = np.array([f.min for f in features], dtype=np.float64)
    high = np.array([f.max for f in features], dtype=np.float64)
    margin = (high - low) * 0.1
    return np.random.default_rng(2024).uniform(low - margin, high + margin, (COUNT, len(low)))


@pytest.fixture(scope="module")
def expected(model_dir: Path, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    estimator = load_model(model_dir).estimator
    return estimator.predict(rows), estimator.predict_proba(rows)


def _predict(server: LiveServer, rows: np.ndarray) -> dict[str, Any]:
    response = requests.post(
        server.url + "/predict?proba=true", json=rows.tolist(), timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _infer(server: LiveServer, rows: np.ndarray) -> dict[str, Any]:
    request: dict[str, Any] = {
        "id": "parity",
        "inputs": [
            {
                "name": "input-0",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.tolist(),
            }
        ],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    response = requests.post(server.url + "/v2/models/iris/infer", json=request, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return {output["name"]: output for output in response.json()["outputs"]}


def test_compiled_server_answers_like_sklearn(
    live_server: LiveServer, rows: np.ndarray, expected: tuple[np.ndarray, np.ndarray]
) -> None:
    labels, proba = expected
    assert set(labels.tolist()) == {0, 1, 2}, "the rows reach every class"

    body = _predict(live_server, rows)
    assert body["result"] == labels.tolist()
    np.testing.assert_allclose(np.asarray(body["probabilities"]), proba, atol=1e-6)

    outputs = _infer(live_server, rows)
    assert outputs["predict"]["shape"] == [COUNT]
    assert outputs["predict"]["data"] == labels.tolist()
    assert outputs["predict_proba"]["shape"] == [COUNT, 3]
    v2_proba = np.asarray(outputs["predict_proba"]["data"]).reshape(COUNT, 3)
    np.testing.assert_allclose(v2_proba, proba, atol=1e-6)


def test_model_endpoint_shows_the_compiled_runtime(live_server: LiveServer) -> None:
    metadata = requests.get(live_server.url + "/model", timeout=TIMEOUT).json()
    assert metadata["runtime"] == "onnx"
    assert metadata["compiled"]["status"] == "passed"
    assert metadata["compiled"]["format"] == "onnx"
    assert metadata["compiled"]["parity"]["mismatches"] == 0


def test_sklearn_runtime_server_agrees(
    live_server: LiveServer,
    start: Callable[..., LiveServer],
    model_dir: Path,
    rows: np.ndarray,
) -> None:
    args = [str(BIN / "flaskserve"), "serve", str(model_dir), "--port", "{port}"]
    sklearn_server = start([*args, "--workers", "1", "--runtime", "sklearn"])
    metadata = requests.get(sklearn_server.url + "/model", timeout=TIMEOUT).json()
    assert metadata["runtime"] == "sklearn"
    assert metadata["compiled"]["status"] == "passed"  # compiled, but not used

    compiled_body = _predict(live_server, rows)
    sklearn_body = _predict(sklearn_server, rows)
    assert sklearn_body["result"] == compiled_body["result"]
    np.testing.assert_allclose(
        np.asarray(sklearn_body["probabilities"]),
        np.asarray(compiled_body["probabilities"]),
        atol=1e-6,
    )


def test_compile_command(model_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "iris"
    shutil.copytree(model_dir, path)
    (path / "model.onnx").unlink()
    skops_sha = hashlib.sha256((path / MODEL_NAME).read_bytes()).hexdigest()

    done = subprocess.run(
        [str(BIN / "flaskserve"), "compile", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "compiled: passed"
    match = re.fullmatch(
        r"parity gate: (\d+) rows, 0 mismatches, max difference (\S+), (\d+) exact ties",
        lines[1],
    )
    assert match, done.stdout
    record = read_manifest(path).compiled
    assert record["status"] == "passed"
    assert int(match[1]) == record["parity"]["rows"] > 100_000
    assert int(match[3]) == record["parity"]["ties"]
    assert float(match[2]) <= 1e-6
    parallel = record["parity"]["parallel"]
    assert lines[2] == (
        f"large batches on {parallel['threads']} threads: passed (0 mismatches,"
        f" max difference {parallel['max_difference']:.3g})"
    )
    assert hashlib.sha256((path / "model.onnx").read_bytes()).hexdigest() == record["sha256"]
    assert hashlib.sha256((path / MODEL_NAME).read_bytes()).hexdigest() == skops_sha


def test_compiled_census_server_answers_like_the_pipeline(
    start: Callable[..., LiveServer], census_dir: Path, census_pipeline: Any
) -> None:
    """A typed model over HTTP: missing cells and unseen text, as clients send them."""
    features = read_manifest(census_dir).features
    table = random_rows(features, None, COUNT, np.random.default_rng(2024))
    records = [dict(zip(table.names, row, strict=True)) for row in table.rows()]
    for record in records[::10]:
        record["workclass"] = "Never-worked"  # a category the pipeline has not seen
    server = start([str(BIN / "flaskserve"), "serve", str(census_dir), "--port", "{port}"])
    assert requests.get(server.url + "/model", timeout=TIMEOUT).json()["runtime"] == "onnx"

    response = requests.post(server.url + "/predict?proba=true", json=records, timeout=TIMEOUT)

    assert response.status_code == 200, response.text
    sent = table.to_frame()
    sent.loc[::10, "workclass"] = "Never-worked"
    assert response.json()["result"] == census_pipeline.predict(sent).tolist()
    np.testing.assert_allclose(
        np.asarray(response.json()["probabilities"]),
        census_pipeline.predict_proba(sent),
        atol=1e-6,
    )
