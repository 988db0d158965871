"""Watching a model in production, in the serving process: input drift against the
training data, a request log for the next training run, and shadow challengers.

Each monitor is an :class:`~flaskserve.monitoring.base.Observer` the observing
middleware tells of every answered prediction; its work runs off the request path.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ..settings import Settings
from .base import Observation, Observer
from .shadow import shadow_observer

__all__ = ["Observation", "Observer", "build_observers", "wants_probabilities"]

SWITCH_INTERVAL = 0.001


def build_observers(settings: Settings, registry: Any, metrics: Any) -> tuple[Observer, ...]:
    """The monitors *settings* turn on, for one app."""
    observers: list[Observer] = []
    if settings.drift:
        from .drift import DriftMonitor

        observers.append(DriftMonitor(settings, registry, metrics))
    observers.append(shadow_observer(settings, registry, metrics))  # admin API may start one
    if settings.log_dir is not None:
        from .requestlog import RequestLog  # pyarrow, only when the log is on

        observers.append(RequestLog(settings, metrics))
    # The monitors' threads do their bulk work in Python, holding the interpreter for up to
    # the switch interval (5 ms by default) each time a request thread wants it back: a
    # shorter interval keeps their work off the answers' tail (docs/monitoring.md#cost).
    sys.setswitchinterval(SWITCH_INTERVAL)
    return tuple(observers)


def wants_probabilities(observers: tuple[Observer, ...]) -> Callable[[Any], bool]:
    """Whether any of *observers* wants a served model's probabilities with each answer."""
    asking: list[Callable[[Any], bool]] = [
        o.wants_probabilities for o in observers if hasattr(o, "wants_probabilities")
    ]
    if len(asking) == 1:  # the shadow: the one monitor that compares probabilities
        return asking[0]
    return lambda model: any(ask(model) for ask in asking)
