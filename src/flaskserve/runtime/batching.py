"""Adaptive batching: concurrent requests in one process share one ``predict`` call.

scikit-learn's per-call cost dominates small requests (20-45 ms for the
tutorial forest, whether it sees 1 row or 50), so under gunicorn's threaded
workers the rows of requests that arrive together are stacked into one call
and the answers split back, each caller getting exactly its own rows. A batch
is whatever queued while the previous one ran, up to ``max_rows``. Under
concurrency (the previous batch held more than one request) a batch also waits
up to ``max_wait_ms`` for company: the clients whose answers just went out
are about to send again, and waiting for them turns two half batches into one
full one. The wait ends early once the batch holds as many requests as the
largest of the last few batches: its usual company is all there. A request
that arrives alone runs at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..artifact import ModelManifest
from ..schema import Table
from .base import Prediction, Runtime

_REMEMBERED_BATCHES = 8


@dataclass
class _Pending:
    rows: np.ndarray | Table
    proba: bool
    done: threading.Event = field(default_factory=threading.Event)
    result: Prediction | None = None
    error: BaseException | None = None


class BatchingRuntime:
    """Wraps a runtime; :meth:`predict` is safe to call from many threads.

    :param max_rows: the most rows one inner call receives; larger requests run alone.
    :param max_wait_ms: how long a batch waits for more requests before it runs.
    """

    def __init__(self, inner: Runtime, *, max_rows: int = 256, max_wait_ms: float = 1.0) -> None:
        self._inner = inner
        self._max_rows = max_rows
        self._max_wait = max_wait_ms / 1000
        self._queue: deque[_Pending] = deque()
        self._ready = threading.Condition()
        self._worker_pid: int | None = None
        # sizes of the latest batches: the largest is the company a new batch expects
        self._recent_sizes: deque[int] = deque([0], maxlen=_REMEMBERED_BATCHES)

    @property
    def kind(self) -> str:
        return self._inner.kind

    @property
    def manifest(self) -> ModelManifest:
        return self._inner.manifest

    def predict(self, rows: np.ndarray | Table, *, proba: bool = False) -> Prediction:
        if len(rows) >= self._max_rows:
            return self._inner.predict(rows, proba=proba)
        pending = _Pending(rows, proba)
        with self._ready:
            self._start_worker()
            self._queue.append(pending)
            self._ready.notify()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _start_worker(self) -> None:
        # a thread does not survive fork: each gunicorn worker starts its own
        if self._worker_pid != os.getpid():
            self._worker_pid = os.getpid()
            threading.Thread(target=self._run, name="flaskserve-batching", daemon=True).start()

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            try:
                self._predict_batch(batch)
            except BaseException as e:  # the batch failed: give each request its own answer
                self._predict_alone(batch, e)

    def _take_batch(self) -> list[_Pending]:
        with self._ready:
            while not self._queue:
                self._ready.wait()
            # alone, a request runs at once; under concurrency the next batch waits for the
            # company recent batches had, and no longer than max_wait
            expected = max(self._recent_sizes)
            deadline = time.monotonic() + (self._max_wait if expected > 1 else 0.0)
            batch, rows = [], 0
            while True:
                while self._queue and rows + len(self._queue[0].rows) <= self._max_rows:
                    rows += len(self._queue[0].rows)
                    batch.append(self._queue.popleft())
                remaining = deadline - time.monotonic()
                full = rows >= self._max_rows or len(batch) >= expected or bool(self._queue)
                if not batch or full or remaining <= 0:
                    batch = batch or [self._queue.popleft()]
                    self._recent_sizes.append(len(batch))
                    return batch
                self._ready.wait(remaining)

    def _predict_batch(self, batch: list[_Pending]) -> None:
        if len(batch) == 1:
            item = batch[0]
            item.result = self._inner.predict(item.rows, proba=item.proba)
            item.done.set()
            return
        proba = any(item.proba for item in batch)
        joined = self._inner.predict(_joined([item.rows for item in batch]), proba=proba)
        start = 0
        for item in batch:
            end = start + len(item.rows)
            probabilities = (
                joined.probabilities[start:end]
                if item.proba and joined.probabilities is not None
                else None
            )
            item.result = Prediction(joined.predictions[start:end], probabilities)
            start = end
            item.done.set()

    def _predict_alone(self, batch: list[_Pending], error: BaseException) -> None:
        for item in batch:
            if item.done.is_set():
                continue
            if len(batch) == 1:
                item.error = error
            else:
                try:
                    item.result = self._inner.predict(item.rows, proba=item.proba)
                except BaseException as e:  # handed to the caller's thread, which raises it
                    item.error = e
            item.done.set()


def _joined(parts: list[np.ndarray | Table]) -> np.ndarray | Table:
    """The calls' rows as one batch: a matrix stacked, or typed columns concatenated."""
    first = parts[0]
    if isinstance(first, Table):
        return first.concat(*parts[1:])  # type: ignore[arg-type]
    return np.concatenate(parts)  # type: ignore[arg-type]
