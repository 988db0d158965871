"""Input columns to what the model takes, with a reason for every cell that does not fit.

The rules are the HTTP API's. For a model of numbers (:func:`decode_features`)
every feature must be a finite number; text cells (all of CSV, string columns
of Parquet) may have surrounding spaces; ``nan``, ``inf`` and numbers beyond
float64's range are refused like text. A model with text, boolean or missing
cells (:func:`decode_typed`) has each cell checked as
:func:`flaskserve.schema.typed_column` checks a JSON value: Parquet's own types
and nulls are kept, and a text cell is read as its feature's type
(:func:`flaskserve.codecs.mlflow.parse_cell`), an empty CSV cell being a missing one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..artifact import Feature, ModelManifest
from ..codecs.mlflow import parse_cell
from ..errors import InvalidInput
from ..schema import Table, columns_input, describe, typed_column

#: what a text cell must look like, a subset of what Arrow's float parser takes
_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


def decode_features(
    table: Any, features: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Read *features* of an Arrow table as a ``(rows, features)`` float64 matrix.

    :returns: the matrix of the valid rows only, a boolean mask of the valid
        rows, and ``(row, reason)`` for the others, in row order. A reason names
        every bad field of its row: ``column 'x': expected a number, got ...``.
    """
    matrix = np.empty((table.num_rows, len(features)), dtype=np.float64)
    problems: dict[int, list[str]] = {}
    for j, name in enumerate(features):
        matrix[:, j], bad = _decode_column(table.column(name))
        for i, reason in bad:
            problems.setdefault(i, []).append(f"column {name!r}: {reason}")
    valid = np.ones(table.num_rows, dtype=bool)
    if not problems:
        return matrix, valid, []
    valid[list(problems)] = False
    reasons = [(i, "; ".join(problems[i])) for i in sorted(problems)]
    return matrix[valid], valid, reasons


def takes_typed_cells(manifest: ModelManifest) -> bool:
    """Whether *manifest*'s cells are typed: a frame, or numbers that may be missing."""
    return manifest.input != "matrix" or any(f.nullable for f in manifest.features)


def decode_typed(
    table: Any, manifest: ModelManifest, *, empty_is_missing: bool
) -> tuple[np.ndarray | Table, np.ndarray, list[tuple[int, str]]]:
    """Read *manifest*'s features of an Arrow table as the model takes them.

    :param empty_is_missing: an empty text cell is a missing one (CSV); else it is
        the empty string (Parquet keeps its nulls apart).
    :returns: the valid rows (a float64 matrix or a :class:`~flaskserve.schema.Table`),
        a boolean mask of the valid rows, and ``(row, reason)`` for the others, in
        row order; a reason names every bad field of its row, ``column 'x': ...``.
    """
    cells = [_cells(table.column(f.name), f, empty_is_missing) for f in manifest.features]
    typed: list[np.ndarray] = []
    problems: dict[int, list[str]] = {}
    for feature, column in zip(manifest.features, cells, strict=True):
        array, bad = _typed_column(feature, column)
        typed.append(array)
        for i, reason in bad:
            problems.setdefault(i, []).append(f"column {feature.name!r}: {reason}")
    valid = np.ones(table.num_rows, dtype=bool)
    if not problems:
        if manifest.input == "matrix":
            return np.column_stack(typed).astype(np.float64, copy=False), valid, []
        return Table(manifest.features, tuple(typed)), valid, []
    valid[list(problems)] = False
    keep = np.flatnonzero(valid).tolist()
    rows = columns_input(manifest, [[c[i] for i in keep] for c in cells], _nowhere)
    return rows, valid, [(i, "; ".join(problems[i])) for i in sorted(problems)]


def _cells(column: Any, feature: Feature, empty_is_missing: bool) -> list[Any]:
    """A column's cells as the JSON values :func:`typed_column` checks."""
    import pyarrow as pa
    import pyarrow.types as pat

    if pat.is_string(column.type) or pat.is_large_string(column.type):
        return [
            parse_cell(feature, v, empty_is_missing=empty_is_missing) for v in column.to_pylist()
        ]
    if pat.is_decimal(column.type):
        column = column.cast(pa.float64())
    return column.to_pylist()  # type: ignore[no-any-return]


def _typed_column(feature: Feature, cells: list[Any]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """The column, or the reason of every cell that does not fit (errors are rare)."""
    try:
        return typed_column(feature, cells, _nowhere), []
    except InvalidInput:
        pass
    prefix = f"feature {feature.name!r}: "
    bad = []
    for i, cell in enumerate(cells):
        try:
            typed_column(feature, [cell], _nowhere)
        except InvalidInput as e:
            bad.append((i, e.message.removeprefix(prefix)))
    return np.empty(0), bad


def _nowhere(index: int) -> str:
    return ""


def _decode_column(column: Any) -> tuple[np.ndarray, list[tuple[int, str]]]:
    import pyarrow.types as pat

    if pat.is_string(column.type) or pat.is_large_string(column.type):
        return _decode_text(column)
    return _decode_numbers(column)


def _decode_numbers(column: Any) -> tuple[np.ndarray, list[tuple[int, str]]]:
    import pyarrow as pa

    # unsafe: an int64 beyond 2**53 is rounded, as float(value) would round it
    values = column.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(~np.isfinite(values))
    nulls = column.is_null().to_numpy(zero_copy_only=False) if column.null_count else None
    reasons = []
    for i in bad.tolist():
        if nulls is not None and nulls[i]:
            reasons.append((i, "expected a number, got null"))
        else:
            reasons.append((i, f"expected a finite number, got {float(values[i])!r}"))
    return values, reasons


def _decode_text(column: Any) -> tuple[np.ndarray, list[tuple[int, str]]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.utf8_trim_whitespace(column)
    try:
        numbers = text.cast(pa.float64())
        parsed = None  # every non-null cell is a number (maybe nan or inf)
    except pa.ArrowInvalid:  # some cell is not a number: cast only those that look like one
        parsed = pc.fill_null(pc.match_substring_regex(text, _NUMBER), False)
        numbers = pc.if_else(parsed, text, "nan").cast(pa.float64())
    values = numbers.to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(~np.isfinite(values))
    if not len(bad):
        return values, []
    cells = column.take(pa.array(bad)).to_pylist()
    looked_numeric = parsed.take(pa.array(bad)).to_pylist() if parsed is not None else None
    reasons = []
    for k, (i, cell) in enumerate(zip(bad.tolist(), cells, strict=True)):
        numeric = looked_numeric[k] if looked_numeric is not None else cell is not None
        reasons.append((i, _text_reason(cell, numeric)))
    return values, reasons


def _text_reason(cell: str | None, numeric: bool) -> str:
    if cell is None:
        return "expected a number, got null"
    if not cell.strip():
        return "expected a number, got an empty cell"
    if numeric or cell.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
        return f"expected a finite number, got {describe(cell)}"
    return f"expected a number, got {describe(cell)}"
