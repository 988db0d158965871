"""MLflow's scoring-server formats, for clients written against ``/invocations``.

A JSON body wraps its rows in exactly one of four keys (MLflow's "Deploy MLflow
Model as a Local Inference Server" docs)::

    {"dataframe_split": {"columns": ["sepal_length", ...], "data": [[5.1, ...], ...]}}
    {"dataframe_records": [{"sepal_length": 5.1, ...}, ...]}
    {"instances": [...]}   or   {"inputs": [...]}    (TF Serving's row or columnar form)

A CSV body is a header row naming the features, then one line per row.
For a model of numbers, every cell is held to :func:`records.decode_rows`'
rules: a finite number, never coerced. A model with text, boolean or missing
cells (docs/typing.md) takes the bodies pandas writes: ``null`` or an empty
CSV cell is a missing one, a CSV cell of a text feature is text, and every
cell is checked with :func:`flaskserve.schema.typed_column`. Where MLflow is
lenient (it drops columns the model does not know, and passes ``params`` on to
models that may ignore them) flaskserve refuses with a 400 naming the problem,
so a typo cannot silently change an answer.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, overload

import numpy as np

from ..artifact import Feature, ModelManifest
from ..errors import InvalidInput, PayloadTooLarge
from ..runtime.base import Prediction
from ..schema import Table, columns_input, describe, kind_of
from .records import check_names, decode_records, decode_rows

#: the model a body is decoded for: its manifest, or (a model of numbers) its feature names
Model = ModelManifest | Sequence[str]

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_SPLIT_KEYS = ("columns", "data", "index")
# what a CSV cell may hold: plain decimal notation, no 'nan', 'inf', '1_000' or hex
# linear (no nested quantifiers to backtrack through) and ASCII digits only, like JSON numbers
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_BOOLEANS = {"true": True, "false": False}
_LONGEST_INTEGER = 40  # digits; int() of thousands of digits is slow, and refused


@overload
def decode_json(payload: Any, model: Sequence[str], max_rows: int) -> np.ndarray: ...
@overload
def decode_json(payload: Any, model: ModelManifest, max_rows: int) -> np.ndarray | Table: ...
def decode_json(payload: Any, model: Model, max_rows: int) -> np.ndarray | Table:
    """Turn a parsed MLflow JSON request into what the model takes.

    ``dataframe_split`` columns and ``inputs``/``instances`` columns may come
    in any order; the result follows the model's features. Columns that are not
    features are refused (MLflow would silently drop them), as is a
    non-empty ``params`` (scikit-learn models take none).

    :param payload: the parsed body, a JSON object with one format key.
    :param model: the model's manifest: a ``(rows, features)`` float64 matrix for a
        ``matrix`` model, a :class:`~flaskserve.schema.Table` for a ``frame`` one;
        or its feature names, for a model of numbers (a matrix).
    :param max_rows: the batch limit.
    :raises InvalidInput: an unknown, missing or repeated key, a column that is
        missing or not a feature, a ragged row, a cell that does not fit its
        feature, ``params``; the message names the key, column and row.
    :raises PayloadTooLarge: more rows than *max_rows*.
    """
    key = _format_key(payload)
    with _within(key):
        if key == "dataframe_split":
            return _decode_split(payload[key], model, max_rows)
        if key == "dataframe_records":
            return _decode_records(payload[key], model, max_rows)
        return _decode_tensor(payload[key], model, max_rows)


@overload
def decode_csv(body: bytes, model: Sequence[str], max_rows: int) -> np.ndarray: ...
@overload
def decode_csv(body: bytes, model: ModelManifest, max_rows: int) -> np.ndarray | Table: ...
def decode_csv(body: bytes, model: Model, max_rows: int) -> np.ndarray | Table:
    """Turn a ``text/csv`` body into what the model takes (see :func:`decode_json`).

    The body is UTF-8 (a BOM is allowed). The first row names the features in
    any order (surrounding spaces are ignored); every later non-blank line is
    one row. For a model of numbers every cell is a decimal number; for a typed
    model a cell is read as its feature's type (:func:`parse_cell`), and an
    empty cell is a missing one.

    :param body: the raw request body.
    :param model: the model's manifest, or the feature names of a model of numbers.
    :param max_rows: the batch limit.
    :raises InvalidInput: not UTF-8 or not CSV, a header with missing, unknown
        or repeated names, no data rows, a ragged line, a cell that does not fit
        its feature (a model of numbers: empty, text, ``nan`` or ``inf``); the
        message names the line and column.
    :raises PayloadTooLarge: more data rows than *max_rows*.
    """
    names = _names_of(model)
    with _within("CSV"):
        header, lines = _read_csv(body)
        _column_names(header, "header")
        _check_columns(header, names, "header: ")
        if not lines:
            raise InvalidInput("expected at least one data row after the header")
        if len(lines) > max_rows:
            raise PayloadTooLarge(f"{len(lines)} rows is over the limit of {max_rows} per request")
        manifest = _typed(model)
        if manifest is not None:
            return _typed_csv(header, lines, manifest)
        matrix = np.array([_csv_row(n, row, header) for n, row in lines], dtype=np.float64)
        return _reorder(matrix, header, names)


def parse_cell(feature: Feature, cell: str | None, *, empty_is_missing: bool = True) -> Any:
    """A text cell (CSV) as the JSON value :func:`~flaskserve.schema.typed_column` checks.

    A text feature's cell stays text; a number's or an integer's is parsed where it
    is a decimal number; a boolean's ``true``/``false`` (any case, as pandas writes
    ``True``) becomes one. A cell that does not parse is passed on as text, to be
    refused by name. ``None``, and an empty (or, for a number, blank) cell, are
    missing; a text feature's empty cell only where *empty_is_missing*.
    """
    if cell is None:
        return None
    kind = kind_of(feature)
    if kind == "text":
        return None if empty_is_missing and not cell else cell
    text = cell.strip()
    if not text:
        return None
    if kind == "boolean":
        return _BOOLEANS.get(text.lower(), cell)
    if len(text) <= _LONGEST_INTEGER and _INTEGER.fullmatch(text):
        return int(text)  # exact: an int64 past 2**53 is not rounded
    if _DECIMAL.fullmatch(text):
        return float(text)
    return cell


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


def _names_of(model: Model) -> Sequence[str]:
    return model.feature_names if isinstance(model, ModelManifest) else model


def _typed(model: Model) -> ModelManifest | None:
    """The manifest if its cells are typed; ``None`` for numbers that are never missing."""
    if not isinstance(model, ModelManifest):
        return None
    if model.plain_numbers:
        return None
    return model


def _rows(
    data: list[Any], columns: Sequence[str], model: Model, max_rows: int
) -> np.ndarray | Table:
    """Rows (arrays in *columns*' order, or objects) as the model takes them, in its order."""
    names = _names_of(model)
    manifest = _typed(model)
    if manifest is None:
        return _reorder(decode_rows(data, columns, max_rows), columns, names)
    if tuple(columns) != tuple(names):
        by_name = {f.name: f for f in manifest.features}
        manifest = replace(manifest, features=tuple(by_name[c] for c in columns))
    return _reorder(decode_records(data, manifest, max_rows), columns, names)


def _decode_split(split: Any, model: Model, max_rows: int) -> np.ndarray | Table:
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
    names = _names_of(model)
    if "columns" not in split:  # positional, like a bare array of rows
        return _rows(data, names, model, max_rows)
    columns = _column_names(split["columns"], "'columns'")
    _check_columns(columns, names, "'columns': ")
    return _rows(data, columns, model, max_rows)


def _check_index(index: Any, rows: int) -> None:
    # the index only labels rows; it is checked so a truncated 'data' is noticed
    if isinstance(index, list) and len(index) == rows:
        return
    got = f"{len(index)} labels" if isinstance(index, list) else describe(index)
    raise InvalidInput(f"'index': expected an array of {rows} labels, one per row, got {got}")


def _decode_records(records: Any, model: Model, max_rows: int) -> np.ndarray | Table:
    if not isinstance(records, list):
        raise InvalidInput(f"expected an array of objects, got {describe(records)}")
    if records and not isinstance(records[0], dict):
        raise InvalidInput(
            f"row 0: expected an object of features, got {describe(records[0])} "
            "(send positional rows under 'inputs' or 'dataframe_split')"
        )
    return _rows(records, _names_of(model), model, max_rows)


def _decode_tensor(value: Any, model: Model, max_rows: int) -> np.ndarray | Table:
    names = _names_of(model)
    if isinstance(value, dict):
        return _decode_columns(value, model, max_rows)
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
    return _rows(value, names, model, max_rows)


def _decode_columns(columns: dict[str, Any], model: Model, max_rows: int) -> np.ndarray | Table:
    """TF Serving's columnar form: ``{"feature": [value per row], ...}``."""
    names = _names_of(model)
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
    return _rows(rows, names, model, max_rows)


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


def _reorder(
    rows: np.ndarray | Table, columns: Sequence[str], names: Sequence[str]
) -> np.ndarray | Table:
    """*rows* (a matrix or a Table) with its columns in *names*' order."""
    if tuple(columns) == tuple(names):
        return rows
    position = {column: index for index, column in enumerate(columns)}
    order = [position[name] for name in names]
    if isinstance(rows, Table):
        return Table(tuple(rows.features[i] for i in order), tuple(rows.columns[i] for i in order))
    return rows[:, order]


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


def _typed_csv(
    header: Sequence[str], lines: list[tuple[int, list[str]]], manifest: ModelManifest
) -> np.ndarray | Table:
    for line, row in lines:
        _check_width(line, row, header)
    position = {column: index for index, column in enumerate(header)}
    columns = [
        [parse_cell(feature, row[position[feature.name]]) for _, row in lines]
        for feature in manifest.features
    ]
    return columns_input(manifest, columns, lambda index: f"line {lines[index][0]}: ")


def _check_width(line: int, row: list[str], header: Sequence[str]) -> None:
    if len(row) != len(header):
        raise InvalidInput(
            f"line {line}: expected {len(header)} values ({', '.join(header)}), got {len(row)}"
        )


def _csv_row(line: int, row: list[str], header: Sequence[str]) -> list[float]:
    _check_width(line, row, header)
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
