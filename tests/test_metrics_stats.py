"""Per-model statistics: ``/model/<name>/stats`` and the percentiles behind it."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from assertions import assert_error, json_body
from flaskserve.app import create_app
from flaskserve.metrics import MODEL_LATENCY_BUCKETS, Metrics, _quantile
from flaskserve.settings import Settings

INF = math.inf
ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
BAD_ROW = {**ROW, "sepal_length": "abc"}
KEY = "k" * 24


def _client(model_dir: Path, **settings: Any) -> FlaskClient:
    """A fresh app, so its own registry counts only this test's requests."""
    return create_app(Settings(model_dir=model_dir, poll_seconds=0, **settings)).test_client()


def _stats(client: FlaskClient, name: str = "iris") -> dict[str, Any]:
    response = client.get(f"/model/{name}/stats")
    assert response.status_code == 200, response.data[:300]
    body: dict[str, Any] = json_body(response)
    return body


# --- _quantile: Prometheus' histogram_quantile over cumulative (upper bound, count) buckets


@pytest.mark.parametrize(
    "cumulative",
    [[], [(0.001, 0.0), (INF, 0.0)]],
    ids=["no-buckets", "no-observations"],
)
def test_quantile_without_observations(cumulative: list[tuple[float, float]]) -> None:
    assert _quantile(0.5, cumulative) is None


@pytest.mark.parametrize(
    ("q", "ms"),
    [(0.5, 0.5), (0.9, 0.9), (1.0, 1.0)],
)
def test_quantile_all_in_the_first_bucket(q: float, ms: float) -> None:
    # linear from 0 to the first bound, as Prometheus assumes
    cumulative = [(0.001, 10.0), (0.002, 10.0), (INF, 10.0)]
    assert _quantile(q, cumulative) == pytest.approx(ms)


@pytest.mark.parametrize(
    ("q", "ms"),
    [(0.1, 0.5), (0.2, 1.0), (0.25, 1.125), (0.5, 1.75), (0.9, 3.5), (1.0, 4.0)],
)
def test_quantile_interpolates_within_a_bucket(q: float, ms: float) -> None:
    # 2 at <= 1 ms, 4 in (1, 2] ms, 4 in (2, 4] ms
    cumulative = [(0.001, 2.0), (0.002, 6.0), (0.004, 10.0), (INF, 10.0)]
    assert _quantile(q, cumulative) == pytest.approx(ms)


def test_quantile_skips_empty_buckets() -> None:
    cumulative = [(0.001, 0.0), (0.002, 0.0), (0.004, 4.0), (INF, 4.0)]
    assert _quantile(0.5, cumulative) == pytest.approx(3.0)


@pytest.mark.parametrize(
    "cumulative",
    [[(0.001, 1.0), (0.005, 2.0), (INF, 10.0)], [(0.001, 0.0), (0.005, 0.0), (INF, 3.0)]],
    ids=["most-past-the-last-bound", "all-past-the-last-bound"],
)
def test_quantile_past_the_last_bound_is_the_last_bound(
    cumulative: list[tuple[float, float]],
) -> None:
    assert _quantile(0.99, cumulative) == pytest.approx(5.0)


def test_model_stats_from_recorded_requests() -> None:
    metrics = Metrics()
    for _ in range(10):  # each in MODEL_LATENCY_BUCKETS' (0.3, 0.5] ms bucket
        metrics.record("/predict", "iris", "1", 200, 0.0004, 1)
    metrics.record("/invocations", "iris", "1", 400, 0.0004, None)
    metrics.record("/predict", "other", "1", 200, 2.0, 1)
    metrics.record("unmatched", "", None, 404, 0.0001, None)
    assert 0.0003 in MODEL_LATENCY_BUCKETS and 0.0005 in MODEL_LATENCY_BUCKETS
    stats = metrics.model_stats("iris")
    assert {k: v for k, v in stats.items() if k != "latency_ms"} == {
        "model": "iris",
        "requests": 11,
        "errors": 1,
        "by_status": {"200": 10, "400": 1},
    }
    latency = stats["latency_ms"]
    assert list(latency) == ["p50", "p90", "p99"]
    assert latency["p50"] == pytest.approx(0.3 + 0.2 * 5.5 / 11, abs=1e-3)
    assert latency["p99"] == pytest.approx(0.3 + 0.2 * 10.89 / 11, abs=1e-3)
    assert metrics.model_stats("nobody")["requests"] == 0


# --- through the app


def test_stats_before_any_request(model_dir: Path) -> None:
    assert _stats(_client(model_dir)) == {
        "model": "iris",
        "requests": 0,
        "errors": 0,
        "by_status": {},
        "latency_ms": {"p50": None, "p90": None, "p99": None},
    }


def test_stats_count_good_and_bad_predictions(model_dir: Path) -> None:
    client = _client(model_dir)
    for _ in range(3):
        assert client.post("/predict", json=ROW).status_code == 200
    assert_error(client.post("/predict", json=BAD_ROW), 400, "sepal_length")
    stats = _stats(client)
    assert (stats["model"], stats["requests"], stats["errors"]) == ("iris", 4, 1)
    assert stats["by_status"] == {"200": 3, "400": 1}
    latency = stats["latency_ms"]
    assert isinstance(latency["p50"], float)
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
    assert _stats(client) == stats  # asking for stats is not a request for the model


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict", ROW),
        ("/predict/iris", ROW),
        (
            "/v2/models/iris/infer",
            {
                "inputs": [
                    {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": list(ROW.values())}
                ]
            },
        ),
        ("/invocations", {"inputs": [list(ROW.values())]}),
    ],
    ids=["predict", "predict-name", "v2-infer", "invocations"],
)
def test_every_prediction_endpoint_counts(model_dir: Path, path: str, body: object) -> None:
    client = _client(model_dir)
    assert client.post(path, json=body).status_code == 200
    assert _stats(client)["by_status"] == {"200": 1}


@pytest.mark.parametrize(
    "path",
    ["/model/iris", "/model", "/ready", "/v2/models/iris/ready", "/ui/iris", "/", "/metrics"],
)
def test_other_requests_do_not_count(model_dir: Path, path: str) -> None:
    client = _client(model_dir)
    assert client.get(path).status_code == 200
    assert _stats(client)["requests"] == 0


def test_v2_metadata_does_not_count(model_dir: Path) -> None:
    client = _client(model_dir)
    assert client.get("/v2/models/iris").status_code == 200
    assert _stats(client)["requests"] == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict/nonexistent", ROW),
        ("/v2/models/nonexistent/infer", {"inputs": []}),
        ("/v2/models/nonexistent/versions/1/infer", {"inputs": []}),
    ],
    ids=["predict", "v2-infer", "v2-version-infer"],
)
def test_unknown_models_mint_no_labels(model_dir: Path, path: str, body: object) -> None:
    client = _client(model_dir)
    assert_error(client.post(path, json=body), 404, "nonexistent")
    assert_error(client.get("/model/nonexistent/stats"), 404, "nonexistent")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'model="nonexistent"' not in text
    assert re.search(r'flaskserve_requests_total\{[^}]*status="404"', text)  # still counted
    assert _stats(client)["requests"] == 0


def test_stats_need_a_key_when_keys_are_set(model_dir: Path) -> None:
    client = _client(model_dir, api_keys=KEY)
    assert_error(client.get("/model/iris/stats"), 401, "API key")
    response = client.get("/model/iris/stats", headers={"X-API-Key": KEY})
    assert json_body(response)["requests"] == 0
