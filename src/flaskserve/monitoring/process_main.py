"""A worker's monitor process: the request log and shadow challengers, beside the worker.

Started by :class:`~flaskserve.monitoring.process.MonitorProcess` as
``python -m flaskserve.monitoring.process_main`` with a pipe on its standard input: the
first frame is the worker's :class:`~flaskserve.settings.Settings`, each later one a
:class:`~flaskserve.monitoring.process_wire.Batch`. It loads the model repository as
a worker does (the challenger scores here, and each answer is told of its model
version), hands every answer to the same monitors a lone process runs in its threads,
and writes what they hold when the pipe ends: when the worker stops, or is killed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import time
from typing import IO, Any

from ..errors import FlaskServeError
from ..metrics import Metrics
from ..runtime.registry import ModelRegistry, ServedModel
from ..settings import Settings
from .process_wire import LOG, SHADOW, Batch, Group, decode, decode_settings, read_frame
from .requestlog import RequestLog
from .shadow import ShadowObserver, shadow_observer

logger = logging.getLogger("flaskserve.monitoring.process")

#: how long the last shadow batches may take to score once the worker is gone
CLOSE_SECONDS = 10.0
#: an answer of a version or challenger this process has not loaded reads the repository
#: again, at most this often (between its regular refreshes)
CATCH_UP_SECONDS = 1.0


class Monitors:
    """The log and the shadow of one monitor process, fed batch by batch."""

    def __init__(self, settings: Settings) -> None:
        self._metrics = Metrics()
        self._registry = ModelRegistry(settings.model_dir, **settings.registry_options())
        self._registry.refresh()
        self._shadow: ShadowObserver = shadow_observer(settings, self._registry, self._metrics)
        self._log: RequestLog | None = None
        if settings.log_dir is not None:  # the worker drew the sample: keep all it sends
            self._log = RequestLog(dataclasses.replace(settings, log_sample=1.0), self._metrics)
        self._registry.start_watching(settings.poll_seconds)  # load/unload, promote, stop
        self._caught_up = time.monotonic()

    def take(self, batch: Batch) -> None:
        """Tell the monitors of every answer in *batch*."""
        for key, requests in batch.shadow_dropped.items():
            self._shadow.add_dropped(key, requests)
        for group in batch.groups:
            model = self._model(group)
            if model is None:
                continue
            logged = group.chosen(LOG)
            if logged is not None and self._log is not None:
                self._log.take(model, logged)
            compared = group.chosen(SHADOW)
            if compared is not None:
                if self._registry.snapshot.challenger(model.name) is None:
                    self._catch_up()  # started by the admin API since this process last looked
                self._shadow.take(model, compared)

    def _model(self, group: Group) -> ServedModel | None:
        """The version that answered *group*, as this process loaded it; ``None``: lost."""
        for attempt in range(2):
            try:
                return self._registry.snapshot.get(group.name, group.version)
            except FlaskServeError as e:
                if attempt == 0 and self._catch_up():  # loaded since this process last looked
                    continue
                self._lost(group, str(e))
                return None
        return None

    def _catch_up(self) -> bool:
        """Read the repository and routing again, at most once a second; whether it did."""
        if time.monotonic() - self._caught_up < CATCH_UP_SECONDS:
            return False
        self._registry.refresh()
        self._caught_up = time.monotonic()
        return True

    def _lost(self, group: Group, why: str) -> None:
        logged = group.chosen(LOG)
        if logged is not None and self._log is not None:
            self._metrics.log_dropped.labels("write_failed").inc(len(logged))
        logger.warning(
            "monitor process: %d rows of %r version %s not monitored: %s",
            len(group.answers),
            group.name,
            group.version,
            why,
        )

    def close(self) -> None:
        """Write everything held: the log's open files, the shadow's last tallies."""
        if self._log is not None:
            self._log.close()
        self._shadow.wait_idle(CLOSE_SECONDS)
        self._shadow.save()


def run(stream: IO[bytes]) -> None:
    """Serve the batches of *stream* until it ends (see the module)."""
    first = read_frame(stream)
    if first is None:
        return
    settings = decode_settings(first)
    _lower_priority(settings.monitor_nice)
    monitors = Monitors(settings)
    try:
        while (payload := read_frame(stream)) is not None:
            try:
                monitors.take(decode(payload))
            except Exception:  # one bad batch must not end the monitoring
                logger.exception("monitor process: a batch failed")
    finally:
        monitors.close()


def _lower_priority(nice: int) -> None:
    """Let the answers' processes come first when the CPUs are busy (docs/monitoring.md)."""
    if nice:
        try:
            os.nice(nice)
        except OSError as e:
            logger.warning("monitor process: could not lower its priority: %s", e)


def main(argv: Any = None) -> None:
    # A terminal's Ctrl-C, or a stop sent to the whole process group (systemd's default),
    # reaches this process too: it ends when its worker closes the pipe, once the worker
    # has sent its last answers, or is gone.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    # warnings only: the models' loading is the worker's to report
    logging.basicConfig(
        level=logging.WARNING, format="[%(process)d] [%(levelname)s] %(name)s: %(message)s"
    )
    run(sys.stdin.buffer)


if __name__ == "__main__":
    main()
