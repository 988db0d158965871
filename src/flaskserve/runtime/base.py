"""The contract every runtime keeps, whatever evaluates the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..artifact import ModelManifest
from ..schema import Table


@dataclass(frozen=True)
class Prediction:
    """One batch's answers, row-aligned with the input.

    ``probabilities`` is ``None`` unless asked for (and only for classifiers).
    ``scores`` are probabilities a runtime had at hand though nobody asked for them (ONNX
    Runtime computes the label and the probabilities in one run): for a shadow's
    comparison, never for a client, and unchecked.
    """

    predictions: np.ndarray
    probabilities: np.ndarray | None = None
    scores: np.ndarray | None = None


class Runtime(Protocol):
    """Predicts on rows whose columns follow ``manifest.features``.

    Rows are a float64 matrix for a ``matrix`` model, a :class:`~flaskserve.schema.Table`
    of typed columns for a ``frame`` model (``manifest.input``).
    """

    @property
    def kind(self) -> str:
        """What evaluates the model: ``sklearn`` or ``onnx``."""
        ...

    @property
    def manifest(self) -> ModelManifest: ...

    def predict(self, rows: np.ndarray | Table, *, proba: bool = False) -> Prediction: ...
