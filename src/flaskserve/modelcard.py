"""What a model card shows: what only the fitted estimator knows, read once at save
time, and the features as every surface describes them.

The compiled runtime never loads the scikit-learn estimator, so anything the
card needs from it is recorded in the manifest when the artifact is written.
"""

from __future__ import annotations

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
