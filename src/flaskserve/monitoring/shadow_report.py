"""What a shadow challenger's comparison adds up to: per-worker tallies, and the report.

Each worker keeps one :class:`ShadowTally` per challenger (model, version, start time)
and writes them to ``<state_dir>/shadow/<pid>.json`` after each scored batch; the report
sums every worker's file (the prometheus multiprocess files are not used: a maximum,
a label-by-label confusion and a reset when a challenger starts again fit them badly).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..parity import TOLERANCE
from ..runtime.registry import Snapshot

logger = logging.getLogger(__name__)

#: (model name, challenger version, when the challenger started)
TallyKey = tuple[str, int, float]
STATS_DIR = "shadow"


@dataclass
class ShadowTally:
    """One worker's comparison of a champion and its challenger, since the challenger started."""

    requests: int = 0
    rows: int = 0
    agree: int = 0
    #: champion label -> challenger label -> rows
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    proba_rows: int = 0
    proba_diff_sum: float = 0.0
    proba_diff_max: float = 0.0
    batches: int = 0
    seconds: float = 0.0
    failed_rows: int = 0
    failed_batches: int = 0
    dropped: int = 0
    #: a regressor's rows compared, and the absolute differences of their values
    value_rows: int = 0
    value_diff_sum: float = 0.0
    value_diff_max: float = 0.0

    def add_labels(self, champion: np.ndarray, challenger: np.ndarray) -> None:
        """Count rows where the two answered, label by label."""
        self.rows += len(champion)
        self.agree += int(np.sum(champion == challenger))
        # as codes into each side's few labels: pairs of strings sorted cost 20x more
        ours, our_codes = np.unique(champion, return_inverse=True)
        theirs, their_codes = np.unique(challenger, return_inverse=True)
        pairs = np.bincount(
            our_codes.ravel() * len(theirs) + their_codes.ravel(), minlength=len(ours) * len(theirs)
        ).reshape(len(ours), len(theirs))
        for i, j in zip(*np.nonzero(pairs), strict=True):
            row = self.confusion.setdefault(str(ours[i]), {})
            row[str(theirs[j])] = row.get(str(theirs[j]), 0) + int(pairs[i, j])

    def add_values(self, champion: np.ndarray, challenger: np.ndarray) -> None:
        """Count a regressor's rows: they agree within the parity gate's tolerance."""
        ours, theirs = champion.astype(np.float64), challenger.astype(np.float64)
        diff = np.abs(ours - theirs)
        self.rows += len(diff)
        self.agree += int(np.sum(diff <= TOLERANCE * np.maximum(1.0, np.abs(ours))))
        self.value_rows += len(diff)
        self.value_diff_sum += float(np.sum(diff))
        self.value_diff_max = max(self.value_diff_max, float(np.max(diff, initial=0.0)))

    def add_probabilities(self, champion: np.ndarray, challenger: np.ndarray) -> None:
        """Per row, the largest difference over the classes (columns in the same order)."""
        diff = np.max(np.abs(champion - challenger), axis=1)
        self.proba_rows += len(diff)
        self.proba_diff_sum += float(np.sum(diff))
        self.proba_diff_max = max(self.proba_diff_max, float(np.max(diff, initial=0.0)))

    def merge(self, other: ShadowTally) -> None:
        for name in _SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.proba_diff_max = max(self.proba_diff_max, other.proba_diff_max)
        self.value_diff_max = max(self.value_diff_max, other.value_diff_max)
        for ours, row in other.confusion.items():
            mine = self.confusion.setdefault(ours, {})
            for theirs, count in row.items():
                mine[theirs] = mine.get(theirs, 0) + count


_SUMMED = (
    "requests", "rows", "agree", "proba_rows", "proba_diff_sum", "batches", "seconds",
    "failed_rows", "failed_batches", "dropped", "value_rows", "value_diff_sum",
)  # fmt: skip


def write_tallies(state_dir: Path, tallies: dict[TallyKey, ShadowTally]) -> None:
    """This worker's tallies, replacing its file atomically (readers never see half)."""
    folder = state_dir / STATS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    entries = [
        {"name": n, "version": v, "started": s, "tally": asdict(t)}
        for (n, v, s), t in tallies.items()
    ]
    staging = folder / f".{os.getpid()}.json"
    staging.write_text(json.dumps(entries), encoding="utf-8")
    os.replace(staging, folder / f"{os.getpid()}.json")


def read_tallies(state_dir: Path, key: TallyKey) -> tuple[ShadowTally, int]:
    """The sum of every worker's tally for *key*, and how many workers had one."""
    total, workers = ShadowTally(), 0
    for path in sorted((state_dir / STATS_DIR).glob("[0-9]*.json")):
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:  # a worker's file is replaced whole; this is odd
            logger.warning("ignoring unreadable shadow tally %s: %s", path.name, e)
            continue
        for entry in _matching(entries, key):
            total.merge(ShadowTally(**entry["tally"]))
            workers += 1
    return total, workers


def _matching(entries: Iterable[Any], key: TallyKey) -> Iterable[dict[str, Any]]:
    return (e for e in entries if (e["name"], e["version"], e["started"]) == key)


def build_report(
    snapshot: Snapshot, name: str, tally: ShadowTally | None, workers: int
) -> dict[str, Any]:
    """``GET /model/<name>/shadow``: the comparison so far (docs/monitoring.md shows it).

    :param tally: the sum over workers of the current challenger's tallies.
    """
    champion = snapshot.get(name)
    found = snapshot.challenger(champion.name)
    report: dict[str, Any] = {"model": champion.name, "champion_version": champion.version}
    if found is None or tally is None:
        return report | {"challenger_version": None}
    _, plan = found
    per_row = tally.seconds / tally.rows if tally.rows else None
    per_batch = tally.seconds / tally.batches if tally.batches else None
    proba = _differences(tally.proba_rows, tally.proba_diff_sum, tally.proba_diff_max)
    values = _differences(tally.value_rows, tally.value_diff_sum, tally.value_diff_max)
    return report | {
        "challenger_version": plan.version,
        "fraction": plan.fraction,
        "started": plan.started or None,
        "requests": tally.requests,
        "rows": tally.rows,
        "agreement": tally.agree / tally.rows if tally.rows else None,
        "confusion": None if tally.value_rows else tally.confusion,
        "probability_difference": proba,
        "value_difference": values,
        "challenger_seconds": {
            "per_row": per_row,
            "per_batch": per_batch,
            "batches": tally.batches,
        },
        "failures": {"rows": tally.failed_rows, "batches": tally.failed_batches},
        "dropped_requests": tally.dropped,
        "workers": workers,
    }


def _differences(rows: int, total: float, largest: float) -> dict[str, Any] | None:
    return {"rows": rows, "mean": total / rows, "max": largest} if rows else None
