"""MLflow's scoring-server formats, for clients written against ``/invocations``.

A JSON body wraps its rows in exactly one of four keys (MLflow's "Deploy MLflow
Model as a Local Inference Server" docs)::

    {"dataframe_split": {"columns": ["sepal_length", ...], "data": [[5.1, ...], ...]}}
    {"dataframe_records": [{"sepal_length": 5.1, ...}, ...]}
    {"instances": [...]}   or   {"inputs": [...]}    (TF Serving's row or columnar form)

A CSV body is a header row naming the features, then one line per row.
Every cell is held to :func:`records.decode_rows`' rules: a finite number,
never coerced. Where MLflow is lenient (it drops columns the model does not
know, and passes ``params`` on to models that may ignore them) flaskserve
refuses with a 400 naming the problem, so a typo cannot silently change an answer.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import InvalidInput, PayloadTooLarge
from ..runtime.base import Prediction
from .records import check_names, decode_rows, describe

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_SPLIT_KEYS = ("columns", "data", "index")
# what a CSV cell may hold: plain decimal notation, no 'nan', 'inf', '1_000' or hex
# linear (no nested quantifiers to backtrack through) and ASCII digits only, like JSON numbers
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def decode_json(payload: Any, feature_names: Sequence[str], max_rows: int) -> np.ndarray:
    """Turn a parsed MLflow JSON request into a ``(rows, features)`` float64 matrix.

    ``dataframe_split`` columns and ``inputs``/``instances`` columns may come
    in any order; the result follows *feature_names*. Columns that are not
    features are refused (MLflow would silently drop them), as is a
    non-empty ``params`` (scikit-learn models take none).

    :param payload: the parsed body, a JSON object with one format key.
    :param feature_names: the model's features, in column order.
    :param max_rows: the batch limit.
    :raises InvalidInput: an unknown, missing or repeated key, a column that is
        missing or not a feature, a ragged row, a cell that is not a finite
        number, ``params``; the message names the key, column and row.
    :raises PayloadTooLarge: more rows than *max_rows*.
    """
    key = _format_key(payload)
    with _within(key):
        if key == "dataframe_split":
            return _decode_split(payload[key], feature_names, max_rows)
        if key == "dataframe_records":
            return _decode_records(payload[key], feature_names, max_rows)
        return _decode_tensor(payload[key], feature_names, max_rows)


def decode_csv(body: bytes, feature_names: Sequence[str], max_rows: int) -> np.ndarray:
    """Turn a ``text/csv`` body into a ``(rows, features)`` float64 matrix.

    The body is UTF-8 (a BOM is allowed). The first row names the features in
    any order (surrounding spaces are ignored); every later non-blank line is
    one row of decimal numbers. The result follows *feature_names*.

    :param body: the raw request body.
    :param feature_names: the model's features, in column order.
    :param max_rows: the batch limit.
    :raises InvalidInput: not UTF-8 or not CSV, a header with missing, unknown
        or repeated names, no data rows, a ragged line, a cell that is empty,
        text, ``nan`` or ``inf``; the message names the line and column.
    :raises PayloadTooLarge: more data rows than *max_rows*.
    """
    with _within("CSV"):
        header, lines = _read_csv(body)
        _column_names(header, "header")
        _check_columns(header, feature_names, "header: ")
        if not lines:
            raise InvalidInput("expected at least one data row after the header")
        if len(lines) > max_rows:
            raise PayloadTooLarge(f"{len(lines)} rows is over the limit of {max_rows} per request")
        matrix = np.array([_csv_row(n, row, header) for n, row in lines], dtype=np.float64)
        return _reorder(matrix, header, feature_names)


def encode_predictions(prediction: Prediction) -> dict[str, Any]:
    """Build MLflow's ``{"predictions": [...]}``; ints and strings keep their type."""
    return {"predictions": prediction.predictions.tolist()}


def _format_key(payload: Any) -> str:
    accepted = ", ".join(FORMATS)
    if not isinstance(payload, dict):
        hint = ' (wrap it: {"inputs": [...]})' if isinstance(payload, list) else ""
        raise InvalidInput(
            f"expected a JSON object with one of the keys {accepted}, got {describe(payload)}{hint}"
        )
    unknown = [k for k in payload if k not in (*FORMATS, "params")]
    if unknown:
        raise InvalidInput(
            f"unknown key(s) {_names(unknown)}: expected one of {accepted}, and optionally params"
        )
    present = [k for k in FORMATS if k in payload]
    if len(present) != 1:
        got = f"got {len(present)}: {_names(present)}" if present else "got none"
        raise InvalidInput(f"expected exactly one of the keys {accepted}, {got}")
    if "params" in payload:
        _check_params(payload["params"])
    return present[0]


def _check_params(params: Any) -> None:
    if isinstance(params, dict) and not params:
        return
    got = f"got {_names(params)}" if isinstance(params, dict) else f"got {describe(params)}"
    raise InvalidInput(
        f"params are not supported by scikit-learn models: {got} (send no params, or {{}})"
    )


@contextmanager
def _within(where: str) -> Iterator[None]:
    """Prefix any :class:`InvalidInput` raised inside with *where*."""
    try:
        yield
    except InvalidInput as e:
        raise InvalidInput(f"{where}: {e.message}") from e


def _decode_split(split: Any, names: Sequence[str], max_rows: int) -> np.ndarray:
    if not isinstance(split, dict):
        raise InvalidInput(f"expected an object with 'columns' and 'data', got {describe(split)}")
    unknown = [k for k in split if k not in _SPLIT_KEYS]
    if unknown:
        raise InvalidInput(f"unknown key(s) {_names(unknown)} (expected: columns, data, index)")
    if "data" not in split:
        raise InvalidInput("missing 'data': expected an array of rows")
    data = split["data"]
    if not isinstance(data, list):
        raise InvalidInput(f"'data': expected an array of rows, got {describe(data)}")
    if data and not isinstance(data[0], list):
        raise InvalidInput(f"'data' row 0: expected an array of values, got {describe(data[0])}")
    if "index" in split:
        _check_index(split["index"], len(data))
    if "columns" not in split:  # positional, like a bare array of rows
        return decode_rows(data, names, max_rows)
    columns = _column_names(split["columns"], "'columns'")
    _check_columns(columns, names, "'columns': ")
    return _reorder(decode_rows(data, columns, max_rows), columns, names)


def _check_index(index: Any, rows: int) -> None:
    # the index only labels rows; it is checked so a truncated 'data' is noticed
    if isinstance(index, list) and len(index) == rows:
        return
    got = f"{len(index)} labels" if isinstance(index, list) else describe(index)
    raise InvalidInput(f"'index': expected an array of {rows} labels, one per row, got {got}")


def _decode_records(records: Any, names: Sequence[str], max_rows: int) -> np.ndarray:
    if not isinstance(records, list):
        raise InvalidInput(f"expected an array of objects, got {describe(records)}")
    if records and not isinstance(records[0], dict):
        raise InvalidInput(
            f"row 0: expected an object of features, got {describe(records[0])} "
            "(send positional rows under 'inputs' or 'dataframe_split')"
        )
    return decode_rows(records, names, max_rows)


def _decode_tensor(value: Any, names: Sequence[str], max_rows: int) -> np.ndarray:
    if isinstance(value, dict):
        return _decode_columns(value, names, max_rows)
    if not isinstance(value, list):
        raise InvalidInput(
            f"expected an array of rows or an object of columns, got {describe(value)}"
        )
    if value and not any(isinstance(v, (dict, list)) for v in value):
        if len(value) == len(names):
            raise InvalidInput(
                f"a flat array of {len(value)} values is ambiguous: "
                "wrap a single row in a list, [[...]]"
            )
        raise InvalidInput(
            f"expected an array of rows, got a flat array of {len(value)} values "
            f"(each row has {len(names)}: {', '.join(names)})"
        )
    return decode_rows(value, names, max_rows)


def _decode_columns(columns: dict[str, Any], names: Sequence[str], max_rows: int) -> np.ndarray:
    """TF Serving's columnar form: ``{"feature": [value per row], ...}``."""
    _check_columns(list(columns), names, "")
    for name in names:
        if not isinstance(columns[name], list):
            raise InvalidInput(
                f"column {name!r}: expected an array of values, got {describe(columns[name])}"
            )
    lengths = [len(columns[name]) for name in names]
    if len(set(lengths)) > 1:
        shown = ", ".join(f"{n}: {length}" for n, length in zip(names, lengths, strict=True))
        raise InvalidInput(f"columns must have the same length, got {shown}")
    rows = [list(row) for row in zip(*(columns[name] for name in names), strict=True)]
    return decode_rows(rows, names, max_rows)


def _column_names(columns: Any, where: str) -> list[str]:
    if not isinstance(columns, list):
        raise InvalidInput(f"{where}: expected an array of feature names, got {describe(columns)}")
    seen: set[str] = set()
    for position, name in enumerate(columns):
        if not isinstance(name, str):
            raise InvalidInput(
                f"{where}: expected feature names, got {describe(name)} at position {position}"
            )
        if name in seen:
            raise InvalidInput(f"{where}: {name!r} appears more than once")
        seen.add(name)
    return columns


def _check_columns(columns: Sequence[str], names: Sequence[str], where: str) -> None:
    check_names(columns, names, where, unknown_kind="column")


def _reorder(matrix: np.ndarray, columns: Sequence[str], names: Sequence[str]) -> np.ndarray:
    position = {column: index for index, column in enumerate(columns)}
    return matrix[:, [position[name] for name in names]]


def _read_csv(body: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Split *body* into the header and ``(line number, cells)`` for each data row."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"the body is not UTF-8 text ({e.reason})") from e
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = [(reader.line_num, row) for row in reader if row]  # pandas skips blank lines too
    except csv.Error as e:
        raise InvalidInput(f"line {reader.line_num}: invalid CSV ({e})") from e
    if not rows:
        raise InvalidInput("empty body: expected a header row naming the features")
    return [name.strip() for name in rows[0][1]], rows[1:]


def _csv_row(line: int, row: list[str], header: Sequence[str]) -> list[float]:
    if len(row) != len(header):
        raise InvalidInput(
            f"line {line}: expected {len(header)} values ({', '.join(header)}), got {len(row)}"
        )
    return [
        _csv_number(cell, f"line {line}, column {name!r}")
        for name, cell in zip(header, row, strict=True)
    ]


def _csv_number(cell: str, where: str) -> float:
    text = cell.strip()
    if not text:
        raise InvalidInput(f"{where}: expected a number, got an empty cell")
    if not _DECIMAL.fullmatch(text):
        raise InvalidInput(f"{where}: expected a finite number, got {describe(cell)}")
    value = float(text)
    if not math.isfinite(value):
        raise InvalidInput(
            f"{where}: expected a finite number, got {cell!r} (out of float64 range)"
        )
    return value


def _names(items: Sequence[str] | dict[str, Any]) -> str:
    return ", ".join(map(repr, items))
