"""The explanation columns of ``flaskserve batch --explain``.

For each scored row: ``base_value``, one ``contrib_<column>`` per input column (in the
manifest's order) and ``explained_output``, their sum, toward the class the runtime
predicted for that row (a regressor's value), in the explainer's space, as ``/explain``
answers by default. Each row is explained on its own, so the values do not depend on
the chunking nor on the engine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..artifact import ModelManifest
from ..errors import ModelError
from ..explain import Explainer, Explanation
from ..schema import Table

#: rows explained at a time: the engine's columns (one-hot ones, times the classes) can be
#: many more than the input's, so a chunk is explained in blocks of bounded size
EXPLAIN_ROWS = 4_096


def explanation_names(manifest: ModelManifest) -> list[str]:
    """The columns ``--explain`` adds, in order: ``base_value``, ``contrib_<column>``...,
    ``explained_output``."""
    return ["base_value", *(f"contrib_{f.name}" for f in manifest.features), "explained_output"]


def explanation_fields(manifest: ModelManifest) -> list[Any]:
    """The Arrow fields of :func:`explanation_names`, all float64."""
    import pyarrow as pa

    return [pa.field(name, pa.float64()) for name in explanation_names(manifest)]


def explanation_columns(
    explainer: Explainer, rows: np.ndarray | Table, predictions: np.ndarray
) -> list[Any]:
    """The explanation columns of *rows*, toward *predictions* (the runtime's answers).

    :raises ModelError: the model failed to explain the rows, or predicted a class
        that its explanation does not have.
    """
    import pyarrow as pa

    blocks = [
        _toward(explainer.explain(_block(rows, start)), predictions[start : start + EXPLAIN_ROWS])
        for start in range(0, len(rows), EXPLAIN_ROWS)
    ]
    values = np.concatenate(blocks)  # (rows, base + columns + output)
    return [pa.array(np.ascontiguousarray(column)) for column in values.T]


def _block(rows: np.ndarray | Table, start: int) -> np.ndarray | Table:
    stop = start + EXPLAIN_ROWS
    if isinstance(rows, Table):
        return Table(rows.features, tuple(c[start:stop] for c in rows.columns))
    return rows[start:stop]


def _toward(explanation: Explanation, predictions: np.ndarray) -> np.ndarray:
    """``(rows, 1 + columns + 1)``: base value, contributions and their sum, per row."""
    chosen = _outputs_of(explanation, predictions)
    base = explanation.base_values[chosen]
    contributions = explanation.contributions[np.arange(len(chosen)), :, chosen]
    output = base + contributions.sum(axis=1)
    return np.column_stack([base, contributions, output])


def _outputs_of(explanation: Explanation, predictions: np.ndarray) -> np.ndarray:
    """Which of the explanation's outputs each prediction is: its class (0 for a regressor)."""
    if not explanation.classes:
        return np.zeros(len(predictions), dtype=np.intp)
    index = {label: i for i, label in enumerate(explanation.classes)}
    try:
        return np.array([index[p] for p in predictions.tolist()], dtype=np.intp)
    except KeyError as e:
        raise ModelError(
            f"the model predicted {e.args[0]!r}, which its explanation has no output for"
            f" (classes {list(explanation.classes)})"
        ) from e
