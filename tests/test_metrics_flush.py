"""Answers are tallied in memory and written to the collectors in one flush.

The multi-worker sum through the flush thread is tested on a real server
(``tests/integration/test_serve.py``); here, one process.
"""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry, Histogram

from flaskserve.metrics import FLUSH_SECONDS, LATENCY_BUCKETS, MODEL_LATENCY_BUCKETS, Metrics

# on bounds, either side of them, below the first and past the last
TIMES = [0.0, 0.00005, 0.0001, 0.00010001, 0.0004, 0.0005, 0.001, 0.0031, 0.5, 4.99, 5.0, 7.0, 60.0]


def _written(metrics: Metrics, name: str, **labels: str) -> float | None:
    """A sample as the collectors hold it now, without flushing first (``render`` would)."""
    value: float | None = _registry(metrics).get_sample_value(name, labels)
    return value


def _registry(metrics: Metrics) -> CollectorRegistry:
    assert metrics._registry is not None  # one process: prometheus_client's own registry
    return metrics._registry


def _histogram_samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for family in registry.collect()
        if family.name == name
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


@pytest.mark.parametrize(
    ("name", "bounds", "labels"),
    [
        ("flaskserve_request_seconds", LATENCY_BUCKETS, ["endpoint"]),
        ("flaskserve_model_request_seconds", MODEL_LATENCY_BUCKETS, ["model"]),
    ],
)
def test_a_flush_writes_what_observe_would(
    name: str, bounds: tuple[float, ...], labels: list[str]
) -> None:
    metrics = Metrics()
    for seconds in TIMES:
        metrics.record("/predict", "iris", "1", 200, seconds, 1)
    metrics.flush()
    reference = CollectorRegistry()
    histogram = Histogram(name, "reference", labels, buckets=bounds, registry=reference)
    for seconds in TIMES:
        histogram.labels("/predict" if labels == ["endpoint"] else "iris").observe(seconds)
    expected = _histogram_samples(reference, name)
    assert _histogram_samples(_registry(metrics), name) == expected
    assert expected[(f"{name}_count", "")] == len(TIMES)


def test_nothing_is_written_before_a_flush_and_everything_after() -> None:
    metrics = Metrics()
    with metrics._flush_lock:  # hold the background flush off while recording
        for _ in range(5):
            metrics.record("/predict", "iris", "1", 200, 0.001, 2)
        metrics.record("/predict", "iris", "1", 400, 0.001, None)
        assert (
            _written(metrics, "flaskserve_rows_predicted_total", model="iris", version="1") is None
        )
    metrics.flush()
    assert (
        _written(
            metrics, "flaskserve_requests_total", endpoint="/predict", model="iris", status="200"
        )
        == 5
    )
    assert (
        _written(
            metrics, "flaskserve_requests_total", endpoint="/predict", model="iris", status="400"
        )
        == 1
    )
    assert _written(metrics, "flaskserve_rows_predicted_total", model="iris", version="1") == 10
    metrics.flush()  # a second flush adds nothing
    assert _written(metrics, "flaskserve_rows_predicted_total", model="iris", version="1") == 10


def test_the_background_thread_flushes_without_a_read() -> None:
    metrics = Metrics()
    metrics.record("/predict", "iris", "1", 200, 0.001, 3)
    deadline = time.monotonic() + 20 * FLUSH_SECONDS
    while time.monotonic() < deadline:
        if _written(metrics, "flaskserve_rows_predicted_total", model="iris", version="1"):
            break
        time.sleep(FLUSH_SECONDS / 10)
    assert _written(metrics, "flaskserve_rows_predicted_total", model="iris", version="1") == 3
    # and again after it went back to sleep
    metrics.record("/predict", "iris", "1", 200, 0.001, 4)
    deadline = time.monotonic() + 20 * FLUSH_SECONDS
    while time.monotonic() < deadline:
        if _written(metrics, "flaskserve_rows_predicted_total", model="iris", version="1") == 7:
            break
        time.sleep(FLUSH_SECONDS / 10)
    assert _written(metrics, "flaskserve_rows_predicted_total", model="iris", version="1") == 7


def test_reading_the_metrics_flushes_this_process_first() -> None:
    metrics = Metrics()
    with metrics._flush_lock:
        metrics.record("/predict", "iris", "1", 200, 0.001, 1)
    assert metrics.model_stats("iris")["requests"] == 1
    metrics.record("/predict", "iris", "1", 200, 0.001, 1)
    text = metrics.render()[0].decode()
    assert 'flaskserve_requests_total{endpoint="/predict",model="iris",status="200"} 2.0' in text


def test_threads_recording_at_once_lose_nothing() -> None:
    metrics = Metrics()
    per_thread, threads = 2_000, 8
    start = threading.Barrier(threads)

    def answer() -> None:
        start.wait()
        for i in range(per_thread):
            metrics.record("/predict", "iris", "1", 200, 0.0001 * (i % 7), 1)

    workers = [threading.Thread(target=answer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stats = metrics.model_stats("iris")
    assert stats["requests"] == per_thread * threads
    assert _written(metrics, "flaskserve_rows_predicted_total", model="iris", version="1") == (
        per_thread * threads
    )
    assert _written(metrics, "flaskserve_request_seconds_count", endpoint="/predict") == (
        per_thread * threads
    )
