"""A pandas DataFrame sample, read into the typed schema a manifest records.

``save_model(estimator, path, sample=df)`` calls :func:`describe_frame`. What the
manifest records of each feature is what the estimator itself does, tried on
rows built from the sample, never guessed from its type:

- the dtype the column had (text, ``category``, boolean, integer, number);
- whether a cell may be missing: a row with that cell missing is predicted;
- for text, the categories seen in training (the fitted encoder's, else the
  sample's), and whether a category the model has not seen is refused or
  ignored: a row with an unseen one is predicted.

A sample of numbers only whose model answers the same on a plain matrix keeps
the fast float64 matrix input; any other is served as a DataFrame.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .artifact import Feature
from .schema import MAX_CATEGORIES, Table

#: a category no model was trained on, to learn what the model does with one
UNSEEN = "\x00flaskserve-unseen-category"


@dataclass(frozen=True)
class TypedSample:
    """A sample, typed: its features, its input form, its rows as the model takes them."""

    features: tuple[Feature, ...]
    input: str  # "matrix" or "frame"
    rows: np.ndarray | Table

    @property
    def width(self) -> int:
        return len(self.features)


def is_frame(sample: Any) -> bool:
    """Whether *sample* is a pandas DataFrame (pandas not imported to tell)."""
    return type(sample).__name__ == "DataFrame" and hasattr(sample, "dtypes")


def describe_frame(estimator: Any, frame: Any, names: list[str] | None = None) -> TypedSample:
    """Type every column of *frame* that *estimator* takes.

    :param names: the columns, in the model's order; default ``feature_names_in_``
        or the frame's own.
    :raises ValueError: a column is missing, empty, of a type flaskserve cannot take
        (dates, mixed objects), or the estimator fails on the sample itself.
    """
    if len(frame) == 0:
        raise ValueError("sample: expected at least one row, got an empty DataFrame")
    names = names or _model_columns(estimator, frame)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"sample: no column(s) {', '.join(map(repr, missing))} in the DataFrame")
    frame = frame[names]
    features = [_feature(name, frame[name]) for name in names]
    if _matrix_will_do(estimator, frame, features):
        matrix = frame.to_numpy(dtype=np.float64)
        nullable = np.isnan(matrix).any(axis=0)
        typed = tuple(
            Feature(f.name, "float64", f.min, f.max, nullable=bool(n))
            for f, n in zip(features, nullable, strict=True)
        )
        return TypedSample(typed, "matrix", matrix)
    table = _table(tuple(features), frame)
    _predict(estimator, table)  # the sample itself must be served: fail here, not at a request
    encoder_categories = _encoder_categories(estimator)
    typed = tuple(_tried(estimator, table, f, encoder_categories) for f in features)
    return TypedSample(typed, "frame", Table(typed, table.columns))


def _model_columns(estimator: Any, frame: Any) -> list[str]:
    fitted = getattr(estimator, "feature_names_in_", None)
    return [str(n) for n in (fitted if fitted is not None else frame.columns)]


def _feature(name: str, column: Any) -> Feature:
    """The feature as the column's dtype and values show it (before any trying)."""
    import pandas as pd

    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        categories = [str(c) for c in dtype.categories]
        if not all(isinstance(c, str) for c in dtype.categories):
            raise ValueError(f"sample: column {name!r}: category values must be text")
        return Feature(name, "category", categories=tuple(categories))
    if pd.api.types.is_bool_dtype(dtype):
        return Feature(name, "bool")
    if pd.api.types.is_numeric_dtype(dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(values).any():
            raise ValueError(f"sample: column {name!r} contains infinite values")
        present = values[~np.isnan(values)]
        low, high = (float(present.min()), float(present.max())) if len(present) else (None, None)
        kind = "int64" if pd.api.types.is_integer_dtype(dtype) else "float64"
        return Feature(name, kind, low, high)
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        present = column.dropna()
        odd = [v for v in present if not isinstance(v, str)]
        if odd:
            raise ValueError(
                f"sample: column {name!r} mixes text with {type(odd[0]).__name__} values"
            )
        seen = sorted(set(present))
        return Feature(name, "str", categories=tuple(seen) if len(seen) <= MAX_CATEGORIES else None)
    raise ValueError(f"sample: column {name!r} has dtype {dtype}, which flaskserve cannot serve")


def _matrix_will_do(estimator: Any, frame: Any, features: list[Feature]) -> bool:
    if not all(f.dtype in ("float64", "int64") for f in features):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "X does not have valid feature names"
            by_frame = np.asarray(estimator.predict(frame))
            by_matrix = np.asarray(estimator.predict(frame.to_numpy(dtype=np.float64)))
    except Exception:  # a ColumnTransformer that selects columns by name needs the frame
        return False
    return by_frame.shape == by_matrix.shape and bool(np.all(by_frame == by_matrix))


def _table(features: tuple[Feature, ...], frame: Any) -> Table:
    columns = []
    for feature in features:
        column = frame[feature.name]
        if feature.dtype in ("str", "category"):
            values = column.astype(object).to_numpy().copy()
            values[column.isna().to_numpy()] = np.nan
        elif feature.dtype == "int64" and column.isna().any():
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = column.to_numpy()
        columns.append(values)
    return Table(features, tuple(columns))


def _predict(estimator: Any, rows: Table) -> np.ndarray:
    return np.asarray(estimator.predict(rows.to_frame()))


def _answers(estimator: Any, rows: Table) -> bool:
    try:
        _predict(estimator, rows)
    except Exception:
        return False
    return True


def _tried(
    estimator: Any, table: Table, feature: Feature, encoder_categories: dict[str, tuple[str, ...]]
) -> Feature:
    """*feature*, with what the estimator does with a missing cell and an unseen category."""
    index = table.names.index(feature.name)
    column = table.columns[index]
    missing_in_sample = bool(_missing_mask(column).any())
    if feature.dtype == "bool":
        return feature
    nullable = missing_in_sample or _answers(estimator, _with_cell(table, index, np.nan))
    if feature.dtype == "category":  # unknown categories are served as missing ones
        unknown = "ignored" if nullable else "refused"
        return _replace(feature, nullable=nullable, unknown_categories=unknown)
    if feature.dtype != "str":
        return _replace(feature, nullable=nullable)
    categories = encoder_categories.get(feature.name, feature.categories)
    ignored = _answers(estimator, _with_cell(table, index, UNSEEN))
    return _replace(
        feature,
        nullable=nullable,
        categories=categories,
        unknown_categories="ignored" if ignored else "refused",
    )


def _replace(feature: Feature, **changes: Any) -> Feature:
    from dataclasses import replace

    return replace(feature, **changes)


def _missing_mask(column: np.ndarray) -> np.ndarray:
    if column.dtype == object:
        return np.array([v is None or (isinstance(v, float) and v != v) for v in column])
    if column.dtype.kind == "f":
        return np.asarray(np.isnan(column))
    return np.zeros(len(column), dtype=bool)


def _with_cell(table: Table, index: int, value: Any) -> Table:
    """The sample's first row with one cell set to *value*."""
    first = table.take(np.array([0]))
    columns = list(first.columns)
    column = columns[index]
    if column.dtype.kind in "iub" and not isinstance(value, str):
        column = column.astype(np.float64)
    elif column.dtype.kind != "O" and isinstance(value, str):
        column = column.astype(object)
    column = column.copy()
    column[0] = value
    columns[index] = column
    return Table(table.features, tuple(columns))


def _encoder_categories(estimator: Any) -> dict[str, tuple[str, ...]]:
    """The text categories the fitted encoders of a ColumnTransformer know, by column."""
    found: dict[str, tuple[str, ...]] = {}
    for transformers in _column_transformers(estimator):
        for _name, transformer, columns in transformers:
            encoder = _encoder(transformer)
            if encoder is None or not _names(columns):
                continue
            categories = encoder.categories_
            if len(categories) != len(columns):
                continue
            filled = _fill_value(transformer)  # what a missing cell became: not a category
            for column, known in zip(columns, categories, strict=True):
                text = tuple(str(c) for c in known if isinstance(c, str) and c != filled)
                if text and len(text) <= MAX_CATEGORIES:
                    found[column] = text
    return found


def _column_transformers(estimator: Any) -> list[list[Any]]:
    steps = [s for _, s in getattr(estimator, "steps", [])] or [estimator]
    return [s.transformers_ for s in steps if hasattr(s, "transformers_")]


def _encoder(transformer: Any) -> Any:
    for step in [s for _, s in getattr(transformer, "steps", [])] or [transformer]:
        if hasattr(step, "categories_"):
            return step
    return None


def _fill_value(transformer: Any) -> Any:
    for step in [s for _, s in getattr(transformer, "steps", [])]:
        if getattr(step, "strategy", None) == "constant":
            return step.fill_value
    return None


def _names(columns: Any) -> bool:
    return isinstance(columns, list | tuple) and all(isinstance(c, str) for c in columns)
