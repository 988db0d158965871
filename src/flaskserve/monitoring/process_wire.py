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
from .base import Answers, Observation, in_slices, kind_of

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


def encode(
    answers: Sequence[tuple[Observation, int]], shadow_dropped: dict[DroppedKey, int]
) -> bytes:
    """A frame's payload: *answers* (each with its uses) grouped, and the drops to report."""
    parts: dict[tuple[Any, ...], list[Group]] = {}
    for some in in_slices(answers):  # the request threads get the interpreter between slices
        grouped: dict[tuple[Any, ...], list[tuple[Observation, int]]] = {}
        for seen, uses in some:
            grouped.setdefault((id(seen.model), *kind_of(seen)), []).append((seen, uses))
        for key, members in grouped.items():
            parts.setdefault(key, []).append(_group(members))
    batch = Batch([_merged(groups) for groups in parts.values()], dict(shadow_dropped))
    return pickle.dumps(batch, protocol=5)


def _group(members: list[tuple[Observation, int]]) -> Group:
    seen = [m[0] for m in members]
    uses = np.fromiter((m[1] for m in members), dtype=np.uint8, count=len(members))
    return Group(seen[0].model.name, seen[0].model.version, uses, Answers.of(seen))


def _merged(groups: list[Group]) -> Group:
    """One version's groups, built a slice at a time, as one."""
    if len(groups) == 1:
        return groups[0]
    first, uses = groups[0], np.concatenate([g.uses for g in groups])
    return Group(first.name, first.version, uses, Answers.concat([g.answers for g in groups]))


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
