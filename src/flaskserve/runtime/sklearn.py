"""Evaluate a scikit-learn estimator in-process."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from ..artifact import ModelManifest
from ..errors import InvalidInput, ModelError
from ..schema import Table
from .base import Prediction

logger = logging.getLogger(__name__)


class SklearnRuntime:
    """Calls ``predict``/``predict_proba`` and checks what comes back.

    :param estimator: the fitted estimator, already verified by ``load_model``.
    :param manifest: its manifest; the column order of every input follows it.
    """

    kind = "sklearn"

    def __init__(self, estimator: Any, manifest: ModelManifest) -> None:
        self._estimator = estimator
        self._manifest = manifest
        if manifest.input == "matrix" and hasattr(estimator, "feature_names_in_"):
            # fitted on a DataFrame of numbers and served a matrix (the answers are the same,
            # checked when it was saved): scikit-learn would warn on every request
            warnings.filterwarnings("ignore", "X does not have valid feature names")

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    def predict(self, rows: np.ndarray | Table, *, proba: bool = False) -> Prediction:
        """Predict classes or values for *rows*, optionally class probabilities.

        :raises InvalidInput: probabilities asked of a model that has none.
        :raises ModelError: the estimator failed or answered with non-finite values.
        """
        if proba and not hasattr(self._estimator, "predict_proba"):
            raise InvalidInput(f"model {self._manifest.name!r} does not give probabilities")
        model_input = rows.to_frame() if isinstance(rows, Table) else rows
        predictions = self._call("predict", model_input)
        probabilities = self._call("predict_proba", model_input) if proba else None
        if predictions.dtype.kind == "f":
            _check_finite(predictions, "predictions")
        if probabilities is not None:
            _check_finite(probabilities, "probabilities")
        return Prediction(predictions, probabilities)

    def _call(self, method: str, rows: Any) -> np.ndarray:
        try:
            return np.asarray(getattr(self._estimator, method)(rows))
        except Exception as e:  # any estimator failure is the model's, never the client's
            logger.exception("model %r failed in %s", self._manifest.name, method)
            raise ModelError(
                f"model {self._manifest.name!r} failed to {method.replace('_', ' ')}"
            ) from e


def _check_finite(values: np.ndarray, what: str) -> None:
    if not np.isfinite(values).all():
        raise ModelError(f"the model produced non-finite {what}")
