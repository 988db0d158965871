"""Explanations as JSON: one object per row, the same on ``/explain`` and KServe V1 ``:explain``.

A row of a classifier, toward the class it predicted::

    {"prediction": 2, "class_name": "virginica", "base_value": 0.331, "output": 0.953,
     "contributions": {"sepal_length": 0.012, ...}}

With ``all_classes``, ``classes`` holds one ``{"base_value", "output",
"contributions"}`` per class name instead. A regressor's row has no class.
``base_value + sum(contributions) == output`` within 1e-6, in the response's ``space``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..artifact import ModelManifest
from ..explain import Explanation
from ..runtime.base import Prediction


def encode_explanations(
    prediction: Prediction, explanation: Explanation, manifest: ModelManifest, *, all_classes: bool
) -> list[dict[str, Any]]:
    """One object per row (see the module's docstring)."""
    predictions = prediction.predictions.tolist()
    if not explanation.classes:
        return [_part(explanation, row, 0) | {"prediction": p} for row, p in enumerate(predictions)]
    index = {label: i for i, label in enumerate(explanation.classes)}
    names = dict(zip(manifest.labels, manifest.class_names, strict=True))
    rows = []
    for row, label in enumerate(predictions):
        item: dict[str, Any] = {"prediction": label, "class_name": names.get(label, str(label))}
        if all_classes:
            item["classes"] = {
                names.get(c, str(c)): _part(explanation, row, i)
                for i, c in enumerate(explanation.classes)
            }
        else:
            item |= _part(explanation, row, index[label])
        rows.append(item)
    return rows


def _part(explanation: Explanation, row: int, output: int) -> dict[str, Any]:
    values = explanation.contributions[row, :, output]
    base = float(explanation.base_values[output])
    return {
        "base_value": base,
        "output": base + float(np.sum(values)),
        "contributions": dict(zip(explanation.columns, values.tolist(), strict=True)),
    }
