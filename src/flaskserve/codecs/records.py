"""The tutorial's format: one JSON object of features, or a list of them.

``{"sepal_length": 5.9, ...}`` is one row; ``[{...}, {...}]`` is a batch.
Rows may also be positional arrays in the manifest's feature order.
For a model of numbers, every cell must be a finite JSON number: ``null``,
booleans and strings are refused instead of being coerced the way ``np.asarray``
would (``True`` -> 1.0). A model with text, boolean or missing cells takes them
as its features' types allow (:mod:`flaskserve.schema`, docs/typing.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..artifact import ModelManifest
from ..errors import InvalidInput, PayloadTooLarge
from ..runtime.base import Prediction
from ..schema import Table, columns_input, describe


def decode_records(payload: Any, manifest: ModelManifest, max_rows: int) -> np.ndarray | Table:
    """Turn a parsed JSON payload into what *manifest*'s model takes.

    A model of numbers that are never missing takes the fast path of
    :func:`decode_rows`; any other has each cell checked against its feature's
    type (:func:`flaskserve.schema.typed_column`): a float64 matrix with ``NaN``
    for missing cells, or a :class:`~flaskserve.schema.Table` of typed columns.

    :raises InvalidInput: any row or cell does not fit; the message names it.
    :raises PayloadTooLarge: more rows than *max_rows*.
    """
    if manifest.plain_numbers:
        return decode_rows(payload, manifest.feature_names, max_rows)
    rows, where = _batch(payload, max_rows)
    names = manifest.feature_names
    cells = _cells(rows, names, where)
    width = len(names)
    return columns_input(manifest, [cells[j::width] for j in range(width)], where)


def decode_rows(payload: Any, feature_names: Sequence[str], max_rows: int) -> np.ndarray:
    """Turn a parsed JSON payload into a ``(rows, features)`` float64 matrix.

    :param payload: the parsed body: an object, or a list of objects or arrays.
    :param feature_names: the model's features, in column order.
    :param max_rows: the batch limit.
    :raises InvalidInput: any row or cell does not fit; the message names it.
    :raises PayloadTooLarge: more rows than *max_rows*.
    """
    payload, where = _batch(payload, max_rows)
    cells = _cells(payload, feature_names, where)
    # the common case costs a few C loops; any doubt and the rows are walked to name the cell
    if set(map(type, cells)) <= _NUMBER_TYPES:
        rows = _finite_rows(cells, (len(payload), len(feature_names)))
        if rows is not None:
            return rows
    return _checked_rows(cells, feature_names, where)


def _batch(payload: Any, max_rows: int) -> tuple[list[Any], Callable[[int], str]]:
    """The rows of *payload* and how a message names row *i* ("" for a single object)."""
    if isinstance(payload, dict):
        return [payload], lambda index: ""
    if not isinstance(payload, list):
        raise InvalidInput(
            f"expected a JSON object of features or a list of them, got {describe(payload)}"
        )
    if not payload:
        raise InvalidInput("expected at least one row, got an empty list")
    if len(payload) > max_rows:
        raise PayloadTooLarge(f"{len(payload)} rows is over the limit of {max_rows} per request")
    return payload, "row {}: ".format


def encode_result(
    prediction: Prediction, manifest: ModelManifest, *, labels: bool = False
) -> dict[str, Any]:
    """Build the tutorial's ``{"result": [...]}``, with optional extras.

    ``probabilities`` (one list per row, in class order) is added when the
    prediction carries them; ``labels`` (class names) when *labels* is true.
    """
    body: dict[str, Any] = {"result": prediction.predictions.tolist()}
    if prediction.probabilities is not None:
        body["probabilities"] = prediction.probabilities.tolist()
    if labels:
        body["labels"] = class_names_of(body["result"], manifest)
    return body


def require_classes(manifest: ModelManifest) -> None:
    """:raises InvalidInput: the model is a regressor, which has no class labels."""
    if manifest.task != "classification":
        raise InvalidInput(f"model {manifest.name!r} is a regression model: it has no class labels")


def class_names_of(predictions: list[Any], manifest: ModelManifest) -> list[str]:
    """Map predicted class labels to the manifest's class names.

    :raises InvalidInput: the model is a regressor, which has no classes.
    """
    require_classes(manifest)
    names = dict(zip(manifest.labels, manifest.class_names, strict=True))
    return [names.get(p, str(p)) for p in predictions]


def check_names(
    given: Sequence[str], names: Sequence[str], where: str, *, unknown_kind: str = "feature"
) -> None:
    """:raises InvalidInput: *given* lacks some of *names* or has others; all are named."""
    missing = [n for n in names if n not in given]
    unknown = [k for k in given if k not in names]
    problems = []
    if missing:
        problems.append(f"missing feature(s) {', '.join(map(repr, missing))}")
    if unknown:
        problems.append(f"unknown {unknown_kind}(s) {', '.join(map(repr, unknown))}")
    if problems:
        raise InvalidInput(f"{where}{'; '.join(problems)} (expected: {', '.join(names)})")


_NUMBER_TYPES = frozenset({float, int})  # exact types: bool is an int subclass, True never 1.0
_FEW_CELLS = 64


def _cells(payload: list[Any], names: Sequence[str], where: Callable[[int], str]) -> list[Any]:
    """Every cell, row after row, in feature order; the rows' shape and keys checked."""
    first_kind = type(payload[0])
    width = len(names)
    if first_kind is dict:
        expected = frozenset(names)
        for index, row in enumerate(payload):
            if type(row) is not dict:
                _wrong_row(row, index, first_kind, where)
            if row.keys() != expected:  # compared in C: no loop over the names per row
                check_names(list(row), names, where(index))
        return [row[n] for row in payload for n in names]
    if first_kind is list:
        for index, row in enumerate(payload):
            if type(row) is not list:
                _wrong_row(row, index, first_kind, where)
            if len(row) != width:
                raise InvalidInput(
                    f"{where(index)}expected {width} values ({', '.join(names)}), got {len(row)}"
                )
        return [cell for row in payload for cell in row]
    _wrong_row(payload[0], 0, first_kind, where)
    raise AssertionError("unreachable")  # pragma: no cover


def _finite_rows(cells: list[Any], shape: tuple[int, int]) -> np.ndarray | None:
    """Numbers as a float64 matrix if every one is finite in float64, else ``None``."""
    try:
        if len(cells) <= _FEW_CELLS:  # a row or two: math's check costs less than numpy's call
            finite = all(map(math.isfinite, cells))
            return np.array(cells, dtype=np.float64).reshape(shape) if finite else None
        rows = np.array(cells, dtype=np.float64).reshape(shape)
    except OverflowError:  # an int past float64's range
        return None
    return rows if np.isfinite(rows).all() else None


def _wrong_row(row: Any, index: int, first_kind: type, where: Callable[[int], str]) -> None:
    expected = "an object of features" if first_kind is dict else "an array of numbers"
    if first_kind not in (dict, list):
        expected = "an object of features or an array of numbers"
    raise InvalidInput(f"{where(index)}expected {expected} like row 0, got {describe(row)}")


def _checked_rows(
    cells: list[Any], names: Sequence[str], where: Callable[[int], str]
) -> np.ndarray:
    """The rows, cell by cell: slow, but the error names the first cell that is not a number.

    :raises InvalidInput: a cell is not a finite float64.
    """
    width = len(names)
    values = [
        _number(value, f"{where(position // width)}feature {names[position % width]!r}")
        for position, value in enumerate(cells)
    ]
    return np.array(values, dtype=np.float64).reshape(-1, width)


def _number(value: Any, where: str) -> float:
    # bool is an int subclass: check the exact type so true never becomes 1.0
    if type(value) is float:
        if math.isfinite(value):
            return value
        raise InvalidInput(
            f"{where}: expected a finite number, got {value!r} (out of float64 range)"
        )
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            raise InvalidInput(f"{where}: number too large for float64") from None
    raise InvalidInput(f"{where}: expected a number, got {describe(value)}")
