"""A served worker's request log and shadow challengers, in a process of their own.

In one process, a monitor's bulk work (Arrow columns, the challenger's runs, the
comparison) shares the worker's interpreter with the answers: a request waits while a
monitor's thread holds it, and a thread at a lower priority holds it no shorter. So a
worker of ``flaskserve serve`` keeps only the draws and a queue
(:class:`MonitorProcess`, the :class:`~flaskserve.monitoring.base.Observer`) and sends
each :data:`SEND_SECONDS` of answers, one array per column
(:mod:`.process_wire`), to a child it starts with its first such answer
(:mod:`.process_main`), at a lower CPU priority. The child runs the same monitors a
lone process runs in threads; its files and counters are summed with the workers'.

A stopping worker (SIGTERM, atexit) sends what it holds, closes the pipe and waits
for the child to write everything. A killed worker loses its queue (at most
:data:`SEND_SECONDS` of answers); the child sees the pipe end and writes what it
holds. A child that dies is started again; the answers it did not take are counted
as dropped.
"""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import IO, Any

import numpy as np

from ..runtime.registry import ModelRegistry
from ..settings import Settings
from .base import Observation, reset_after_fork, start_thread, stop_thread
from .process_wire import (
    LOG,
    SHADOW,
    DroppedKey,
    Group,
    Pending,
    encode,
    encode_settings,
    write_frame,
)
from .requestlog import DROP_REASONS

logger = logging.getLogger(__name__)

#: how often the worker sends what queued
SEND_SECONDS = 0.25
#: the most rows the queue holds, as the request log's own queue did
QUEUE_ROWS = 50_000
#: how long a stopping worker waits for its monitor process to write everything
CLOSE_SECONDS = 20.0
#: a monitor process that died is not started again sooner than this after the last start
RESTART_SECONDS = 5.0


class MonitorProcess:
    """The worker's side: draws, queues and sends; see the module.

    :param registry: whose snapshot says which model has a challenger, at what fraction.
    :param metrics: where the worker counts what it drops (``log_dropped``,
        ``shadow_dropped``).
    """

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        metrics: Any,
        *,
        send_seconds: float = SEND_SECONDS,
        queue_rows: int = QUEUE_ROWS,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._metrics = metrics
        self._log = settings.log_dir is not None
        self._log_sample = settings.log_sample
        if self._log:
            for reason in DROP_REASONS:  # every reason is exported from the start, at 0
                metrics.log_dropped.labels(reason)
        self._send_seconds = send_seconds
        self._queue_rows = queue_rows
        self._random = random.Random()
        self._reset()
        reset_after_fork(self._reset)

    def _reset(self) -> None:
        """A new process's state: its parent's queue, thread and child are not its own."""
        self._lock = threading.Lock()
        self._pending = Pending()
        self._dropped: Counter[DroppedKey] = Counter()  # shadow requests, not yet reported
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._started = -RESTART_SECONDS

    def observe(self, observation: Observation) -> None:
        """Draw what *observation* is for, and queue it (or count it dropped)."""
        uses = 0
        if self._log and (self._log_sample >= 1 or self._random.random() < self._log_sample):
            uses = LOG
        found = self._registry.snapshot.challenger(observation.model.name)
        if found is not None and (
            found[1].fraction >= 1 or self._random.random() < found[1].fraction
        ):
            uses |= SHADOW
        if not uses:
            return
        rows = len(observation.inputs)
        with self._lock:
            pending = self._pending
            if pending.rows and pending.rows + rows > self._queue_rows:
                self._drop(observation, uses, found)
                return
            pending.add(observation, uses)
            if self._thread is None:
                self._start()

    def _drop(self, observation: Observation, uses: int, found: Any) -> None:
        if uses & LOG:
            self._metrics.log_dropped.labels("queue_full").inc(len(observation.inputs))
        if uses & SHADOW:
            self._drop_shadow(found, 1)

    def _drop_shadow(self, found: Any, requests: int) -> None:
        """Count *requests* the challenger *found* will not see (under the lock)."""
        challenger, plan = found
        self._metrics.shadow_dropped.labels(challenger.name, str(challenger.version)).inc(requests)
        self._dropped[(challenger.name, challenger.version, plan.started)] += requests

    def _start(self) -> None:
        self._thread = start_thread(self._run, "flaskserve-monitors", self.close)

    def close(self) -> None:
        """Send everything queued, and wait for the monitor process to write it (a stop)."""
        stop_thread(self._thread, self._stop, CLOSE_SECONDS + 1)

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self._send_seconds)
            try:
                self._send_queued()
            except Exception:  # the sender must outlive a bug; its answers are lost
                logger.exception("monitors: sending answers failed")
            if stopping:
                self._end_child()
                return

    def _send_queued(self) -> None:
        with self._lock:
            taken, self._pending = self._pending, Pending()
            dropped, self._dropped = self._dropped, Counter()
        if not taken and not dropped:
            return
        groups = taken.groups()
        if not self._send(encode(groups, dropped)):
            self._count_lost(groups, dropped)

    def _send(self, payload: bytes) -> bool:
        """Write *payload* to the monitor process (started if need be); ``False``: lost."""
        child = self._child if self._child is not None else self._start_child()
        if child is None or child.stdin is None:
            return False
        try:
            write_frame(child.stdin, payload)  # blocks while the child catches up
        except OSError as e:  # it died: start another at the next send
            logger.warning("monitor process %d is gone (%s); starting another", child.pid, e)
            self._child = None
            _reap(child)
            return False
        return True

    def _start_child(self) -> subprocess.Popen[bytes] | None:
        if time.monotonic() - self._started < RESTART_SECONDS:
            return None
        self._started = time.monotonic()
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "flaskserve.monitoring.process_main"],
                stdin=subprocess.PIPE,
                close_fds=True,
            )
            assert child.stdin is not None
            write_frame(child.stdin, encode_settings(self._settings))
        except OSError as e:
            logger.error("monitors: could not start the monitor process: %s", e)
            return None
        self._child = child
        return child

    def _count_lost(self, groups: list[Group], dropped: Counter[DroppedKey]) -> None:
        logged = sum(int(g.answers.sizes[(g.uses & LOG) > 0].sum()) for g in groups)
        if logged:
            self._metrics.log_dropped.labels("write_failed").inc(logged)
        with self._lock:  # reported with the next batch the monitor process takes
            self._dropped.update(dropped)
            for group in groups:
                compared = int(np.count_nonzero(group.uses & SHADOW))
                found = self._registry.snapshot.challenger(group.name) if compared else None
                if found is not None:
                    self._drop_shadow(found, compared)

    def _end_child(self) -> None:
        child = self._child
        if child is None:
            return
        self._child = None
        _close(child.stdin)
        try:
            child.wait(CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            logger.error("monitor process %d did not finish in %.0f s", child.pid, CLOSE_SECONDS)
            child.kill()
            child.wait()


def _close(stream: IO[bytes] | None) -> None:
    if stream is not None:
        try:
            stream.close()
        except OSError:  # the child is gone already
            pass


def _reap(child: subprocess.Popen[bytes]) -> None:
    _close(child.stdin)
    try:
        child.wait(1.0)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
