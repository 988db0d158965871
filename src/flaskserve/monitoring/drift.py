"""Input drift: every answered row counted into its model's training bins, and the
population stability index of each column against the training data.

On the request path :meth:`DriftMonitor.observe` only appends the answer's rows to
its model version's and window slot's list, bounded in all (past it the answer is
dropped and counted). A thread of this process, started with the first answer (so after
gunicorn forks), wakes :data:`COUNT_SECONDS` after it, takes every list, and bins each
one's rows in one NumPy pass per column
(:class:`~flaskserve.monitoring.drift_baseline.Bins`): it takes no Python step per
answer, so it holds the interpreter for short moments only. The counts are summed over
the workers by :class:`~flaskserve.monitoring.drift_counts.CountStore`.

:meth:`DriftMonitor.report` answers ``GET /model/<name>/drift``; :meth:`update_gauges`
sets ``flaskserve_feature_psi`` (since start) on every ``/metrics`` scrape.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from ..artifact import ModelManifest
from ..errors import FlaskServeError
from ..schema import Table
from ..settings import Settings
from .base import Observation, joined_inputs, reset_after_fork, start_thread
from .drift_baseline import Bins, bins_of, min_rows, stability_index, status_of
from .drift_counts import SLOTS, CountStore, Key, Summary, Tally

logger = logging.getLogger(__name__)

#: answers waiting to be counted, at most; past it they are dropped (and counted as dropped)
QUEUE_LIMIT = 4096
#: how long the counting thread lets answers gather once woken
COUNT_SECONDS = 0.5
#: a worker shares its counts with the others at most this often: writing them (about 0.6 ms
#: under load) every count cost each answer more than grouping it (docs/monitoring.md)
SHARE_SECONDS = 2.0
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
        # rows to count, by model version (the object that answered) and window slot: the
        # counting thread then concatenates each list at once, no step per answer
        self._pending: dict[tuple[int, int], tuple[Any, list[np.ndarray | Table]]] = {}
        self._pending_answers = 0
        self._pending_lock = threading.Lock()
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._count_lock = threading.RLock()  # count_queued shares under it too
        self._thread: threading.Thread | None = None
        self._shared = 0.0  # when this process last wrote its counts (monotonic)
        self._unshared = False  # counts not yet written

    def observe(self, observation: Observation) -> None:
        """Queue the answer for counting (the request's thread: a few hundred nanoseconds)."""
        model = observation.model
        key = (id(model), self._store.slot_of(observation.time))
        with self._pending_lock:
            if self._pending_answers >= QUEUE_LIMIT:
                self._store.dropped += 1
                return
            self._pending_answers += 1
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = (model, [])
            pending[1].append(observation.inputs)
        if self._thread is None:
            self._start()
        if not self._wake.is_set():
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = start_thread(self._run, "flaskserve-drift", self._close)

    def _run(self) -> None:
        while True:
            if not self._wake.wait(SHARE_SECONDS if self._unshared else None):
                self._share()  # traffic stopped: the last counts reach the other workers
                continue
            time.sleep(COUNT_SECONDS)  # answers that arrive meanwhile join this count
            self._wake.clear()
            try:
                self.count_queued()
            except Exception:  # the thread must outlive a bad batch
                logger.exception("drift counting failed")

    def count_queued(self) -> None:
        """Bin everything queued, one model version (and window slot) at a time; share the
        counts if the last share is :data:`SHARE_SECONDS` old."""
        with self._count_lock:
            with self._pending_lock:
                taken, self._pending = self._pending, {}
                self._pending_answers = 0
            for (_, slot), (model, inputs) in taken.items():  # binned in bulk, once a list
                key = (model.name, model.version)
                bins = self._bins_of(key, model.runtime.manifest)
                if bins is not None:
                    rows = joined_inputs(inputs)
                    counts = {b.name: b.count(c) for b, c in zip(bins, _columns(rows), strict=True)}
                    self._store.add(key, slot, len(rows), counts)
            self._unshared = self._unshared or bool(taken)
            if self._unshared and time.monotonic() - self._shared >= SHARE_SECONDS:
                self._share()

    def _close(self) -> None:
        """A stopping worker's last counts reach the other workers (at exit)."""
        self.count_queued()
        if self._unshared:
            self._share()

    def _share(self) -> None:
        """Write this process's counts for the other workers' reports."""
        with self._count_lock:
            self._store.write()
            self._shared, self._unshared = time.monotonic(), False

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


def _columns(rows: np.ndarray | Table) -> tuple[np.ndarray, ...]:
    return rows.columns if isinstance(rows, Table) else tuple(rows.T)
