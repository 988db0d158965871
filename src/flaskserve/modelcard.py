"""What a model card shows: what only the fitted estimator knows, read once at save
time, the features as every surface describes them, and how the model is explained.

The compiled runtime never loads the scikit-learn estimator, so anything the
card needs from it is recorded in the manifest when the artifact is written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .artifact import Feature
from .schema import kind_of


def feature_importances(estimator: Any, names: Sequence[str]) -> dict[str, float]:
    """The estimator's ``feature_importances_`` by feature name, or ``{}`` if it has none.

    A Pipeline's importances are its final step's, and only when that step sees
    the input columns unchanged (same count): otherwise they would name other columns.
    """
    final = estimator
    steps = getattr(estimator, "steps", None)
    if steps:
        final = steps[-1][1]
    values = getattr(final, "feature_importances_", None)
    if values is None:
        return {}
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(values) != len(names) or not np.all(np.isfinite(values)):
        return {}
    return {name: float(v) for name, v in zip(names, values, strict=True)}


def describe_features(features: Sequence[Feature]) -> list[dict[str, Any]]:
    """Each feature as ``GET /model`` and the model card show it (docs/api.md).

    ``type`` is the JSON value a cell holds (:func:`~flaskserve.schema.kind_of`:
    ``number``, ``integer``, ``boolean`` or ``text``) and ``nullable`` whether it may be
    ``null`` (missing); a number has the range seen in training, a text feature its
    categories (``None``: free text) and what the model does with an unseen one.
    """
    described = []
    for feature in features:
        kind = kind_of(feature)
        item: dict[str, Any] = {
            "name": feature.name,
            "type": kind,
            "dtype": feature.dtype,
            "nullable": feature.nullable,
        }
        if kind in ("number", "integer"):
            item["min"], item["max"] = feature.min, feature.max
        elif kind == "text":
            categories = feature.categories
            item["categories"] = None if categories is None else list(categories)
            item["unknown_categories"] = feature.unknown_categories
        described.append(item)
    return described


#: how the card names each explanation method (:mod:`flaskserve.explain`)
EXPLANATION_METHODS = {
    "tree_shap": "TreeSHAP over the model's trees",
    "booster": "the booster's own contributions",
    "linear": "each coefficient times the distance from the training mean",
}
#: how the card names each space an explanation adds up in
EXPLANATION_SPACES = {"probability": "probability", "log_odds": "log-odds", "raw": "raw score"}


def describe_explanation(record: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest's ``explanation`` field as the model card shows it, or ``None`` if the
    artifact predates explanations (no field).

    ``reason`` alone says why the model cannot be explained. Otherwise ``method`` and
    ``space`` (with readable names), and ``importance``: bars sorted by each input
    column's mean absolute contribution, largest first, with ``width`` in percent of the
    largest and ``text`` in decimals fit for the largest; ``rows`` and ``over``
    (``held-out`` or ``training``) say what it was averaged over. ``importance_reason``
    says why the importance is missing where saving could not compute it.
    """
    if not record:
        return None
    if "method" not in record:
        return {"reason": str(record.get("reason") or "no explanation was recorded")}
    method, space = str(record["method"]), str(record.get("space", ""))
    return {
        "method": method,
        "method_name": EXPLANATION_METHODS.get(method, method),
        "space": space,
        "space_name": EXPLANATION_SPACES.get(space, space),
        "importance": _importance_bars(record.get("importance") or {}),
        "rows": record.get("importance_rows"),
        "over": record.get("importance_over"),
        "importance_reason": record.get("importance_reason"),
    }


def _importance_bars(importance: dict[str, Any]) -> list[dict[str, Any]]:
    values = {
        str(name): float(value)
        for name, value in importance.items()
        # a mean of magnitudes: anything else is not a bar (an SVG width must not be negative)
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    }
    largest = max(values.values(), default=0.0)
    decimals = _display_decimals(largest)
    return [
        {
            "name": name,
            "value": value,
            "width": round(100 * value / (largest or 1.0), 2),
            "text": f"{value:.{decimals}f}",
        }
        for name, value in sorted(values.items(), key=lambda item: -item[1])
    ]


def _display_decimals(largest: float) -> int:
    """Decimals that show three significant digits of *largest* (0 to 6): ``0.305`` →
    3, ``2.41`` → 2, ``1520.0`` → 0. The page's script rounds its chart the same way."""
    if not largest or not math.isfinite(largest):
        return 3
    return min(max(2 - math.floor(math.log10(abs(largest))), 0), 6)
