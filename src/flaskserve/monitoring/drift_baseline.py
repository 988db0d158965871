"""Each input column's distribution over the training rows, and the bins served rows fall in.

A number is cut at the deciles of its training values (open outer edges, equal
edges merged), a text or boolean column keeps one bin per common category and
pools the rest into ``other``; both have a ``missing`` bin. :func:`compute_baselines`
writes them into the manifest at save time (``ModelManifest.baselines``);
:class:`Bins` counts served cells into the same bins, a batch at a time.
The population stability index compares the two (:func:`stability_index`).

Plain NumPy: nothing here imports Flask, and it runs off the request path.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from ..artifact import Feature
from ..schema import Table, kind_of

#: the quantiles a number's bins are cut at
QUANTILES = tuple(q / 10 for q in range(1, 10))
#: a category rarer than this share of the training rows goes to the ``other`` bin
MIN_CATEGORY_SHARE = 0.01
#: the most categories one column keeps bins for; the rarer go to ``other``
MAX_CATEGORY_BINS = 30
OTHER = "other"
MISSING = "missing"
#: the share an empty bin is given, so that the logarithm stays finite (Evidently's choice)
EPSILON = 1e-4
#: PSI below this is ``stable``, up to :data:`DRIFT` a ``shift``, above it ``drift``
SHIFT, DRIFT = 0.1, 0.25
#: rows counted per degree of freedom (bins - 1) before an index gets a status
ROWS_PER_BIN = 20
_DIGITS = 6


def compute_baselines(features: Sequence[Feature], rows: np.ndarray | Table) -> dict[str, Any]:
    """Each feature's baseline over the training *rows*, by feature name.

    :param rows: a float64 matrix (``NaN`` for a missing cell) or a :class:`Table`.
    """
    columns = rows.columns if isinstance(rows, Table) else tuple(rows.T)
    return {f.name: _baseline(f, c) for f, c in zip(features, columns, strict=True)}


def _baseline(feature: Feature, column: np.ndarray) -> dict[str, Any]:
    total = len(column)
    if kind_of(feature) in ("number", "integer"):
        values = np.asarray(column, dtype=np.float64)
        present = values[~np.isnan(values)]
        cuts = np.quantile(present, QUANTILES) if present.size else ()
        # 12 significant digits: 4.64, not 4.639999999999999; the shares are counted at these
        edges = np.unique(np.array([float(f"{c:.12g}") for c in cuts], dtype=np.float64))
        counts = np.bincount(
            np.searchsorted(edges, present, side="right"), minlength=edges.size + 1
        )
        return {
            "kind": "number",
            "rows": total,
            "edges": [float(e) for e in edges],
            "shares": _shares(counts, total),
            "missing": round((total - present.size) / total, _DIGITS),
        }
    labels = [label for label in map(_label, column) if label is not None]
    common = Counter(labels).most_common(MAX_CATEGORY_BINS)
    kept = {c: n for c, n in common if n >= MIN_CATEGORY_SHARE * total}
    return {
        "kind": "category",
        "rows": total,
        "categories": list(kept),
        "shares": _shares(np.array(list(kept.values()), dtype=np.int64), total),
        "other": round((len(labels) - sum(kept.values())) / total, _DIGITS),
        "missing": round((total - len(labels)) / total, _DIGITS),
    }


def _label(cell: Any) -> str | None:
    """A text or boolean cell as its bin's name; ``None`` for a missing one."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    if isinstance(cell, bool | np.bool_):
        return "true" if cell else "false"
    return str(cell)


def _shares(counts: np.ndarray, total: int) -> list[float]:
    return [round(float(n) / total, _DIGITS) for n in counts]


@dataclass(frozen=True)
class Bins:
    """One column's bins: their names, the training shares, and how to count a column.

    The bins are in a fixed order, the last is ``missing``; a category column's
    next to last is ``other``.
    """

    name: str
    kind: str
    labels: tuple[str, ...]
    expected: np.ndarray
    edges: np.ndarray
    index: dict[str, int]

    @classmethod
    def from_baseline(cls, name: str, baseline: dict[str, Any]) -> Bins:
        """:raises ValueError: the manifest's record is not a baseline this version reads."""
        kind = baseline.get("kind")
        shares = [float(s) for s in baseline["shares"]]
        missing = float(baseline["missing"])
        if kind == "number":
            edges = np.asarray(baseline["edges"], dtype=np.float64)
            if len(shares) != edges.size + 1:
                raise ValueError(f"baseline {name!r}: {edges.size} edges, {len(shares)} shares")
            labels = _interval_labels(edges)
            return cls(name, "number", labels, np.array([*shares, missing]), edges, {})
        if kind == "category":
            categories = [str(c) for c in baseline["categories"]]
            if len(shares) != len(categories):
                raise ValueError(f"baseline {name!r}: {len(categories)} categories, {len(shares)}")
            expected = np.array([*shares, float(baseline["other"]), missing])
            index = {c: i for i, c in enumerate(categories)}
            return cls(
                name, "category", (*categories, OTHER, MISSING), expected, np.empty(0), index
            )
        raise ValueError(f"baseline {name!r}: unknown kind {kind!r}")

    def count(self, column: np.ndarray) -> np.ndarray:
        """How many cells of *column* fall in each bin (int64, one per label)."""
        size = len(self.labels)
        if self.kind == "number":
            values = np.asarray(column, dtype=np.float64)
            where = np.searchsorted(self.edges, values, side="right")
            where[np.isnan(values)] = size - 1
        else:
            other, missing = size - 2, size - 1
            labels = map(_label, column)
            found = (missing if v is None else self.index.get(v, other) for v in labels)
            where = np.fromiter(found, dtype=np.intp, count=len(column))
        return np.bincount(where, minlength=size).astype(np.int64)


def _interval_labels(edges: np.ndarray) -> tuple[str, ...]:
    if not edges.size:
        return ("all", MISSING)
    shown = [f"{e:.4g}" for e in edges]
    middle = [f"{low} to {high}" for low, high in pairwise(shown)]
    return (f"< {shown[0]}", *middle, f"≥ {shown[-1]}", MISSING)


def bins_of(baselines: dict[str, Any], names: Sequence[str]) -> tuple[Bins, ...] | None:
    """The bins of every feature in *names*, or ``None`` where the manifest has no baselines
    (saved before them, or without ``sample=``) or one is unreadable."""
    try:
        return tuple(Bins.from_baseline(n, baselines[n]) for n in names)
    except (KeyError, TypeError, ValueError):
        return None


def stability_index(expected: np.ndarray, counts: np.ndarray) -> float | None:
    """The population stability index of *counts* against the *expected* shares,
    ``sum((a - e) * ln(a / e))``, an empty bin's share taken as :data:`EPSILON`;
    ``None`` when nothing was counted."""
    total = int(counts.sum())
    if total == 0:
        return None
    actual = np.maximum(counts / total, EPSILON)
    base = np.maximum(expected, EPSILON)
    return float(np.sum((actual - base) * np.log(actual / base)))


def min_rows(bins: Bins) -> int:
    """The rows counted before *bins*' index gets a status: a sample of ``n`` rows from the
    training distribution itself scores about ``(bins - 1) / n``, which this keeps at or
    below half the ``stable`` threshold."""
    return ROWS_PER_BIN * max(len(bins.labels) - 1, 1)


def status_of(psi: float | None, rows: int = 0, needed: int = 0) -> str:
    """``stable`` below 0.1, ``shift`` up to 0.25, ``drift`` above; ``no data`` for ``None``;
    ``too few rows`` while *rows* are fewer than *needed*."""
    if psi is None:
        return "no data"
    if rows < needed:
        return "too few rows"
    return "stable" if psi < SHIFT else "shift" if psi <= DRIFT else "drift"
