"""Evaluate a scikit-learn estimator in-process."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..artifact import ModelManifest
from ..errors import InvalidInput, ModelError
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

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    def predict(self, rows: np.ndarray, *, proba: bool = False) -> Prediction:
        """Predict classes or values for *rows*, optionally class probabilities.

        :raises InvalidInput: probabilities asked of a model that has none.
        :raises ModelError: the estimator failed or answered with non-finite values.
        """
        if proba and not hasattr(self._estimator, "predict_proba"):
            raise InvalidInput(f"model {self._manifest.name!r} does not give probabilities")
        predictions = self._call("predict", rows)
        probabilities = self._call("predict_proba", rows) if proba else None
        if predictions.dtype.kind == "f":
            _check_finite(predictions, "predictions")
        if probabilities is not None:
            _check_finite(probabilities, "probabilities")
        return Prediction(predictions, probabilities)

    def _call(self, method: str, rows: np.ndarray) -> np.ndarray:
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
