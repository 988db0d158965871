"""Which input column each column a pipeline's steps produce comes from.

An explanation is computed over the columns the final estimator sees (one-hot
columns, scaled numbers) and summed back to the input columns the client sent:
exact, because each produced column comes from exactly one input column. The
map is read from the fitted steps' structure (a ``ColumnTransformer``'s
``output_indices_``, a one-hot encoder's categories), never guessed from names.
A step that mixes input columns (a polynomial, a PCA) or that this module does not
know is refused, so no explanation is ever summed wrongly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import NotExplainable

#: steps that give one column per column they take, in the same order (a Normalizer does
#: not: each of its outputs depends on the whole row, so it is refused like any unknown step)
_ONE_TO_ONE = {
    "StandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "RobustScaler",
    "OrdinalEncoder",
    "PowerTransformer",
    "QuantileTransformer",
    "Binarizer",
}


def column_map(step: Any, width: int) -> np.ndarray:
    """``(produced, width)``: 1 where a produced column comes from an input column.

    :param step: a fitted transformer or ``Pipeline`` of them; ``None``: no step.
    :param width: how many columns *step* takes.
    :raises NotExplainable: a step mixes columns, or is not one this module knows.
    """
    if step is None or isinstance(step, str):  # None, "passthrough"
        return np.eye(width)
    kind = type(step).__name__
    if kind == "Pipeline":
        mapped = np.eye(width)
        for _, inner in step.steps:
            mapped = column_map(inner, mapped.shape[0]) @ mapped
        return mapped
    if kind == "ColumnTransformer":
        return _column_transformer(step, width)
    if kind in _ONE_TO_ONE:
        return np.eye(width)
    if kind == "SimpleImputer":
        return _imputer(step, width)
    if kind == "OneHotEncoder":
        return _blocks(_one_hot_widths(step), width)
    if kind == "TargetEncoder":
        return _blocks([_target_width(step)] * width, width)
    raise NotExplainable(
        f"the pipeline step {kind} is not one whose columns can be traced back to the"
        " input columns, so contributions could not be summed back exactly"
    )


def _blocks(widths: list[int], width: int) -> np.ndarray:
    """Input column i gives the next ``widths[i]`` produced columns."""
    if len(widths) != width:
        raise NotExplainable(f"a step takes {len(widths)} columns where {width} arrive")
    mapped = np.zeros((sum(widths), width))
    start = 0
    for column, count in enumerate(widths):
        mapped[start : start + count, column] = 1.0
        start += count
    return mapped


def _one_hot_widths(encoder: Any) -> list[int]:
    outs = getattr(encoder, "_n_features_outs", None)  # counts infrequent and dropped ones
    if outs is not None:
        return [int(n) for n in outs]
    drops = getattr(encoder, "drop_idx_", None)
    return [
        len(categories) - (drops is not None and drops[i] is not None)
        for i, categories in enumerate(encoder.categories_)
    ]


def _target_width(encoder: Any) -> int:
    target = getattr(encoder, "target_type_", "continuous")
    return len(encoder.classes_) if target == "multiclass" else 1


def _imputer(imputer: Any, width: int) -> np.ndarray:
    statistics = np.asarray(imputer.statistics_)
    kept = np.ones(width, dtype=bool)
    if statistics.dtype.kind == "f" and not getattr(imputer, "keep_empty_features", False):
        kept = ~np.isnan(statistics)  # a column that was all missing is dropped
    mapped = np.eye(width)[kept]
    indicator = getattr(imputer, "indicator_", None)
    if indicator is not None and getattr(imputer, "add_indicator", False):
        mapped = np.vstack([mapped, np.eye(width)[np.asarray(indicator.features_, dtype=int)]])
    return mapped


def _column_transformer(transformer: Any, width: int) -> np.ndarray:
    produced = sum(s.stop - s.start for s in transformer.output_indices_.values())
    mapped = np.zeros((produced, width))
    for name, step, columns in transformer.transformers_:
        where = transformer.output_indices_[name]
        if where.stop == where.start or step == "drop":
            continue
        inputs = _input_indices(transformer, name, columns, width)
        inner = column_map(step, len(inputs))
        if inner.shape[0] != where.stop - where.start:
            raise NotExplainable(
                f"the ColumnTransformer's {name!r} gives {where.stop - where.start} columns"
                f" where {inner.shape[0]} were traced"
            )
        block = np.zeros((where.stop - where.start, width))
        block[:, inputs] = inner
        mapped[where.start : where.stop] = block
    return mapped


def _input_indices(transformer: Any, name: str, columns: Any, width: int) -> list[int]:
    indices = getattr(transformer, "_transformer_to_input_indices", {}).get(name)
    if indices is not None:
        return [int(i) for i in indices]
    names = list(getattr(transformer, "feature_names_in_", []))
    selected = [columns] if isinstance(columns, str | int) else list(columns)
    return [names.index(c) if isinstance(c, str) else int(c) for c in selected]
