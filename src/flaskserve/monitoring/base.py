"""What the monitors see of each answer, and the contract they keep."""

from __future__ import annotations

import multiprocessing.util
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from ..runtime.base import Prediction
from ..runtime.registry import ServedModel
from ..schema import Table


# Not frozen, though no monitor changes one: every answer builds one on its request
# thread, and a frozen dataclass's __init__ costs five times a slotted one's.
@dataclass(slots=True)
class Observation:
    """One answered request: the model that answered, its rows and its answer; read only.

    :ivar inputs: the rows as the runtime took them (a float64 matrix or a Table).
    :ivar time: when the answer was sent, in seconds since the epoch.
    """

    model: ServedModel
    inputs: np.ndarray | Table
    prediction: Prediction
    request_id: str
    endpoint: str
    time: float


@dataclass(frozen=True)
class Answers:
    """Answered requests of one model version, column by column: what the monitors'
    bulk work takes, and what a worker sends its monitor process.

    Every request's rows are consecutive; ``probabilities`` and ``scores`` are there
    for every request or for none.
    """

    inputs: np.ndarray | Table
    predictions: np.ndarray
    probabilities: np.ndarray | None
    scores: np.ndarray | None
    sizes: np.ndarray  # rows of each request
    request_ids: tuple[str, ...]
    endpoints: tuple[str, ...]
    times: np.ndarray

    def __len__(self) -> int:
        return len(self.predictions)

    @classmethod
    def of(cls, seen: Sequence[Observation]) -> Answers:
        """*seen* (one model version's, all with probabilities or all without) in columns."""
        first = seen[0].prediction
        count = len(seen)
        return cls(
            inputs=joined_inputs([s.inputs for s in seen]),
            predictions=stacked([s.prediction.predictions for s in seen]),
            probabilities=None
            if first.probabilities is None
            else stacked([s.prediction.probabilities for s in seen]),
            scores=None if first.scores is None else stacked([s.prediction.scores for s in seen]),
            sizes=np.fromiter((len(s.inputs) for s in seen), dtype=np.int64, count=count),
            request_ids=tuple(s.request_id for s in seen),
            endpoints=tuple(s.endpoint for s in seen),
            times=np.fromiter((s.time for s in seen), dtype=np.float64, count=count),
        )

    @classmethod
    def concat(cls, parts: Sequence[Answers]) -> Answers:
        """*parts* (of one model version and kind) as one."""
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        return cls(
            inputs=joined_inputs([p.inputs for p in parts]),
            predictions=stacked([p.predictions for p in parts]),
            probabilities=None
            if first.probabilities is None
            else stacked([p.probabilities for p in parts]),
            scores=None if first.scores is None else stacked([p.scores for p in parts]),
            sizes=stacked([p.sizes for p in parts]),
            request_ids=tuple(r for p in parts for r in p.request_ids),
            endpoints=tuple(e for p in parts for e in p.endpoints),
            times=stacked([p.times for p in parts]),
        )

    def requests(self, chosen: np.ndarray) -> Answers:
        """The requests *chosen* (a boolean per request), with their rows."""
        return self._part(np.flatnonzero(chosen), np.repeat(chosen, self.sizes))

    def head(self, requests: int) -> tuple[Answers, Answers | None]:
        """The first *requests* requests, and the rest (``None`` if none is left)."""
        if requests >= len(self.sizes):
            return self, None
        rows = int(self.sizes[:requests].sum())
        first = self._part(slice(None, requests), slice(None, rows))
        return first, self._part(slice(requests, None), slice(rows, None))

    def _part(self, requests: np.ndarray | slice, rows: np.ndarray | slice) -> Answers:
        """The *requests* (indices, or a slice: views, no step per request) and their *rows*."""
        inputs = self.inputs
        if isinstance(requests, slice):
            request_ids, endpoints = self.request_ids[requests], self.endpoints[requests]
        else:
            request_ids = tuple(self.request_ids[i] for i in requests)
            endpoints = tuple(self.endpoints[i] for i in requests)
        return replace(
            self,
            inputs=inputs.take(rows) if isinstance(inputs, Table) else inputs[rows],
            predictions=self.predictions[rows],
            probabilities=None if self.probabilities is None else self.probabilities[rows],
            scores=None if self.scores is None else self.scores[rows],
            sizes=self.sizes[requests],
            request_ids=request_ids,
            endpoints=endpoints,
            times=self.times[requests],
        )


def joined_inputs(inputs: list[Any]) -> np.ndarray | Table:
    first = inputs[0]
    if len(inputs) == 1:
        return first  # type: ignore[no-any-return]
    if isinstance(first, Table):
        return first.concat(*inputs[1:])
    return np.concatenate(inputs)


def stacked(arrays: list[Any]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def kind_of(observation: Observation) -> tuple[Any, ...]:
    """What answers must share to go in one :class:`Answers` (with their model version)."""
    prediction = observation.prediction
    return (
        type(observation.inputs),
        prediction.predictions.shape[1:],
        prediction.probabilities is None,
        prediction.scores is None,
    )


def runs_of(seen: Sequence[Observation]) -> list[Answers]:
    """*seen* (one model version's) as few :class:`Answers` as their kinds allow."""
    groups: dict[tuple[Any, ...], list[Observation]] = {}
    for observation in seen:
        groups.setdefault(kind_of(observation), []).append(observation)
    return [Answers.of(group) for group in groups.values()]


class Observer(Protocol):
    """Told of every answered prediction, after its status is known.

    :meth:`observe` runs on the request's thread, so it only hands the observation
    over (to a queue, a counter) and returns: the work happens off the request path.
    It never raises and never blocks; what it cannot keep up with, it drops and counts.
    """

    def observe(self, observation: Observation) -> None: ...


#: the monitors' exit hooks run before the metrics' final flush (``exitpriority`` 0)
EXIT_PRIORITY = 10


def reset_after_fork(reset: Callable[[], None]) -> None:
    """Call the bound method *reset* in every forked child: its object's thread and queues
    are the parent's. The hook does not keep the object alive."""
    forget = weakref.WeakMethod(reset)
    os.register_at_fork(after_in_child=lambda: call_alive(forget))


def start_thread(run: Callable[[], None], name: str, close: Callable[[], None]) -> threading.Thread:
    """Start *run* as a daemon thread, and call the bound method *close* at exit, so that a
    stopping worker finishes that thread's work first.

    The exit hook is multiprocessing's: it runs at a process's exit (through atexit) and
    also at the end of a multiprocessing child, which granian's workers are: they end with
    ``os._exit``, which skips atexit. It runs before the metrics' final flush (priority 0).
    """
    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    closing = weakref.WeakMethod(close)
    multiprocessing.util.Finalize(None, lambda: call_alive(closing), exitpriority=EXIT_PRIORITY)
    return thread


def stop_thread(thread: threading.Thread | None, stop: threading.Event, timeout: float) -> None:
    """Tell *thread* to finish (*stop*) and wait for it, unless it is the caller."""
    stop.set()
    if thread is not None and thread is not threading.current_thread():
        thread.join(timeout)


def call_alive(method: weakref.WeakMethod[Any]) -> None:
    """Call *method* if its object still lives (fork and exit hooks must not keep it)."""
    bound = method()
    if bound is not None:
        bound()
