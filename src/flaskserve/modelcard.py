"""What a model card shows that only the fitted estimator knows, read once at save time.

The compiled runtime never loads the scikit-learn estimator, so anything the
card needs from it is recorded in the manifest when the artifact is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


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
