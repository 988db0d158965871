"""Prometheus metrics that add up across gunicorn workers.

Under ``flaskserve serve`` every worker writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode) and
``/metrics`` reads all of them, so a scrape that lands on any worker sees the
whole server. Without that variable (tests, the development server) the
metrics live in this process's own registry.
"""

from __future__ import annotations

import os
from typing import Any

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# finer, for the per-model percentiles a compiled model answers in well under a millisecond
MODEL_LATENCY_BUCKETS = (
    *(0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075),
    *(0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0),
)
PERCENTILES = (50, 90, 99)


class Metrics:
    """The collectors flaskserve records into, built when the app is."""

    def __init__(self) -> None:
        # imported here: multiprocess mode is chosen when prometheus_client is first
        # imported, which must happen in the worker, after the variable is set
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = MULTIPROCESS_ENV in os.environ
        registry = None if self.multiprocess else CollectorRegistry()
        self._registry = registry
        self.requests = Counter(
            "flaskserve_requests",
            "HTTP requests answered",
            ["endpoint", "model", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "flaskserve_request_seconds",
            "Time to answer",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.model_latency = Histogram(
            "flaskserve_model_request_seconds",
            "Time to answer a prediction request, by model",
            ["model"],
            buckets=MODEL_LATENCY_BUCKETS,
            registry=registry,
        )
        self.rows = Counter(
            "flaskserve_rows_predicted", "Rows predicted", ["model", "version"], registry=registry
        )
        self.load_failures = Counter(
            "flaskserve_model_load_failures",
            "Model versions refused at load",
            ["model"],
            registry=registry,
        )
        self.version = Gauge(
            "flaskserve_model_version",
            "Version answering",
            ["model"],
            registry=registry,
            multiprocess_mode="livemax",
        )

        self._children: dict[tuple[Any, ...], Any] = {}  # labels() costs a lock and a lookup
        # the children one answer updates, found with one lookup
        self._answer_children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self._versions: dict[str, str] = {}  # the gauge is written when a model's version changes

    def record(
        self,
        endpoint: str,
        model: str,
        version: str | None,
        status: int,
        seconds: float,
        rows: int | None,
    ) -> None:
        """Count one answered request."""
        key = (endpoint, model, status)
        children = self._answer_children.get(key)
        if children is None:
            children = self._answer_children[key] = (
                self._child(self.requests, endpoint, model, str(status)),
                self._child(self.latency, endpoint),
                self._child(self.model_latency, model) if model else None,
            )
        requests, latency, model_latency = children
        requests.inc()
        latency.observe(seconds)
        if model_latency is not None:
            model_latency.observe(seconds)
        if model and version:
            if self._versions.get(model) != version:
                self._child(self.version, model).set(float(version))
                self._versions[model] = version
            if rows:
                self._child(self.rows, model, version).inc(rows)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self._readable()), CONTENT_TYPE_LATEST

    def model_stats(self, model: str) -> dict[str, Any]:
        """Requests a model answered, by status, and its latency percentiles, over all workers.

        Percentiles are estimated from the histogram's buckets the way Prometheus'
        ``histogram_quantile`` does (linear within a bucket), so they are as fine
        as :data:`MODEL_LATENCY_BUCKETS`; ``None`` before the first request.
        """
        statuses: dict[str, int] = {}
        buckets: dict[float, float] = {}
        for family in self._readable().collect():
            for sample in family.samples:
                if sample.labels.get("model") != model:
                    continue
                if sample.name == "flaskserve_requests_total":
                    status = sample.labels["status"]
                    statuses[status] = statuses.get(status, 0) + int(sample.value)
                elif sample.name == "flaskserve_model_request_seconds_bucket":
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
        cumulative = sorted(buckets.items())
        return {
            "model": model,
            "requests": sum(statuses.values()),
            "errors": sum(n for status, n in statuses.items() if not status.startswith("2")),
            "by_status": dict(sorted(statuses.items())),
            "latency_ms": {f"p{q}": _quantile(q / 100, cumulative) for q in PERCENTILES},
        }

    def _readable(self) -> Any:
        if not self.multiprocess:
            return self._registry
        from prometheus_client import CollectorRegistry, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry


def _quantile(q: float, cumulative: list[tuple[float, float]]) -> float | None:
    """The *q* quantile in milliseconds from cumulative ``(upper bound, count)`` buckets."""
    total = cumulative[-1][1] if cumulative else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in cumulative:
        if count >= rank:
            if upper == float("inf"):  # past the last bound: say the last bound, not infinity
                return round(lower * 1000, 3)
            share = (rank - below) / (count - below) if count > below else 1.0
            return round((lower + (upper - lower) * share) * 1000, 3)
        lower, below = upper, count
    return round(lower * 1000, 3)


def forget_worker(pid: int) -> None:
    """gunicorn ``child_exit``: drop a dead worker's live gauges (its counters stay counted)."""
    if MULTIPROCESS_ENV in os.environ:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
