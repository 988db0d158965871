"""What the monitors see of each answer, and the contract they keep."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..runtime.base import Prediction
from ..runtime.registry import ServedModel
from ..schema import Table


@dataclass(frozen=True)
class Observation:
    """One answered request: the model that answered, its rows and its answer.

    :ivar inputs: the rows as the runtime took them (a float64 matrix or a Table).
    :ivar time: when the answer was sent, in seconds since the epoch.
    """

    model: ServedModel
    inputs: np.ndarray | Table
    prediction: Prediction
    request_id: str
    endpoint: str
    time: float


class Observer(Protocol):
    """Told of every answered prediction, after its status is known.

    :meth:`observe` runs on the request's thread, so it only hands the observation
    over (to a queue, a counter) and returns: the work happens off the request path.
    It never raises and never blocks; what it cannot keep up with, it drops and counts.
    """

    def observe(self, observation: Observation) -> None: ...


def call_alive(method: weakref.WeakMethod[Any]) -> None:
    """Call *method* if its object still lives (fork and exit hooks must not keep it)."""
    bound = method()
    if bound is not None:
        bound()
