"""Prometheus metrics that add up across gunicorn workers.

Under ``flaskserve serve`` every worker writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode) and
``/metrics`` reads all of them, so a scrape that lands on any worker sees the
whole server. Without that variable (tests, the development server) the
metrics live in this process's own registry.

An answer is tallied in memory and written to the collectors at most
:data:`FLUSH_SECONDS` later, by a background thread (and before this process
reads its own metrics, and at exit). Writing each answer through
prometheus_client costs six locked writes to the shared files (8.5 µs a
request in a tight loop, ~5% of wrk's requests/s on the compiled model); a
scrape every few seconds does not need them sooner.

What this relies on in prometheus_client, beyond its documented API (checked by
``tests/test_metrics_flush.py`` against the installed version):

- multiprocess mode is chosen when prometheus_client is first imported, from
  ``PROMETHEUS_MULTIPROC_DIR``; so it is imported in :class:`Metrics`, in the
  worker, never at this module's import;
- a histogram child keeps its sum in ``_sum`` and its per-bucket (not cumulative)
  counts in ``_buckets``, each with ``inc``: :func:`_add_to_histogram` writes a
  flush's many observations with one increment per bucket.

Nothing happens at import: the flushing thread, and the fork hook that forgets it
in a child process, start with the first answer recorded.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable
from functools import cached_property
from typing import Any

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# finer, for the per-model percentiles a compiled model answers in well under a millisecond
MODEL_LATENCY_BUCKETS = (
    *(0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075),
    *(0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0),
)
PERCENTILES = (50, 90, 99)
#: the longest an answer waits in memory before it reaches the collectors
FLUSH_SECONDS = 0.1


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
        self.before_render: list[Callable[[], None]] = []  # the drift monitor sets its gauge

        self._children: dict[tuple[Any, ...], Any] = {}  # labels() costs a lock and a lookup
        self._versions: dict[str, str] = {}  # the gauge is written when a model's version changes
        # answers not yet written: per (endpoint, model, status) and per (model, version)
        self._tallies: dict[tuple[str, str, int], _Tally] = {}
        self._rows: dict[tuple[str, str], int] = {}
        self._tally_lock = threading.Lock()  # gthread workers record from several threads
        self._flush_lock = threading.Lock()

    def record(
        self,
        endpoint: str,
        model: str,
        version: str | None,
        status: int,
        seconds: float,
        rows: int | None,
    ) -> None:
        """Count one answered request (it reaches the collectors within :data:`FLUSH_SECONDS`)."""
        key = (endpoint, model, status)
        with self._tally_lock:
            tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = _Tally()
                _flusher().wake(self)  # once per flush: the first answer since the last one
            tally.add(seconds)
            if model and version:
                if self._versions.get(model) != version:
                    self._child(self.version, model).set(float(version))
                    self._versions[model] = version
                if rows:
                    self._rows[(model, version)] = self._rows.get((model, version), 0) + rows

    def flush(self) -> None:
        """Write the answers tallied since the last flush to the collectors."""
        with self._flush_lock:
            with self._tally_lock:
                tallies, self._tallies = self._tallies, {}
                rows, self._rows = self._rows, {}
            for (endpoint, model, status), tally in tallies.items():
                self._child(self.requests, endpoint, model, str(status)).inc(tally.count)
                _add_to_histogram(
                    self._child(self.latency, endpoint),
                    tally.seconds,
                    tally.counts(LATENCY_BUCKETS),
                )
                if model:
                    _add_to_histogram(
                        self._child(self.model_latency, model),
                        tally.seconds,
                        tally.counts(MODEL_LATENCY_BUCKETS),
                    )
            for (model, version), count in rows.items():
                self._child(self.rows, model, version).inc(count)

    @cached_property
    def log_dropped(self) -> Any:
        """Request-log rows dropped, by reason (made when monitoring/requestlog.py starts)."""
        from prometheus_client import Counter

        reasons = "queue_full, disk_full, write_failed, unsupported"
        return Counter(
            "flaskserve_log_dropped",
            f"Request-log rows dropped: {reasons}",
            ["reason"],
            registry=self._registry,
        )

    @cached_property
    def shadow_rows(self) -> Any:
        """Rows a shadow challenger compared (monitoring/shadow.py), by outcome."""
        from prometheus_client import Counter

        return Counter(
            "flaskserve_shadow_rows",
            "Rows a shadow challenger scored beside its champion: agree, disagree, failed",
            ["model", "challenger_version", "outcome"],
            registry=self._registry,
        )

    @cached_property
    def shadow_dropped(self) -> Any:
        """Requests a shadow challenger could not keep up with (monitoring/shadow.py)."""
        from prometheus_client import Counter

        return Counter(
            "flaskserve_shadow_dropped",
            "Requests left out of a shadow comparison: its queue was full",
            ["model", "challenger_version"],
            registry=self._registry,
        )

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    @cached_property
    def feature_psi(self) -> Any:
        """``flaskserve_feature_psi``: set by the drift monitor (``monitoring/drift.py``)."""
        from prometheus_client import Gauge

        return Gauge(
            "flaskserve_feature_psi",
            "Population stability index of an input column since start, against its training",
            ["model", "version", "feature"],
            registry=self._registry,
            multiprocess_mode="mostrecent",  # each worker computes it from all workers' counts
        )

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        for hook in self.before_render:
            hook()
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
        self.flush()  # this process's own answers count at once; other workers', within a flush
        if not self.multiprocess:
            return self._registry
        from prometheus_client import CollectorRegistry, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry


class _Tally:
    """Answers of one endpoint, model and status since the last flush: their count and times."""

    __slots__ = ("_times", "count", "seconds")

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self._times: list[float] = []

    def add(self, seconds: float) -> None:
        self.count += 1
        self.seconds += seconds
        self._times.append(seconds)

    def counts(self, bounds: tuple[float, ...]) -> list[int]:
        """How many times fell in each bucket of *bounds* (and past the last), not cumulative."""
        counts = [0] * (len(bounds) + 1)
        for seconds in self._times:  # the first bound at or above: Histogram.observe's rule
            counts[bisect_left(bounds, seconds)] += 1
        return counts


def _add_to_histogram(histogram: Any, seconds: float, counts: list[int]) -> None:
    """What ``observe`` would have written for each time, in one write per bucket.

    prometheus_client has no public call to observe many values at once; a histogram
    child keeps its sum and its per-bucket (not cumulative) counts in ``_sum`` and
    ``_buckets``, which ``observe`` increments. The tests compare the two ways.
    """
    histogram._sum.inc(seconds)
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)


class _Flusher:
    """One thread per process that flushes, :data:`FLUSH_SECONDS` after it is woken,
    every :class:`Metrics` that recorded since; it sleeps while no answers come."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # the thread does not survive a fork

    def _reset(self) -> None:
        self._waiting: weakref.WeakSet[Metrics] = weakref.WeakSet()
        self._woken = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def wake(self, metrics: Metrics) -> None:
        with self._lock:
            self._waiting.add(metrics)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="flaskserve-metrics", daemon=True
                )
                self._thread.start()
                atexit.register(self.flush_all)  # a stopping worker writes what it tallied
        self._woken.set()

    def flush_all(self) -> None:
        with self._lock:
            waiting, self._waiting = list(self._waiting), weakref.WeakSet()
        for metrics in waiting:
            metrics.flush()

    def _run(self) -> None:
        woken = self._woken
        while True:
            woken.wait()
            # answers that arrive meanwhile join this flush
            time.sleep(FLUSH_SECONDS)
            woken.clear()
            self.flush_all()


_FLUSHERS: list[_Flusher] = []  # at most one, made on first use
_FLUSHERS_LOCK = threading.Lock()


def _flusher() -> _Flusher:
    with _FLUSHERS_LOCK:
        if not _FLUSHERS:
            _FLUSHERS.append(_Flusher())
        return _FLUSHERS[0]


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
