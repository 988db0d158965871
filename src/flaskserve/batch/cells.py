"""Input columns to a float64 matrix, with a reason for every cell that is not a number.

The rules are the HTTP API's: every feature must be a finite number. Text
cells (all of CSV, string columns of Parquet) may have surrounding spaces;
``nan``, ``inf`` and numbers beyond float64's range are refused like text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..codecs.records import describe

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
