"""What a worker sends its monitor process: a cycle's answers, one array per column.

Answers of one model version (and of one kind: the same input type, probabilities
given or not) travel as one group: their rows concatenated, and per request its row
count, what it is for (:data:`LOG`, :data:`SHADOW`), its request id, endpoint and time.
A group's columns cost the worker a fraction of what pickling each answer on its own
(a few small arrays each) did: docs/monitoring.md, "Where the monitors run".

The first frame is the worker's settings, as JSON. The others are pickles read by an
unpickler that refuses every class but a batch's own and NumPy's array parts
(:data:`FRAME_CLASSES`), so even a frame that was not the worker's could name no code
to run. Nothing read from a model artifact travels this way.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..settings import Settings
from .base import Answers, Observation, joined_inputs, kind_of, stacked

#: an answer for the request log
LOG = 1
#: an answer for the model's shadow challenger
SHADOW = 2

_LENGTH = struct.Struct("<Q")

#: a shadow tally's key: challenger name, version and when its plan started
DroppedKey = tuple[str, int, float]


@dataclass
class Group:
    """Answers of one model version and kind (see the module), and what each is for."""

    name: str
    version: int
    uses: np.ndarray  # LOG | SHADOW, per request
    answers: Answers

    def chosen(self, use: int) -> Answers | None:
        """The answers sent for *use*; ``None``: none."""
        wanted = (self.uses & use).astype(bool)
        if wanted.all():
            return self.answers
        return self.answers.requests(wanted) if wanted.any() else None


@dataclass
class Batch:
    """One frame: the groups, and the shadow requests the worker could not queue."""

    groups: list[Group] = field(default_factory=list)
    shadow_dropped: dict[DroppedKey, int] = field(default_factory=dict)


class Pending:
    """Answers waiting for the monitor process, already in columns: for each model version
    and kind, a list per column, appended to on the request thread (:meth:`add`, a few
    appends), so that building the frame takes no Python step per answer and holds the
    interpreter for moments only (docs/monitoring.md, "Where the monitors run").

    Not locked: its owner adds and takes under a lock of its own.
    """

    def __init__(self) -> None:
        self._columns: dict[tuple[Any, ...], _Columns] = {}
        self.rows = 0

    @classmethod
    def of(cls, answers: Sequence[tuple[Observation, int]]) -> Pending:
        """*answers*, each with its uses, queued at once."""
        pending = cls()
        for seen, uses in answers:
            pending.add(seen, uses)
        return pending

    def __bool__(self) -> bool:
        return bool(self._columns)

    def add(self, seen: Observation, uses: int) -> None:
        """Queue *seen* for *uses* (:data:`LOG`, :data:`SHADOW`)."""
        key = (id(seen.model), *kind_of(seen))  # the object that answered: kept alive below
        columns = self._columns.get(key)
        if columns is None:
            columns = self._columns[key] = _Columns(seen)
        columns.add(seen, uses)
        self.rows += len(seen.inputs)

    def groups(self) -> list[Group]:
        return [columns.group() for columns in self._columns.values()]


class _Columns:
    """One model version's and kind's answers, a list per column."""

    def __init__(self, first: Observation) -> None:
        self.model = first.model
        self.inputs: list[Any] = []
        self.predictions: list[np.ndarray] = []
        self.probabilities: list[np.ndarray] | None = (
            None if first.prediction.probabilities is None else []
        )
        self.scores: list[np.ndarray] | None = None if first.prediction.scores is None else []
        self.request_ids: list[str] = []
        self.endpoints: list[str] = []
        self.times: list[float] = []
        self.uses: list[int] = []

    def add(self, seen: Observation, uses: int) -> None:
        prediction = seen.prediction
        self.inputs.append(seen.inputs)
        self.predictions.append(prediction.predictions)
        if self.probabilities is not None:
            self.probabilities.append(prediction.probabilities)  # type: ignore[arg-type]
        if self.scores is not None:
            self.scores.append(prediction.scores)  # type: ignore[arg-type]
        self.request_ids.append(seen.request_id)
        self.endpoints.append(seen.endpoint)
        self.times.append(seen.time)
        self.uses.append(uses)

    def group(self) -> Group:
        answers = Answers(
            inputs=joined_inputs(self.inputs),
            predictions=stacked(self.predictions),
            probabilities=None if self.probabilities is None else stacked(self.probabilities),
            scores=None if self.scores is None else stacked(self.scores),
            sizes=np.fromiter(map(len, self.inputs), dtype=np.int64, count=len(self.inputs)),
            request_ids=tuple(self.request_ids),
            endpoints=tuple(self.endpoints),
            times=np.array(self.times, dtype=np.float64),
        )
        uses = np.array(self.uses, dtype=np.uint8)
        return Group(self.model.name, self.model.version, uses, answers)


def encode(groups: list[Group], shadow_dropped: dict[DroppedKey, int]) -> bytes:
    """A frame's payload: the answers' *groups* (:meth:`Pending.groups`) and the drops to
    report."""
    return pickle.dumps(Batch(groups, dict(shadow_dropped)), protocol=5)


#: what a frame may name: a batch's own classes and what NumPy pickles an array with
FRAME_CLASSES = frozenset(
    {
        ("flaskserve.monitoring.process_wire", "Batch"),
        ("flaskserve.monitoring.process_wire", "Group"),
        ("flaskserve.monitoring.base", "Answers"),
        ("flaskserve.schema", "Table"),
        ("flaskserve.artifact", "Feature"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.numeric", "_frombuffer"),
    }
)


class _FrameUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in FRAME_CLASSES:
            raise pickle.UnpicklingError(f"a monitoring frame may not name {module}.{name}")
        return super().find_class(module, name)


def decode(payload: bytes) -> Batch:
    """The :class:`Batch` :func:`encode` made.

    :raises pickle.UnpicklingError: the frame names a class outside :data:`FRAME_CLASSES`.
    """
    batch = _FrameUnpickler(io.BytesIO(payload)).load()
    if not isinstance(batch, Batch):
        raise TypeError(f"expected a Batch, got {type(batch).__name__}")
    return batch


def encode_settings(settings: Settings) -> bytes:
    """*settings* as the first frame: JSON, every field a string, number, boolean or null."""
    fields = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    return json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in fields.items()}).encode()


def decode_settings(payload: bytes) -> Settings:
    """The :class:`Settings` :func:`encode_settings` wrote (paths come back as paths)."""
    return Settings(**json.loads(payload))


def write_frame(stream: IO[bytes], payload: bytes) -> None:
    """Write one length-prefixed frame and flush it."""
    stream.write(_LENGTH.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame's payload; ``None`` at the end of the stream (its writer is gone)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    payload = stream.read(length)
    return payload if len(payload) == length else None
