"""The request log: a sample of answered requests, as Parquet files for the next training run.

:meth:`RequestLog.observe` runs on the request's thread: it draws the sample (per
request) and appends the observation to a bounded queue, nothing more. A thread per
worker, started with the first sampled answer (after gunicorn's fork), takes the queue
every :data:`POLL_SECONDS`, keeps each model version's rows until its file rolls
(``log_roll_rows`` rows, or ``log_roll_seconds`` after its first row), and writes the
file whole (:mod:`.requestlog_files`). Rows it cannot keep, because the queue is full or
a write failed, are dropped and counted in ``flaskserve_log_dropped_total{reason}``.

Under ``flaskserve serve`` the log runs in each worker's monitor process
(:mod:`.process`), which hands it a worker's answers in columns (:meth:`RequestLog.take`,
already sampled); a process alone uses :meth:`RequestLog.observe`.

What the process that holds the log loses when it is killed (SIGKILL, the OOM killer)
is what it had not written yet: the rows of its open files (fewer than
``log_roll_rows`` per model version, at most ``log_roll_seconds`` old) and its queue (at
most :data:`QUEUE_ROWS` rows, in practice :data:`POLL_SECONDS` of traffic). A graceful
stop (SIGTERM) writes everything first.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runtime.registry import ServedModel
from ..settings import Settings
from .base import Answers, Observation, reset_after_fork, runs_of, start_thread, stop_thread
from .requestlog_files import (
    file_name,
    joined,
    log_schema,
    no_space,
    prune,
    require_pyarrow,
    to_table,
    write_file,
)

logger = logging.getLogger(__name__)

#: how often the writer takes the queue; also the longest a stop waits for it
POLL_SECONDS = 0.25
#: the most rows the queue holds (a request larger than that is still taken alone)
QUEUE_ROWS = 50_000
#: ``flaskserve_log_dropped_total``'s reasons: the queue was full; the disk was full; the
#: write failed otherwise; the answer had several outputs a row, which the log cannot hold
DROP_REASONS = ("queue_full", "disk_full", "write_failed", "unsupported")
#: how long a stopping worker waits for its last files
CLOSE_SECONDS = 20.0


#: what the writer takes: an answer told on the request thread, or a monitor process's
#: answers of one model version
_Item = Observation | tuple[ServedModel, Answers]


def _in_columns(items: list[_Item]) -> list[tuple[ServedModel, Answers]]:
    """*items* (of one model version) as answers in columns, their order kept per kind."""
    told = [item for item in items if isinstance(item, Observation)]
    columns = [item for item in items if not isinstance(item, Observation)]
    if told:
        columns += [(told[0].model, answers) for answers in runs_of(told)]
    return columns


@dataclass
class _OpenFile:
    """The rows of one model version not written yet."""

    schema: Any
    started: float  # time.monotonic() of the first row
    first_time: float  # its Observation.time, which names the file
    #: Arrow tables, one a writer cycle: converting ~0.25 s of answers at a time keeps
    #: each pause of the request threads short, where a whole file's took ~30 ms
    chunks: list[Any] = field(default_factory=list)
    rows: int = 0


class RequestLog:
    """The request-log :class:`~flaskserve.monitoring.base.Observer` of one app.

    :param metrics: where ``flaskserve_log_dropped_total`` is counted (``log_dropped``).
    :param queue_rows: the queue's bound, in rows.
    :param poll_seconds: how often the writer thread takes the queue.
    :raises SettingsError: pyarrow is missing (the message names the extra to install).
    """

    _queue: deque[_Item]

    def __init__(
        self,
        settings: Settings,
        metrics: Any,
        *,
        queue_rows: int = QUEUE_ROWS,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        require_pyarrow()
        # pyarrow imports pandas on its first write; were that the last write, at shutdown,
        # pandas' import of concurrent.futures would fail ("can't register atexit after
        # shutdown") and the rows a stopping worker holds would be lost. pyarrow.compute
        # (its first cast) is imported now too: with the app, not in a request's time, and
        # frozen with the worker's loaded heap (serving/heap.py)
        import pandas  # noqa: F401
        import pyarrow.compute  # noqa: F401

        assert settings.log_dir is not None
        self.root: Path = settings.log_dir
        self._settings = settings
        self._dropped_counter = metrics.log_dropped
        for reason in DROP_REASONS:  # every reason is exported from the start, at 0
            self._dropped_counter.labels(reason)
        self._queue_rows = queue_rows
        self._poll_seconds = poll_seconds
        self._sample = settings.log_sample
        self._reset()
        reset_after_fork(self._reset)

    def _reset(self) -> None:
        """A new process's state: no queue, no thread (a thread does not survive a fork)."""
        self._lock = threading.Lock()
        self._queue = deque()
        self._queued_rows = 0
        self._dropped: Counter[str] = Counter()  # since the writer last counted them
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._open: dict[tuple[str, int], _OpenFile] = {}
        self._sequence = 0

    def observe(self, observation: Observation) -> None:
        """Queue a sampled answer for the writer; drop it (counted) when the queue is full."""
        if self._sample < 1.0 and random.random() >= self._sample:
            return
        self._queue_item(observation, len(observation.inputs))

    def take(self, model: ServedModel, answers: Answers) -> None:
        """Queue *answers* of *model* (a monitor process's, already sampled by its worker)."""
        self._queue_item((model, answers), len(answers))

    def _queue_item(self, item: _Item, rows: int) -> None:
        with self._lock:
            if self._queued_rows and self._queued_rows + rows > self._queue_rows:
                self._dropped["queue_full"] += rows
                return
            self._queue.append(item)
            self._queued_rows += rows
            if self._thread is None:
                self._start()

    def _start(self) -> None:
        self._thread = start_thread(self._run, "flaskserve-requestlog", self.close)

    def close(self) -> None:
        """Write every row taken so far and stop the writer (a graceful stop)."""
        stop_thread(self._thread, self._stop, CLOSE_SECONDS)

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self._poll_seconds)
            try:
                self._cycle(final=stopping)
            except Exception:  # the writer must outlive a bug: its rows are counted as dropped
                logger.exception("request log: writing failed")
            if stopping:
                return

    def _cycle(self, *, final: bool) -> None:
        with self._lock:
            taken, self._queue = self._queue, deque()
            self._queued_rows = 0
            dropped, self._dropped = self._dropped, Counter()
        pending: dict[tuple[str, int], list[_Item]] = {}
        for item in taken:
            key = self._keep(item)
            if key is None:
                continue
            pending.setdefault(key, []).append(item)
            if self._open[key].rows >= self._settings.log_roll_rows:  # a long queue: several files
                self._convert(key, pending.pop(key))
                self._write(key)
        for key, items in pending.items():
            self._convert(key, items)
        now = time.monotonic()
        for key, open_file in list(self._open.items()):
            if final or now - open_file.started >= self._settings.log_roll_seconds:
                self._write(key)
        for reason, rows in dropped.items():
            self._count_dropped(reason, rows)

    def _count_dropped(self, reason: str, rows: int) -> None:
        self._dropped_counter.labels(reason).inc(rows)

    def _keep(self, item: _Item) -> tuple[str, int] | None:
        """Count *item* into its model version's open file; ``None``: it cannot be."""
        if isinstance(item, Observation):
            model, rows = item.model, len(item.inputs)
            shape, first_time = item.prediction.predictions.shape, item.time
        else:
            model, answers = item
            rows, shape, first_time = len(answers), answers.predictions.shape, answers.times[0]
        if shape != (rows,):  # several outputs a row
            self._count_dropped("unsupported", rows)
            return None
        key = (model.name, model.version)
        if key not in self._open:
            self._open[key] = _OpenFile(log_schema(model), time.monotonic(), float(first_time))
        self._open[key].rows += rows
        return key

    def _convert(self, key: tuple[str, int], items: list[_Item]) -> None:
        open_file = self._open[key]
        for model, answers in _in_columns(items):
            try:
                open_file.chunks.append(to_table(open_file.schema, model, answers))
            except Exception as e:  # a bad row: these rows are lost, and counted
                open_file.rows -= len(answers)
                self._count_dropped("write_failed", len(answers))
                logger.warning("request log: %d rows dropped: %s", len(answers), e)

    def _write(self, key: tuple[str, int]) -> None:
        open_file = self._open.pop(key)
        if not open_file.chunks:
            return
        self._sequence += 1
        target = self.root / key[0] / file_name(open_file.first_time, self._sequence)
        try:
            write_file(joined(open_file.chunks), target)
        except Exception as e:  # a full disk, a bad row: the file's rows are lost, and counted
            reason = "disk_full" if no_space(e) else "write_failed"
            self._count_dropped(reason, open_file.rows)
            logger.warning("request log: %d rows dropped (%s): %s", open_file.rows, reason, e)
            return
        try:
            prune(self.root, self._settings.log_max_bytes)
        except OSError as e:
            logger.warning("request log: could not remove old files: %s", e)
