"""The compiled model of a typed (``frame``) pipeline, and the rows its parity gate checks.

skl2onnx converts a ``ColumnTransformer`` pipeline given one ``[N, 1]`` input per
column: a string tensor for text (``str``, ``category``), the graph's float type for
numbers, integers and booleans (scikit-learn turns them into float64 too, exactly
below 2**53). ONNX strings cannot be missing, so a missing text cell is fed as
:data:`MISSING_TEXT`; the converted copy of each text ``SimpleImputer`` takes that
text for missing (skl2onnx converts none whose ``missing_values`` is ``NaN``). A
client that sends :data:`MISSING_TEXT` itself gets the imputed answer.

The gate (:mod:`flaskserve.compiler` scores it) checks, each part as one batch, as
a request brings it: the training rows, the held-out rows, random rows drawn from
each feature's categories and ±10% of its range with missing cells where the
feature may be missing, the same rows without any missing cell (an integer column
stays int64), and for each feature one block with the cell missing (where it may
be) and, for text the model ignores when unseen, blocks with unseen text.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np

from .artifact import Feature
from .runtime.base import Prediction
from .schema import Table, kind_of

#: what a missing text cell is fed as: ONNX string tensors have no missing value
MISSING_TEXT = "\x00flaskserve-missing"
#: random rows of the gate; a DataFrame pipeline of 300 trees predicts ~20,000 rows a second
TYPED_RANDOM_ROWS = 20_000
#: rows of each block with one feature's cell missing or unseen
BLOCK_ROWS = 500
#: text a model has not seen: a made-up category, and the empty string clients do send
UNSEEN_TEXT = ("flaskserve-unseen", "")
_MISSING_SHARE = 0.1
_SEED = 1234


def convert_typed(estimator: Any, features: tuple[Feature, ...], task: str, dtype: str) -> bytes:
    """The ONNX graph of *estimator*, one input per feature, numbers as *dtype*.

    :raises Exception: whatever skl2onnx raises for what it cannot convert.
    """
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    number = DoubleTensorType if dtype == "float64" else FloatTensorType
    types = [
        (f.name, StringTensorType([None, 1]) if kind_of(f) == "text" else number([None, 1]))
        for f in features
    ]
    model = _with_text_missing(estimator)
    options = {id(model): {"zipmap": False}} if task == "classification" else None
    onnx = to_onnx(model, initial_types=types, options=options)
    payload: bytes = onnx.SerializeToString()
    return payload


def _with_text_missing(estimator: Any) -> Any:
    """A copy of *estimator* whose text imputers take :data:`MISSING_TEXT` for missing."""
    from sklearn.impute import SimpleImputer

    model = copy.deepcopy(estimator)
    for part in _parts(model):
        if isinstance(part, SimpleImputer) and _imputes_text(part):
            part.missing_values = MISSING_TEXT
    return model


def _imputes_text(imputer: Any) -> bool:
    statistics = getattr(imputer, "statistics_", None)
    missing = imputer.missing_values
    is_nan = missing is None or (isinstance(missing, float) and missing != missing)
    return statistics is not None and statistics.dtype == object and is_nan


def _parts(estimator: Any) -> list[Any]:
    """*estimator* and every fitted step, transformer and member inside it."""
    found = [estimator]
    children = [s for _, s in getattr(estimator, "steps", [])]
    children += [t for _, t, _ in getattr(estimator, "transformers_", [])]
    children += [t for _, t in getattr(estimator, "transformer_list", [])]
    for child in children:
        if not isinstance(child, str):  # "drop", "passthrough"
            found += _parts(child)
    return found


def reference(estimator: Any, task: str, parts: list[tuple[str, Table]]) -> dict[str, np.ndarray]:
    """scikit-learn's answers on each part, as a request of those rows gets them."""
    labels, probabilities = [], []
    proba = task == "classification" and hasattr(estimator, "predict_proba")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Found unknown categories ... encoded as all zeros"
        for _, table in parts:
            frame = table.to_frame()
            labels.append(np.asarray(estimator.predict(frame)))
            if proba:
                probabilities.append(np.asarray(estimator.predict_proba(frame), dtype=np.float64))
    expected = {"predict": np.concatenate(labels)}
    if proba:
        expected["proba"] = np.concatenate(probabilities)
    return expected


def answers(session: Any, parts: list[tuple[str, Table]]) -> tuple[Prediction, list[Prediction]]:
    """The compiled model's answers on one thread, and its large-batch session's runs."""
    from .runtime.compiled import parallel_runs

    return run_parts(session, parts), parallel_runs(session, [table for _, table in parts])


def run_parts(session: Any, parts: list[tuple[str, Table]]) -> Prediction:
    """The compiled model's answers on each part, stacked (one thread: the gate's session)."""
    results = [session.run(table) for _, table in parts]
    labels = np.concatenate([r.predictions for r in results])
    scores = [r.probabilities for r in results]
    stacked = None if any(s is None for s in scores) else np.concatenate(scores)
    return Prediction(labels, stacked)


def parity_parts(
    features: tuple[Feature, ...], rows: Table | None, holdout: Table | None
) -> list[tuple[str, Table]]:
    """Every batch the gate checks, named by what it holds.

    :param rows: training rows; without them the random rows draw text from the
        features' categories only.
    """
    rng = np.random.default_rng(_SEED)
    parts = [(n, t) for n, t in (("training", rows), ("holdout", holdout)) if t is not None]
    parts = [(n, t) for n, t in parts if len(t)]
    random = random_rows(features, rows, TYPED_RANDOM_ROWS, rng)
    parts.append(("random", random))
    complete = _without_missing(random)
    if complete is not None:
        parts.append(("complete", complete))
    block = random.take(np.arange(min(BLOCK_ROWS, len(random))))
    for index, feature in enumerate(features):
        if feature.nullable:
            parts.append((f"missing {feature.name}", _with_column(block, index, None)))
        if kind_of(feature) == "text" and feature.unknown_categories == "ignored":
            for text in UNSEEN_TEXT:
                parts.append((f"unseen {feature.name}", _with_column(block, index, text)))
    return parts


def random_rows(
    features: tuple[Feature, ...], rows: Table | None, count: int, rng: np.random.Generator
) -> Table:
    """*count* rows, each cell drawn independently from what its feature takes."""
    columns = []
    for index, feature in enumerate(features):
        seen = rows.columns[index] if rows is not None else None
        columns.append(_random_column(feature, seen, count, rng))
    return Table(features, tuple(columns))


def _random_column(
    feature: Feature, seen: np.ndarray | None, count: int, rng: np.random.Generator
) -> np.ndarray:
    kind = kind_of(feature)
    missing = rng.random(count) < _MISSING_SHARE if feature.nullable else None
    if kind == "boolean":
        return rng.random(count) < 0.5
    if kind == "text":
        choices = list(feature.categories or _present_text(seen) or UNSEEN_TEXT[:1])
        column = np.array(choices, dtype=object)[rng.integers(0, len(choices), count)]
        if missing is not None:
            column[missing] = np.nan
        return column
    low, high = _range(feature, seen)
    margin = max((high - low) * 0.1, 1e-3)
    values = rng.uniform(low - margin, high + margin, count)
    if kind == "integer":
        values = np.round(values)
        if missing is None:
            return values.astype(np.int64)
    if missing is not None:
        values[missing] = np.nan
    return values


def _present_text(seen: np.ndarray | None) -> list[str]:
    if seen is None:
        return []
    return sorted({v for v in seen.tolist() if isinstance(v, str)})


def _range(feature: Feature, seen: np.ndarray | None) -> tuple[float, float]:
    if feature.min is not None and feature.max is not None:
        return feature.min, feature.max
    if seen is not None and seen.dtype.kind in "iuf" and not np.isnan(seen.astype(float)).all():
        return float(np.nanmin(seen)), float(np.nanmax(seen))
    return -10.0, 10.0  # nothing known: a spread around zero


def _without_missing(table: Table) -> Table | None:
    """*table* with every missing cell dropped row-wise, so integer columns are int64 again."""
    keep = np.ones(len(table), dtype=bool)
    for column in table.columns:
        keep &= ~_missing(column)
    if keep.all() or not keep.any():
        return None
    kept = table.take(keep)
    columns = tuple(
        c.astype(np.int64) if kind_of(f) == "integer" else c
        for f, c in zip(kept.features, kept.columns, strict=True)
    )
    return Table(kept.features, columns)


def _missing(column: np.ndarray) -> np.ndarray:
    if column.dtype == object:
        return np.array([not isinstance(v, str) for v in column.tolist()], dtype=bool)
    if column.dtype.kind == "f":
        mask: np.ndarray = np.isnan(column)
        return mask
    return np.zeros(len(column), dtype=bool)


def _with_column(table: Table, index: int, value: str | None) -> Table:
    """*table* with every cell of one column set to *value* (``None``: missing)."""
    columns = list(table.columns)
    old = columns[index]
    if value is not None:
        new = np.full(len(table), value, dtype=object)
    elif old.dtype == object:
        new = np.full(len(table), np.nan, dtype=object)
    else:
        new = np.full(len(table), np.nan, dtype=np.float64)
    columns[index] = new
    return Table(table.features, tuple(columns))
