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
        self._child(self.requests, endpoint, model, str(status)).inc()
        self._child(self.latency, endpoint).observe(seconds)
        if model and version:
            self._child(self.version, model).set(float(version))
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
        from prometheus_client import (
            CONTENT_TYPE_LATEST,
            CollectorRegistry,
            generate_latest,
            multiprocess,
        )

        registry: Any = self._registry
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST


def forget_worker(pid: int) -> None:
    """gunicorn ``child_exit``: drop a dead worker's live gauges (its counters stay counted)."""
    if MULTIPROCESS_ENV in os.environ:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
