"""Evaluate a model compiled to ONNX, with ONNX Runtime.

A request runs on one thread: a single row takes microseconds, the server
already runs one process per core, and ONNX Runtime's default thread pool was
measured to disagree with scikit-learn on exact probability ties (27 of
100,000 random rows), where one thread agrees on all of them. A batch of at
least ``parallel_rows`` rows is the exception: a second session splits it by
rows over every usable core (1.5-1.8x for 10,000 rows on 2 cores), and only
for a model whose parity gate passed that session's answers too
(:func:`parallel_runs`, :func:`flaskserve.parity.score_parallel`).

A model of numbers takes one float matrix. A typed (``frame``) model's graph has
one ``[N, 1]`` input per feature, in the manifest's order: text as strings,
everything else as the graph's float type. ONNX strings cannot be missing, so a
missing text cell is fed as the text the compiler recorded (``missing_text``),
which the compiled imputers take for missing; a ``category`` value the model does
not know is fed as missing too, as :meth:`Table.to_frame` gives it to scikit-learn.
The parity gate proves both mappings or the compiled model is not served.
An XGBoost or LightGBM graph (onnxmltools) answers class indices, which the
manifest's labels name.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from ..artifact import ModelManifest
from ..errors import ArtifactError, InvalidInput, ModelError
from ..schema import Table, kind_of
from .base import Prediction
from .cores import usable_cores

logger = logging.getLogger(__name__)

#: by default, a request of at least this many rows runs on every usable core; the gate
#: runs the large-batch session on pieces this large too
PARALLEL_ROWS = 1_000


class OnnxSession:
    """An ONNX Runtime session that takes float64 rows and gives a :class:`Prediction`.

    :param input_dtype: the dtype the ONNX graph's input was built for.
    :param input_cast: ``"float32"`` to round rows to float32 first, as
        scikit-learn's trees do before comparing with their thresholds.
    """

    def __init__(
        self,
        payload: bytes,
        *,
        input_dtype: str,
        input_cast: str,
        missing_text: str | None = None,
        parallel_rows: int = 0,
    ) -> None:
        self._payload = payload
        self._session = _ort_session(payload, threads=1)
        self._parallel_rows = parallel_rows
        self._parallel: Any = None  # made on the first large batch: most servers never see one
        self._parallel_lock = threading.Lock()
        graph_input = self._session.get_inputs()[0]
        self._input = graph_input.name
        self.width = graph_input.shape[1] if len(graph_input.shape) == 2 else None
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._dtype = np.dtype(input_dtype)
        self._cast = input_cast == "float32"
        self._float32 = self._dtype == np.float32  # the graph computes in float32
        self._columns = [_column_type(i.name, i.type) for i in self._session.get_inputs()]
        self._missing_text = missing_text

    @property
    def parallel_rows(self) -> int:
        """Rows from which a batch runs on every usable core; 0: never."""
        return self._parallel_rows

    @property
    def inputs(self) -> int:
        """How many inputs the graph has: 1 for a matrix, one per feature for a table."""
        return len(self._columns)

    @property
    def columns(self) -> list[tuple[str, str]]:
        """Each input's name and kind (``string`` or ``number``)."""
        return list(self._columns)

    @property
    def has_probabilities(self) -> bool:
        return len(self._outputs) > 1

    def run(
        self, rows: np.ndarray | Table, *, probabilities: bool = True, parallel: bool | None = None
    ) -> Prediction:
        """Predict *rows*; with ``probabilities=False`` only the first output is fetched.

        :param parallel: on every usable core (at least 2); default: when *rows* are
            at least ``parallel_rows`` (never when that is 0).
        :raises OverflowError: the graph computes in float32 and a value is beyond its range.
        """
        feed = self._table_feed(rows) if isinstance(rows, Table) else self._matrix_feed(rows)
        outputs = self._outputs if probabilities else self._outputs[:1]
        if parallel is None:
            parallel = 0 < self._parallel_rows <= len(rows)
        session = self._parallel_session() if parallel else self._session
        results: list[Any] = session.run(outputs, feed)
        predictions = np.asarray(results[0]).reshape(len(rows), -1)
        predictions = predictions[:, 0] if predictions.shape[1] == 1 else predictions
        scores = np.asarray(results[1], dtype=np.float64) if len(results) > 1 else None
        return Prediction(predictions, scores)

    def _parallel_session(self) -> Any:
        with self._parallel_lock:
            if self._parallel is None:
                self._parallel = _ort_session(self._payload, threads=parallel_threads())
            return self._parallel

    def _matrix_feed(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        if self._float32:
            x = _to_float32(rows)
        else:
            x = rows.astype(np.float32) if self._cast else rows
        return {self._input: x.astype(self._dtype, copy=False)}

    def _table_feed(self, table: Table) -> dict[str, np.ndarray]:
        if len(table.columns) != len(self._columns):
            raise ValueError(f"expected {len(self._columns)} columns, got {len(table.columns)}")
        feed = {}
        for (name, kind), feature, column in zip(
            self._columns, table.features, table.columns, strict=True
        ):
            if kind == "string":
                known = _known(feature.categories) if feature.dtype == "category" else None
                values = _text(column, self._missing_text, known)
            elif self._float32 or self._cast:
                values = _to_float32(column)
            else:
                values = column.astype(self._dtype, copy=False)
            feed[name] = values.reshape(-1, 1)
        return feed


def _ort_session(payload: bytes, *, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if threads > 1:  # a pool spinning between batches would take the cores single rows need
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])


def parallel_threads() -> int:
    """Threads of the large-batch session: every usable core, and at least 2 for the gate."""
    return max(2, usable_cores())


def parallel_runs(session: OnnxSession, batches: list[np.ndarray | Table]) -> list[Prediction]:
    """The large-batch session's answers on *batches* for the gate, twice: each batch whole,
    and in :data:`PARALLEL_ROWS`-row pieces (ONNX Runtime splits the work by the batch's
    size, and so the order in which a row's trees are summed)."""
    whole = [session.run(batch, parallel=True) for batch in batches]
    pieces = [
        session.run(_rows_of(batch, start), parallel=True)
        for batch in batches
        for start in range(0, len(batch), PARALLEL_ROWS)
    ]
    return [_stacked(whole), _stacked(pieces)]


def _rows_of(batch: np.ndarray | Table, start: int) -> np.ndarray | Table:
    stop = min(start + PARALLEL_ROWS, len(batch))
    return batch.take(np.arange(start, stop)) if isinstance(batch, Table) else batch[start:stop]


def _stacked(results: list[Prediction]) -> Prediction:
    scores = [r.probabilities for r in results if r.probabilities is not None]
    probabilities = np.concatenate(scores) if len(scores) == len(results) else None
    return Prediction(np.concatenate([r.predictions for r in results]), probabilities)


def _column_type(name: str, onnx_type: str) -> tuple[str, str]:
    if onnx_type == "tensor(string)":
        return name, "string"
    return name, "number" if onnx_type in ("tensor(float)", "tensor(double)") else onnx_type


_KNOWN: dict[tuple[str, ...], frozenset[str]] = {}


def _known(categories: tuple[str, ...] | None) -> frozenset[str]:
    key = categories or ()
    known = _KNOWN.get(key)
    if known is None:
        known = _KNOWN[key] = frozenset(key)
    return known


def _text(column: np.ndarray, missing: str | None, known: frozenset[str] | None) -> np.ndarray:
    """Text cells for a string input: a missing one (``NaN``) becomes *missing*."""
    if missing is None:
        raise ValueError("the compiled model records no text for a missing cell")
    if known is None:  # one pass in Python: ~40 ns a cell
        cells = [v if v.__class__ is str else missing for v in column.tolist()]
    else:
        cells = [v if v in known else missing for v in column.tolist()]
    return np.array(cells, dtype=object)


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

    def __init__(
        self,
        payload: bytes,
        manifest: ModelManifest,
        *,
        parallel_rows: int = 0,
        native: bytes | None = None,
    ) -> None:
        """:param parallel_rows: see :class:`OnnxSession`; used only where the gate allowed it.
        :param native: the Treelite checkpoint whose library runs batches of at least
            *parallel_rows* rows once built (:mod:`.native`), where its gate passed.
        """
        record = manifest.compiled
        allowed = (record.get("parity") or {}).get("parallel", {}).get("passed") is True
        self._session = OnnxSession(
            payload,
            input_dtype=record["input_dtype"],
            input_cast=record["input_cast"],
            missing_text=record.get("missing_text"),
            parallel_rows=parallel_rows if allowed and usable_cores() > 1 else 0,
        )
        if manifest.input == "frame":
            _check_columns(manifest, self._session)
        elif self._session.width not in (None, len(manifest.features)):
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
        # an XGBoost or LightGBM graph answers class indices 0..k-1; skl2onnx's, the labels
        self._by_index = record.get("labels") == "index" and self._labels is not None
        self._native_rows = parallel_rows
        self._native = self._native_batches(native, record)

    def _native_batches(self, checkpoint: bytes | None, record: dict[str, Any]) -> Any:
        from . import native

        gated = (record.get("native") or {}).get("status") == "passed"
        if checkpoint is None or not gated or self._native_rows <= 0:
            return None
        missing = native.unavailable()
        if missing is not None:
            logger.info("%s: large batches on ONNX Runtime: %s", self._manifest.name, missing)
            return None
        return native.NativeBatches(checkpoint, self._labels)

    @property
    def native(self) -> Any:
        """The native batches' builder (:class:`.native.NativeBatches`), or ``None``."""
        return self._native

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    @property
    def parallel_rows(self) -> int:
        """Rows from which a batch runs on every usable core; 0: never."""
        return self._session.parallel_rows

    def _run(self, rows: np.ndarray | Table, proba: bool) -> Prediction:
        """A large batch on the native library once built, anything else on ONNX Runtime."""
        forest = self._native.forest if self._native is not None else None
        if forest is not None and isinstance(rows, np.ndarray) and len(rows) >= self._native_rows:
            return forest.run(rows)  # type: ignore[no-any-return]
        return self._session.run(rows, probabilities=proba)

    def predict(self, rows: np.ndarray | Table, *, proba: bool = False) -> Prediction:
        """Like :meth:`SklearnRuntime.predict`, from the compiled model.

        :raises InvalidInput: probabilities asked of a model that has none.
        :raises ModelError: ONNX Runtime failed or answered non-finite values, or
            the graph computes in float32 and a value is beyond its range.
        """
        if proba and not self._has_probabilities:
            raise InvalidInput(f"model {self._manifest.name!r} does not give probabilities")
        return self._predict(rows, proba, scores=False)

    def predict_with_scores(self, rows: np.ndarray | Table) -> Prediction:
        """:meth:`predict` without probabilities, keeping them as ``scores`` (a shadow
        compares them): the same run gives both, so keeping them costs the answer little."""
        return self._predict(rows, False, scores=self._has_probabilities)

    def _predict(self, rows: np.ndarray | Table, proba: bool, *, scores: bool) -> Prediction:
        try:
            result = self._run(rows, proba or scores)
        except OverflowError as e:
            raise ModelError(f"model {self._manifest.name!r} cannot predict these rows: {e}") from e
        except Exception as e:  # any runtime failure is the model's, never the client's
            logger.exception("model %r failed in ONNX Runtime", self._manifest.name)
            raise ModelError(f"model {self._manifest.name!r} failed to predict") from e
        predictions = result.predictions
        # before the labels' cast: a NaN label would become some integer
        if predictions.dtype.kind == "f" and not np.isfinite(predictions).all():
            raise ModelError("the model produced non-finite predictions")
        if self._by_index and self._labels is not None:
            predictions = self._labels[predictions.astype(np.intp, copy=False)]
        elif self._labels is not None:  # ONNX gives int64 or str; keep the manifest's label type
            predictions = predictions.astype(self._labels.dtype, copy=False)
        probabilities = result.probabilities if proba else None
        if probabilities is not None and not np.isfinite(probabilities).all():
            raise ModelError("the model produced non-finite probabilities")
        return Prediction(predictions, probabilities, result.probabilities if scores else None)


def _check_columns(manifest: ModelManifest, session: OnnxSession) -> None:
    """A typed model's graph takes one input per feature: strings for text, numbers else."""
    if session.inputs != len(manifest.features):
        raise ArtifactError(
            f"the manifest lists {len(manifest.features)} features,"
            f" the compiled model has {session.inputs} inputs"
        )
    for feature, (name, kind) in zip(manifest.features, session.columns, strict=True):
        if kind not in ("string", "number") or (kind == "string") != (kind_of(feature) == "text"):
            raise ArtifactError(
                f"feature {feature.name!r}: the compiled model's input {name!r} takes {kind}s"
            )
    if any(k == "string" for _, k in session.columns) and not manifest.compiled.get("missing_text"):
        raise ArtifactError("the compiled model records no text for a missing cell")
