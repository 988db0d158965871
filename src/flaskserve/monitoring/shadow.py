"""Shadow challengers: a second version scores a fraction of a model's rows, answers no one.

:meth:`ShadowObserver.observe` runs on the request thread and only samples and appends
to a bounded queue (when full, the request is dropped from the comparison and counted).
One daemon thread per worker, started by the first observation after gunicorn forks,
wakes :data:`COLLECT_SECONDS` after it, takes everything queued, scores it in bulk with
the challenger (and the champion's probabilities where the client did not ask for them),
and adds the comparison to this worker's
:class:`~flaskserve.monitoring.shadow_report.ShadowTally`. A challenger that raises is
counted and logged; nothing of it reaches a client.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.base import Prediction
from ..runtime.registry import ModelRegistry, ServedModel
from ..runtime.shadows import Routing, parse_shadows
from ..schema import Table
from ..settings import Settings
from .base import Observation, call_alive
from .shadow_report import ShadowTally, TallyKey, read_tallies, write_tallies

logger = logging.getLogger(__name__)

#: requests waiting to be scored, per worker; beyond it they are dropped and counted
QUEUE_REQUESTS = 4096
#: the most rows one bulk call to a model receives: below the runtime's default
#: ``FLASKSERVE_PARALLEL_ROWS``, so the shadow keeps to one core and leaves the other
#: to the requests
BATCH_ROWS = 512
#: how long the first request of a batch waits for company: one call for a hundred
#: requests costs little more than one for a single request
COLLECT_SECONDS = 0.25
#: this worker's tallies are written at most this often (and this long after the last batch)
SAVE_SECONDS = 1.0


#: one request to compare: the tally it adds to, the challenger, what the champion answered
_Job = tuple[TallyKey, ServedModel, Observation]


class ShadowObserver:
    """Compares each model's answers with its shadow challenger's, off the request path.

    :param registry: whose snapshot says which challenger each model has.
    :param state_dir: where each worker writes its tallies for the report to sum;
        ``None``: this process only.
    :param metrics: where ``flaskserve_shadow_rows`` and ``_dropped`` are counted.
    """

    def __init__(self, registry: ModelRegistry, state_dir: Path | None, metrics: Any) -> None:
        self._registry = registry
        self._state_dir = state_dir
        self._metrics = metrics
        self._random = random.Random()
        self._reset()
        forget = weakref.WeakMethod(self._reset)
        os.register_at_fork(after_in_child=lambda: call_alive(forget))

    def _reset(self) -> None:
        """A new process's state: its parent's queue, tallies and thread are not its own."""
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # a deque and an event, not a queue.Queue: appending takes no lock and wakes no one
        self._queue: deque[_Job] = deque()
        self._wake = threading.Event()
        self._scoring = False
        self._tallies: dict[TallyKey, ShadowTally] = {}

    def observe(self, observation: Observation) -> None:
        found = self._registry.snapshot.challenger(observation.model.name)
        if found is None:
            return
        challenger, plan = found
        if plan.fraction < 1 and self._random.random() >= plan.fraction:
            return
        if self._thread is None:
            self._start()
        key = (challenger.name, challenger.version, plan.started)
        if len(self._queue) >= QUEUE_REQUESTS:
            with self._lock:
                self._tally(key).dropped += 1
            self._metrics.shadow_dropped.labels(key[0], str(key[1])).inc()
            return
        self._queue.append((key, challenger, observation))
        if not self._wake.is_set():
            self._wake.set()

    def report_tally(self, key: TallyKey) -> tuple[ShadowTally, int]:
        """The sum over workers of the tallies for *key*, and how many workers scored it."""
        if self._state_dir is None:
            with self._lock:
                own = self._tallies.get(key)
                total = ShadowTally()
                if own is not None:
                    total.merge(own)
            return total, int(own is not None)
        self._save()  # this worker's latest, dropped requests included
        return read_tallies(self._state_dir, key)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything queued is scored (tests, shutdown); ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while self._busy() and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._busy()

    def _busy(self) -> bool:
        return bool(self._queue) or self._scoring or self._wake.is_set()

    def _tally(self, key: TallyKey) -> ShadowTally:
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = ShadowTally()
        return tally

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="flaskserve-shadow", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        saved, unsaved = 0.0, False
        while True:
            if not self._wake.wait(SAVE_SECONDS):  # traffic stopped: share the last batches
                if unsaved:
                    self._save()
                    unsaved = False
                continue
            time.sleep(COLLECT_SECONDS)  # one call for a hundred requests costs little more
            self._scoring = True
            self._wake.clear()
            try:
                while self._queue:
                    unsaved = self._score_all(self._take()) or unsaved
                # at most once a second: a file per batch cost the champion more than scoring
                if unsaved and time.monotonic() - saved >= SAVE_SECONDS:
                    self._save()
                    saved, unsaved = time.monotonic(), False
            finally:
                self._scoring = False

    def _take(self) -> list[_Job]:
        """Queued requests, oldest first, up to :data:`BATCH_ROWS` rows (at least one)."""
        batch = [self._queue.popleft()]
        rows = len(batch[0][2].inputs)
        while self._queue and rows + len(self._queue[0][2].inputs) <= BATCH_ROWS:
            batch.append(self._queue.popleft())
            rows += len(batch[-1][2].inputs)
        return batch

    def _score_all(self, batch: Sequence[_Job]) -> bool:
        """Score and tally *batch*; ``False`` if it failed (logged: the thread must go on)."""
        groups: dict[tuple[Any, ...], list[_Job]] = {}
        for job in batch:  # rows of one champion and challenger, of one kind, go together
            key, challenger, seen = job
            group = (key, id(seen.model), id(challenger), type(seen.inputs))
            groups.setdefault(group, []).append(job)
        try:
            for jobs in groups.values():
                key, challenger, _ = jobs[0]
                tally = score(challenger, [seen for _, _, seen in jobs])
                with self._lock:
                    self._tally(key).merge(tally)
                self._count(key, tally)
        except Exception:  # a surprise must not stop shadowing
            logger.exception("shadow scoring failed")
            return False
        return True

    def _count(self, key: TallyKey, tally: ShadowTally) -> None:
        rows = self._metrics.shadow_rows
        name, version = key[0], str(key[1])
        outcomes = {"agree": tally.agree, "disagree": tally.rows - tally.agree}
        for outcome, count in (outcomes | {"failed": tally.failed_rows}).items():
            if count:
                rows.labels(name, version, outcome).inc(count)

    def _save(self) -> None:
        if self._state_dir is None:
            return
        with self._lock:
            tallies = {k: ShadowTally(**vars(t)) for k, t in self._tallies.items()}
        if not tallies:
            return
        try:
            write_tallies(self._state_dir, tallies)
        except OSError as e:  # a full disk must stop neither the thread nor the report
            logger.warning("could not share this worker's shadow tallies: %s", e)


def score(challenger: ServedModel, seen: Sequence[Observation]) -> ShadowTally:
    """Score the rows of *seen* (one champion's) with *challenger* in one call; compare."""
    tally = ShadowTally(requests=len(seen), batches=1)
    rows = _concat([s.inputs for s in seen])
    champion = seen[0].model
    labels = np.concatenate([s.prediction.predictions for s in seen])
    classes = champion.runtime.manifest.task == "classification"
    started = time.perf_counter()
    try:
        theirs = challenger.runtime.predict(rows, proba=classes)
    except Exception as e:  # the challenger's failure is a finding, never a client's error
        logger.warning(
            "shadow challenger %r version %s failed on %d rows: %s",
            challenger.name,
            challenger.version,
            len(rows),
            e,
        )
        return ShadowTally(requests=len(seen), failed_rows=len(rows), failed_batches=1)
    tally.seconds = time.perf_counter() - started
    if not classes:  # a regressor: values compared within a tolerance, no confusion
        tally.add_values(labels, np.asarray(theirs.predictions))
        return tally
    tally.add_labels(labels, np.asarray(theirs.predictions))
    if classes and theirs.probabilities is not None:
        ours = _champion_probabilities(champion, seen, rows)
        aligned = _align(champion, challenger, np.asarray(theirs.probabilities))
        if ours is not None and aligned is not None:
            tally.add_probabilities(ours, aligned)
    return tally


def _concat(inputs: Sequence[np.ndarray | Table]) -> np.ndarray | Table:
    first = inputs[0]
    if isinstance(first, Table):
        return first.concat(*inputs[1:]) if len(inputs) > 1 else first  # type: ignore[arg-type]
    return np.concatenate(inputs) if len(inputs) > 1 else first  # type: ignore[arg-type]


def _champion_probabilities(
    champion: ServedModel, seen: Sequence[Observation], rows: np.ndarray | Table
) -> np.ndarray | None:
    given = [_probabilities(s.prediction) for s in seen]
    if all(p is not None for p in given):
        joined: np.ndarray = np.concatenate(given)  # type: ignore[arg-type]
        if np.isfinite(joined).all():  # scores come unchecked: a bad run is computed again
            return joined
    try:  # the client did not ask for them: compute them here, off its path
        return champion.runtime.predict(rows, proba=True).probabilities
    except Exception as e:
        logger.warning("champion %r probabilities failed for the shadow: %s", champion.name, e)
        return None


def _probabilities(prediction: Prediction) -> np.ndarray | None:
    """What the client asked for, or else what the answering run kept (``scores``)."""
    asked = prediction.probabilities
    return asked if asked is not None else prediction.scores


def _align(champion: ServedModel, challenger: ServedModel, proba: np.ndarray) -> np.ndarray | None:
    """The challenger's probability columns in the champion's class order, if same classes."""
    ours = [str(label) for label in champion.runtime.manifest.labels]
    theirs = [str(label) for label in challenger.runtime.manifest.labels]
    if ours == theirs:
        return proba
    if sorted(ours) != sorted(theirs):
        return None
    return proba[:, [theirs.index(label) for label in ours]]


def shadow_observer(settings: Settings, registry: ModelRegistry, metrics: Any) -> ShadowObserver:
    """The shadow monitor of one app; ``settings.shadow`` names the challengers it starts with.

    :raises SettingsError: ``settings.shadow`` does not parse.
    """
    plans = parse_shadows(settings.shadow)
    registry.routing.set_initial(Routing(plans))
    if plans:
        registry.refresh()  # the first snapshot may have chosen a challenger: choose again
    return ShadowObserver(registry, settings.state_dir, metrics)
