"""Shadow challengers: a second version scores a fraction of a model's rows, answers no one.

:meth:`ShadowObserver.observe` runs on the request thread and only samples and appends
to a bounded queue (when full, the request is dropped from the comparison and counted).
One daemon thread per process, started by the first observation after gunicorn forks,
wakes :data:`COLLECT_SECONDS` after it, takes everything queued, scores it in bulk with
the challenger (and the champion's probabilities where the client did not ask for them),
and adds the comparison to this process's
:class:`~flaskserve.monitoring.shadow_report.ShadowTally`. A challenger that raises is
counted and logged; nothing of it reaches a client. Under ``flaskserve serve`` this runs
in each worker's monitor process (:mod:`.process`), fed a worker's answers in columns,
already sampled (:meth:`ShadowObserver.take`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.registry import ModelRegistry, ServedModel
from ..runtime.shadows import Routing, parse_shadows
from ..settings import Settings
from .base import Answers, Observation, reset_after_fork, runs_of
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


#: requests to compare: the tally they add to, the challenger, the champion, and what it
#: answered (one request told on the request thread, or a monitor process's answers)
_Job = tuple[TallyKey, ServedModel, ServedModel, Observation | Answers]


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
        reset_after_fork(self._reset)

    def _reset(self) -> None:
        """A new process's state: its parent's queue, tallies and thread are not its own."""
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # a deque and an event, not a queue.Queue: appending takes no lock and wakes no one
        self._queue: deque[_Job] = deque()
        self._queued_answers = 0  # requests queued by take(), under the lock
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
            self._drop(key, 1)
            return
        self._queue.append((key, challenger, observation.model, observation))
        if not self._wake.is_set():
            self._wake.set()

    def take(self, model: ServedModel, answers: Answers) -> None:
        """Queue *answers* of *model* for its challenger: a monitor process's, which its
        worker drew with the plan's fraction already."""
        found = self._registry.snapshot.challenger(model.name)
        if found is None:  # stopped meanwhile
            return
        challenger, plan = found
        key = (challenger.name, challenger.version, plan.started)
        requests = len(answers.sizes)
        with self._lock:
            full = self._queued_answers + requests > QUEUE_REQUESTS
            if not full:
                self._queued_answers += requests
        if full:
            self._drop(key, requests)
            return
        if self._thread is None:
            self._start()
        for chunk in _chunks(answers, BATCH_ROWS):
            self._queue.append((key, challenger, model, chunk))
        self._wake.set()

    def _drop(self, key: TallyKey, requests: int) -> None:
        with self._lock:
            self._tally(key).dropped += requests
        self._metrics.shadow_dropped.labels(key[0], str(key[1])).inc(requests)

    def add_dropped(self, key: TallyKey, requests: int) -> None:
        """Count *requests* its worker could not queue (its metric counted them already)."""
        with self._lock:
            self._tally(key).dropped += requests

    def report_tally(self, key: TallyKey) -> tuple[ShadowTally, int]:
        """The sum over workers of the tallies for *key*, and how many workers scored it."""
        if self._state_dir is None:
            with self._lock:
                own = self._tallies.get(key)
                total = ShadowTally()
                if own is not None:
                    total.merge(own)
            return total, int(own is not None)
        self.save()  # this worker's latest, dropped requests included
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
                    self.save()
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
                    self.save()
                    saved, unsaved = time.monotonic(), False
            finally:
                self._scoring = False

    def _take(self) -> list[_Job]:
        """Queued requests, oldest first, up to :data:`BATCH_ROWS` rows (at least one job)."""
        batch = [self._queue.popleft()]
        rows = _rows(batch[0][3])
        while self._queue and rows + _rows(self._queue[0][3]) <= BATCH_ROWS:
            batch.append(self._queue.popleft())
            rows += _rows(batch[-1][3])
        taken = sum(len(job[3].sizes) for job in batch if isinstance(job[3], Answers))
        if taken:
            with self._lock:
                self._queued_answers -= taken
        return batch

    def _score_all(self, batch: Sequence[_Job]) -> bool:
        """Score and tally *batch*; ``False`` if it failed (logged: the thread must go on)."""
        groups: dict[tuple[Any, ...], list[_Job]] = {}
        for job in batch:  # rows of one champion and challenger go together
            key, challenger, champion, _ = job
            groups.setdefault((key, id(champion), id(challenger)), []).append(job)
        try:
            for jobs in groups.values():
                key, challenger, champion, _ = jobs[0]
                for answers in _in_columns([job[3] for job in jobs]):
                    tally = score(challenger, champion, answers)
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

    def save(self) -> None:
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


def score(challenger: ServedModel, champion: ServedModel, answers: Answers) -> ShadowTally:
    """Score the rows of *answers* (*champion*'s) with *challenger* in one call; compare."""
    requests = len(answers.sizes)
    tally = ShadowTally(requests=requests, batches=1)
    classes = champion.runtime.manifest.task == "classification"
    started = time.perf_counter()
    try:
        theirs = challenger.runtime.predict(answers.inputs, proba=classes)
    except Exception as e:  # the challenger's failure is a finding, never a client's error
        logger.warning(
            "shadow challenger %r version %s failed on %d rows: %s",
            challenger.name,
            challenger.version,
            len(answers),
            e,
        )
        return ShadowTally(requests=requests, failed_rows=len(answers), failed_batches=1)
    tally.seconds = time.perf_counter() - started
    if not classes:  # a regressor: values compared within a tolerance, no confusion
        tally.add_values(answers.predictions, np.asarray(theirs.predictions))
        return tally
    tally.add_labels(answers.predictions, np.asarray(theirs.predictions))
    if theirs.probabilities is not None:
        ours = _champion_probabilities(champion, answers)
        aligned = _align(champion, challenger, np.asarray(theirs.probabilities))
        if ours is not None and aligned is not None:
            tally.add_probabilities(ours, aligned)
    return tally


def _rows(payload: Observation | Answers) -> int:
    return len(payload.inputs) if isinstance(payload, Observation) else len(payload)


def _chunks(answers: Answers, limit: int) -> Iterator[Answers]:
    """*answers* cut between requests into parts of at most *limit* rows (or one request)."""
    rest: Answers | None = answers
    while rest is not None:
        fits = int(np.searchsorted(np.cumsum(rest.sizes), limit, side="right"))
        first, rest = rest.head(max(fits, 1))
        yield first


def _in_columns(payloads: list[Observation | Answers]) -> list[Answers]:
    """*payloads* (one champion's) in as few :class:`Answers` as their kinds allow: the
    champion's probabilities, asked for or kept as ``scores``, as ``probabilities``."""
    told = [p for p in payloads if isinstance(p, Observation)]
    parts = [p for p in payloads if isinstance(p, Answers)] + (runs_of(told) if told else [])
    kinds: dict[tuple[Any, ...], list[Answers]] = {}
    for part in parts:
        known = part.probabilities if part.probabilities is not None else part.scores
        part = replace(part, probabilities=known, scores=None)
        kinds.setdefault((type(part.inputs), known is None), []).append(part)
    return [Answers.concat(same) for same in kinds.values()]


def _champion_probabilities(champion: ServedModel, answers: Answers) -> np.ndarray | None:
    """What the clients asked for, or the answering runs kept (``scores``), or computed."""
    given = answers.probabilities
    if given is not None and np.isfinite(given).all():  # scores come unchecked
        return given
    try:  # the clients did not ask for them: compute them here, off their path
        return champion.runtime.predict(answers.inputs, proba=True).probabilities
    except Exception as e:
        logger.warning("champion %r probabilities failed for the shadow: %s", champion.name, e)
        return None


def _align(champion: ServedModel, challenger: ServedModel, proba: np.ndarray) -> np.ndarray | None:
    """The challenger's probability columns in the champion's class order, if same classes."""
    ours = [str(label) for label in champion.runtime.manifest.labels]
    theirs = [str(label) for label in challenger.runtime.manifest.labels]
    if ours == theirs:
        return proba
    if sorted(ours) != sorted(theirs):
        return None
    return proba[:, [theirs.index(label) for label in ours]]


def start_routing(settings: Settings, registry: ModelRegistry) -> None:
    """Give *registry* the challengers ``settings.shadow`` names, until the routing is written.

    :raises SettingsError: ``settings.shadow`` does not parse.
    """
    plans = parse_shadows(settings.shadow)
    registry.routing.set_initial(Routing(plans))
    if plans:
        registry.refresh()  # the first snapshot may have chosen a challenger: choose again


def shadow_observer(settings: Settings, registry: ModelRegistry, metrics: Any) -> ShadowObserver:
    """The shadow monitor of one process; ``settings.shadow`` names the first challengers.

    :raises SettingsError: ``settings.shadow`` does not parse.
    """
    start_routing(settings, registry)
    return ShadowObserver(registry, settings.state_dir, metrics)
