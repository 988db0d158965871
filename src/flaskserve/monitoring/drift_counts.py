"""Served cells counted per bin, per model version, since start and in time slots, and
summed over the server's worker processes.

Each process keeps its own counts in memory and, where the server shares a state
directory (``flaskserve serve`` makes one), writes them to its own file there,
``drift/<server pid>-<pid>.json``, replaced whole (written beside it, renamed into
place): a reader never sees half a file and never takes a lock another process
holds. A reader sums its own counts and every other file of the same server
(the same parent process), so a scrape that lands on any worker sees them all,
as prometheus_client's multiprocess files do; a worker that exited still counts.

The recent window is :data:`SLOTS` slots of ``window / SLOTS`` seconds each: the
window reported is the last ``SLOTS`` slots, the current one included, so it
spans between ``window - window / SLOTS`` and ``window`` seconds.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: the slots the recent window is cut into
SLOTS = 30
DIRECTORY = "drift"

Key = tuple[str, int]  # a model's name and version


@dataclass
class Tally:
    """Rows counted, and each feature's count per bin."""

    rows: int = 0
    counts: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, rows: int, counts: dict[str, np.ndarray]) -> None:
        self.rows += rows
        for name, more in counts.items():
            have = self.counts.get(name)
            if have is None or have.shape != more.shape:  # a replaced artifact's new bins
                self.counts[name] = more.copy()
            else:
                have += more

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "counts": {k: v.tolist() for k, v in self.counts.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tally:
        counts = {k: np.asarray(v, dtype=np.int64) for k, v in data["counts"].items()}
        return cls(int(data["rows"]), counts)


@dataclass
class Summary:
    """One model version's counts over every worker: since start, and in the recent window."""

    total: Tally
    window: Tally
    workers: int
    dropped: int


class CountStore:
    """This process's counts, and the way to the other workers' (see the module's text).

    :param slot_seconds: the width of one slot of the recent window.
    :param directory: the server's shared state directory; ``None``: this process only.
    """

    def __init__(self, slot_seconds: float, directory: Path | None) -> None:
        self.slot_seconds = slot_seconds
        self._directory = directory / DIRECTORY if directory is not None else None
        self._lock = threading.Lock()
        self._total: dict[Key, Tally] = {}
        self._slots: dict[Key, dict[int, Tally]] = {}
        self.dropped = 0

    def slot_of(self, when: float) -> int:
        return int(when // self.slot_seconds)

    def add(self, key: Key, slot: int, rows: int, counts: dict[str, np.ndarray]) -> None:
        """Count *rows* answered in *slot*, and their *counts* per feature."""
        with self._lock:
            self._total.setdefault(key, Tally()).add(rows, counts)
            slots = self._slots.setdefault(key, {})
            slots.setdefault(slot, Tally()).add(rows, counts)
            for old in [s for s in slots if s <= slot - SLOTS]:
                del slots[old]

    def write(self) -> None:
        """Replace this process's file with its counts (nothing without a directory)."""
        if self._directory is None:
            return
        with self._lock:
            text = json.dumps(self._snapshot())
        path = self._directory / _file_name(os.getpid())
        partial = path.with_suffix(".part")
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            partial.write_text(text, encoding="utf-8")
            os.replace(partial, path)
        except OSError as e:  # a full disk stops the sharing, never the serving
            logger.warning("drift counts not shared: %s", e)

    def _snapshot(self) -> dict[str, Any]:
        return {
            "dropped": self.dropped,
            "models": [
                {
                    "model": name,
                    "version": version,
                    "total": tally.to_json(),
                    "slots": {str(s): t.to_json() for s, t in self._slots.get(key, {}).items()},
                }
                for key in list(self._total)
                for name, version in [key]
                for tally in [self._total[key]]
            ],
        }

    def summary(self, key: Key, now: float) -> Summary:
        """*key*'s counts over this process and every other worker of the server."""
        first = self.slot_of(now) - SLOTS
        total, window = Tally(), Tally()
        workers, dropped = 0, 0
        for snapshot in self._snapshots():
            workers += 1
            dropped += int(snapshot.get("dropped", 0))
            for entry in snapshot["models"]:
                if (entry["model"], entry["version"]) != key:
                    continue
                part = Tally.from_json(entry["total"])
                total.add(part.rows, part.counts)
                for slot, data in entry["slots"].items():
                    if int(slot) > first:
                        part = Tally.from_json(data)
                        window.add(part.rows, part.counts)
        return Summary(total, window, workers, dropped)

    def keys(self) -> set[Key]:
        """The model versions any worker counted rows of."""
        return {(e["model"], int(e["version"])) for s in self._snapshots() for e in s["models"]}

    def _snapshots(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            mine = self._snapshot()  # lists: a copy, read outside the lock
        yield mine
        if self._directory is None:
            return
        own = _file_name(os.getpid())
        for path in self._directory.glob(f"{os.getppid()}-*.json"):
            if path.name == own:
                continue
            try:
                yield json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:  # a worker's file replaced as it was read
                logger.debug("drift counts of %s not read: %s", path.name, e)


def _file_name(pid: int) -> str:
    # the server's pid too: a state directory kept between runs holds only this run's counts
    return f"{os.getppid()}-{pid}.json"
