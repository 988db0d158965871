"""Input drift: every answered row counted into its model's training bins, and the
population stability index of each column against the training data.

On the request path :meth:`DriftMonitor.observe` only appends the answer to a
bounded queue (a full queue drops it and counts the drop). A thread of this process,
started with the first answer (so after gunicorn forks), wakes :data:`COUNT_SECONDS`
after it, takes everything queued, and bins each model version's rows in one NumPy
pass per column (:class:`~flaskserve.monitoring.drift_baseline.Bins`); the counts are
summed over the workers by :class:`~flaskserve.monitoring.drift_counts.CountStore`.

:meth:`DriftMonitor.report` answers ``GET /model/<name>/drift``; :meth:`update_gauges`
sets ``flaskserve_feature_psi`` (since start) on every ``/metrics`` scrape.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..artifact import ModelManifest
from ..errors import FlaskServeError
from ..schema import Table
from ..settings import Settings
from .base import Observation, in_slices, reset_after_fork
from .drift_baseline import Bins, bins_of, min_rows, stability_index, status_of
from .drift_counts import SLOTS, CountStore, Key, Summary, Tally

logger = logging.getLogger(__name__)

#: answers waiting to be counted, at most; past it they are dropped (and counted as dropped)
QUEUE_LIMIT = 4096
#: how long the counting thread lets answers gather once woken
COUNT_SECONDS = 0.5
_ORDER = ("no data", "too few rows", "stable", "shift", "drift")
NO_BASELINE = (
    "no baseline: the artifact records no training distribution (saved before baselines"
    " were recorded, or without sample=); save it again with its training rows"
)


class DriftMonitor:
    """Counts each model version's served rows into its training bins (see the module).

    :param settings: ``drift_window_seconds``, the recent window reported beside
        since-start, and ``state_dir``, the server's shared directory (``None``: this
        process's rows only).
    :param registry: finds the manifests of the versions counted (for the gauges).
    :param metrics: holds ``feature_psi``, the ``flaskserve_feature_psi`` gauge.
    """

    def __init__(self, settings: Settings, registry: Any, metrics: Any) -> None:
        self.window_seconds = settings.drift_window_seconds
        self._store = CountStore(self.window_seconds / SLOTS, settings.state_dir)
        self._registry = registry
        self._metrics = metrics
        self._bins: dict[Key, tuple[ModelManifest, tuple[Bins, ...] | None]] = {}
        self._reset()
        metrics.before_render.append(self.update_gauges)  # on each /metrics scrape
        # the thread does not survive a fork; the queue is the parent's
        reset_after_fork(self._reset)

    def _reset(self) -> None:
        self._queue: deque[Observation] = deque()
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def observe(self, observation: Observation) -> None:
        """Queue the answer for counting (the request's thread: a few hundred nanoseconds)."""
        if len(self._queue) >= QUEUE_LIMIT:
            self._store.dropped += 1
            return
        self._queue.append(observation)
        if self._thread is None:
            self._start()
        if not self._wake.is_set():
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="flaskserve-drift", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(COUNT_SECONDS)  # answers that arrive meanwhile join this count
            self._wake.clear()
            try:
                self.count_queued()
            except Exception:  # the thread must outlive a bad batch
                logger.exception("drift counting failed")

    def count_queued(self) -> None:
        """Bin everything queued, one model version (and window slot) at a time, and share it."""
        with self._count_lock:
            taken = [self._queue.popleft() for _ in range(len(self._queue))]
            groups: dict[tuple[Key, int], list[Observation]] = {}
            for part in in_slices(taken):  # the request threads get the interpreter in between
                self._group(part, groups)
            for (key, slot), observations in groups.items():  # binned in bulk, once a group
                bins = self._bins_of(key, observations[0].model.runtime.manifest)
                if bins is not None:
                    rows = _joined([o.inputs for o in observations])
                    counts = {b.name: b.count(c) for b, c in zip(bins, _columns(rows), strict=True)}
                    self._store.add(key, slot, len(rows), counts)
            if taken:
                self._store.write()

    def _group(
        self, taken: Sequence[Observation], groups: dict[tuple[Key, int], list[Observation]]
    ) -> None:
        for seen in taken:
            key = (seen.model.name, seen.model.version)
            groups.setdefault((key, self._store.slot_of(seen.time)), []).append(seen)

    def _bins_of(self, key: Key, manifest: ModelManifest) -> tuple[Bins, ...] | None:
        cached = self._bins.get(key)
        if cached is None or cached[0] is not manifest:  # a version's artifact may be replaced
            cached = self._bins[key] = (
                manifest,
                bins_of(manifest.baselines, manifest.feature_names),
            )
        return cached[1]

    def report(self, name: str, version: int, manifest: ModelManifest) -> dict[str, Any]:
        """What ``GET /model/<name>/drift`` answers for one model version (docs/monitoring.md)."""
        self.count_queued()  # this process's latest answers count at once
        head: dict[str, Any] = {"model": name, "version": version}
        bins = self._bins_of((name, version), manifest)
        if bins is None:
            return {**head, "baseline": False, "reason": NO_BASELINE, "status": "no baseline"}
        summary = self._store.summary((name, version), time.time())
        features = [_feature_report(b, summary) for b in bins]
        self._set_gauges(name, version, features)
        worst = max((f[r]["status"] for f in features for r in ("since_start", "window")),
                    key=_ORDER.index, default="no data")  # fmt: skip
        return {
            **head,
            "baseline": True,
            "status": worst,
            "window_seconds": self.window_seconds,
            "rows": {"since_start": summary.total.rows, "window": summary.window.rows},
            "workers": summary.workers,
            "dropped": summary.dropped,
            "features": features,
        }

    def update_gauges(self) -> None:
        """Set ``flaskserve_feature_psi`` of every version any worker counted (each scrape)."""
        try:
            self.count_queued()
            now = time.time()
            for name, version in sorted(self._store.keys()):
                try:
                    served = self._registry.snapshot.get(name, version)
                except FlaskServeError:  # unloaded or gone: its last figures stay
                    continue
                bins = self._bins_of((name, version), served.runtime.manifest)
                if bins is not None:
                    summary = self._store.summary((name, version), now)
                    self._set_gauges(name, version, [_feature_report(b, summary) for b in bins])
        except Exception:  # a scrape must never fail for drift's sake
            logger.exception("drift gauges not updated")

    def _set_gauges(self, name: str, version: int, features: list[dict[str, Any]]) -> None:
        for feature in features:
            psi = feature["since_start"]["psi"]
            if feature["since_start"]["status"] not in _ORDER[:2]:  # an alert needs enough rows
                self._metrics.feature_psi.labels(name, str(version), feature["name"]).set(psi)


def _feature_report(bins: Bins, summary: Summary) -> dict[str, Any]:
    ranges = {"since_start": summary.total, "window": summary.window}
    shares = {r: _shares(bins, t) for r, t in ranges.items()}
    needed = min_rows(bins)
    report: dict[str, Any] = {"name": bins.name, "kind": bins.kind, "min_rows": needed}
    for label, tally in ranges.items():
        counts = tally.counts.get(bins.name, np.zeros(len(bins.labels), dtype=np.int64))
        psi = stability_index(bins.expected, counts) if len(counts) == len(bins.labels) else None
        report[label] = {
            "psi": None if psi is None else round(psi, 4),
            "status": status_of(psi, int(counts.sum()), needed),
        }
    report["bins"] = [
        {"label": label, "baseline": round(float(share), 4), **{r: s[i] for r, s in shares.items()}}
        for i, (label, share) in enumerate(zip(bins.labels, bins.expected, strict=True))
    ]
    return report


def _shares(bins: Bins, tally: Tally) -> list[float | None]:
    counts = tally.counts.get(bins.name)
    if counts is None or len(counts) != len(bins.labels) or not counts.sum():
        return [None] * len(bins.labels)
    return [round(float(n) / float(counts.sum()), 4) for n in counts]


def _joined(inputs: list[np.ndarray | Table]) -> np.ndarray | Table:
    first = inputs[0]
    if len(inputs) == 1:
        return first
    if isinstance(first, Table):
        return first.concat(*(t for t in inputs[1:] if isinstance(t, Table)))
    return np.concatenate([m for m in inputs if isinstance(m, np.ndarray)])


def _columns(rows: np.ndarray | Table) -> tuple[np.ndarray, ...]:
    return rows.columns if isinstance(rows, Table) else tuple(rows.T)
