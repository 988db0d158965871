"""Evaluate a model compiled to ONNX, with ONNX Runtime on one thread.

One thread is not a speed compromise here: a single row takes microseconds,
the server already runs one process per core, and ONNX Runtime's default
thread pool was measured to disagree with scikit-learn on exact probability
ties (27 of 100,000 random rows), where one thread agrees on all of them.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..artifact import ModelManifest
from ..errors import ArtifactError, InvalidInput, ModelError
from .base import Prediction

logger = logging.getLogger(__name__)


class OnnxSession:
    """An ONNX Runtime session that takes float64 rows and gives a :class:`Prediction`.

    :param input_dtype: the dtype the ONNX graph's input was built for.
    :param input_cast: ``"float32"`` to round rows to float32 first, as
        scikit-learn's trees do before comparing with their thresholds.
    """

    def __init__(self, payload: bytes, *, input_dtype: str, input_cast: str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
        graph_input = self._session.get_inputs()[0]
        self._input = graph_input.name
        self.width = graph_input.shape[1] if len(graph_input.shape) == 2 else None
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._dtype = np.dtype(input_dtype)
        self._cast = input_cast == "float32"
        self._float32 = self._dtype == np.float32  # the graph computes in float32

    @property
    def has_probabilities(self) -> bool:
        return len(self._outputs) > 1

    def run(self, rows: np.ndarray, *, probabilities: bool = True) -> Prediction:
        """Predict *rows*; with ``probabilities=False`` only the first output is fetched.

        :raises OverflowError: the graph computes in float32 and a value is beyond its range.
        """
        if self._float32:
            x = _to_float32(rows)
        else:
            x = rows.astype(np.float32) if self._cast else rows
        outputs = self._outputs if probabilities else self._outputs[:1]
        results: list[Any] = self._session.run(
            outputs, {self._input: x.astype(self._dtype, copy=False)}
        )
        predictions = np.asarray(results[0]).reshape(len(rows), -1)
        predictions = predictions[:, 0] if predictions.shape[1] == 1 else predictions
        scores = np.asarray(results[1], dtype=np.float64) if len(results) > 1 else None
        return Prediction(predictions, scores)


def _to_float32(rows: np.ndarray) -> np.ndarray:
    # A value past float32's range would be inf in the graph, where scikit-learn, computing
    # in float64, gives a finite score: the label would be another (only trees cast too).
    try:
        with np.errstate(over="raise"):
            return rows.astype(np.float32)
    except FloatingPointError as e:
        limit = float(np.finfo(np.float32).max)
        raise OverflowError(
            f"a value is beyond {limit:.4g}, the float32 range its compiled model computes in"
        ) from e


class CompiledRuntime:
    """The :class:`Runtime` over an :class:`OnnxSession`."""

    kind = "onnx"

    def __init__(self, payload: bytes, manifest: ModelManifest) -> None:
        record = manifest.compiled
        self._session = OnnxSession(
            payload, input_dtype=record["input_dtype"], input_cast=record["input_cast"]
        )
        if self._session.width not in (None, len(manifest.features)):
            raise ArtifactError(
                f"the manifest lists {len(manifest.features)} features,"
                f" the compiled model expects {self._session.width}"
            )
        self._manifest = manifest
        # skl2onnx gives decision scores a second output too: only predict_proba counts
        self._has_probabilities = self._session.has_probabilities and bool(
            manifest.compiled.get("probabilities")
        )
        self._labels = np.asarray(manifest.labels) if manifest.task == "classification" else None

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    def predict(self, rows: np.ndarray, *, proba: bool = False) -> Prediction:
        """Like :meth:`SklearnRuntime.predict`, from the compiled model.

        :raises InvalidInput: probabilities asked of a model that has none.
        :raises ModelError: ONNX Runtime failed or answered non-finite values, or
            the graph computes in float32 and a value is beyond its range.
        """
        if proba and not self._has_probabilities:
            raise InvalidInput(f"model {self._manifest.name!r} does not give probabilities")
        try:
            result = self._session.run(rows, probabilities=proba)
        except OverflowError as e:
            raise ModelError(f"model {self._manifest.name!r} cannot predict these rows: {e}") from e
        except Exception as e:  # any runtime failure is the model's, never the client's
            logger.exception("model %r failed in ONNX Runtime", self._manifest.name)
            raise ModelError(f"model {self._manifest.name!r} failed to predict") from e
        predictions = result.predictions
        # before the labels' cast: a NaN label would become some integer
        if predictions.dtype.kind == "f" and not np.isfinite(predictions).all():
            raise ModelError("the model produced non-finite predictions")
        if self._labels is not None:  # ONNX gives int64 or str; keep the manifest's label type
            predictions = predictions.astype(self._labels.dtype, copy=False)
        probabilities = result.probabilities if proba else None
        if probabilities is not None and not np.isfinite(probabilities).all():
            raise ModelError("the model produced non-finite probabilities")
        return Prediction(predictions, probabilities)
