"""Watching a model in production, in the serving process: input drift against the
training data, a request log for the next training run, and shadow challengers.

Each monitor is an :class:`~flaskserve.monitoring.base.Observer` the observing
middleware tells of every answered prediction; its work runs off the request path.
"""

from __future__ import annotations

import sys
from typing import Any

from ..settings import Settings
from .base import Observation, Observer
from .shadow import shadow_observer, start_routing

__all__ = ["Observation", "Observer", "build_observers"]

SWITCH_INTERVAL = 0.001


def build_observers(settings: Settings, registry: Any, metrics: Any) -> tuple[Observer, ...]:
    """The monitors *settings* turn on, for one app."""
    observers: list[Observer] = []
    if settings.drift:
        from .drift import DriftMonitor

        observers.append(DriftMonitor(settings, registry, metrics))
    if settings.log_dir is not None:
        from .requestlog_files import require_pyarrow

        require_pyarrow()  # the server stops before any worker starts, with the extra to install
    if in_own_process(settings, metrics):
        from .process import MonitorProcess

        start_routing(settings, registry)
        observers.append(MonitorProcess(settings, registry, metrics))  # admin API may start one
        return _tuned(observers)
    observers.append(shadow_observer(settings, registry, metrics))  # admin API may start one
    if settings.log_dir is not None:
        from .requestlog import RequestLog  # pyarrow, only when the log is on

        observers.append(RequestLog(settings, metrics))
    return _tuned(observers)


def in_own_process(settings: Settings, metrics: Any) -> bool:
    """Whether the log and shadows run in a monitor process beside each worker.

    They do under ``flaskserve serve``, whose workers share a state directory and sum
    their metrics: what the monitor process writes there counts as its worker's. A
    process alone (the development server, a test client) runs them in its threads.
    """
    return settings.state_dir is not None and bool(metrics.multiprocess)


def _tuned(observers: list[Observer]) -> tuple[Observer, ...]:
    # The monitors' threads in a worker do their bulk work in Python, holding the interpreter
    # for up to the switch interval (5 ms by default) each time a request thread wants it
    # back: a shorter one keeps their work off the answers' tail (docs/monitoring.md,
    # "Where the monitors run").
    sys.setswitchinterval(SWITCH_INTERVAL)
    return tuple(observers)
