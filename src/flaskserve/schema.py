"""Typed features: what a cell of each kind may hold, and the columns a typed model takes.

A model fitted on a pandas DataFrame with text, categorical or boolean columns
(a scikit-learn ``Pipeline`` with a ``ColumnTransformer``, a
``HistGradientBoosting*`` on ``category`` columns) takes its rows as a
:class:`Table`, one array per feature, which the runtime turns into the
DataFrame the model was fitted on. A model of numbers only takes a float64
matrix, as it always has. The codecs decode cells with :func:`typed_column`
so that every surface applies the same rules (docs/typing.md):

- ``number``: a JSON number (not a boolean); ``null`` where the feature may be missing;
- ``integer``: a whole number; ``null`` makes the column float64, as pandas would;
- ``boolean``: ``true`` or ``false``;
- ``text``: a string; ``null`` where it may be missing; a category the model does
  not know is refused where the model refuses it (the manifest says which).

Nothing here imports pandas until a DataFrame is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .artifact import Feature, ModelManifest
from .errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

#: the manifest's dtype -> the kind of JSON value a cell holds
_KINDS = {
    "float64": "number",
    "float32": "number",
    "int64": "integer",
    "int32": "integer",
    "int16": "integer",
    "int8": "integer",
    "uint8": "integer",
    "uint16": "integer",
    "uint32": "integer",
    "bool": "boolean",
    "str": "text",
    "string": "text",
    "object": "text",
    "category": "text",
}
#: the most categories one feature lists in the manifest; past it the feature is free text
MAX_CATEGORIES = 1000
_SHOWN_CATEGORIES = 10


def kind_of(feature: Feature) -> str:
    """``number``, ``integer``, ``boolean`` or ``text``."""
    return _KINDS.get(feature.dtype, "number")


@dataclass(frozen=True, eq=False)
class Table:
    """A batch of typed rows: one array per feature, in the manifest's order."""

    features: tuple[Feature, ...]
    columns: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.columns[0])

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def take(self, rows: np.ndarray | slice) -> Table:
        """The rows selected by *rows* (a boolean mask, indices or a slice)."""
        return Table(self.features, tuple(c[rows] for c in self.columns))

    def concat(self, *others: Table) -> Table:
        """These rows, then *others*' (tables of the same features)."""
        parts = [self, *others]
        return Table(
            self.features,
            tuple(np.concatenate([t.columns[j] for t in parts]) for j in range(len(self.columns))),
        )

    def to_frame(self) -> pd.DataFrame:
        """The DataFrame the model was fitted on: same columns, order and dtypes."""
        import pandas as pd

        arrays = [_pandas_array(f, c) for f, c in zip(self.features, self.columns, strict=True)]
        from_arrays = getattr(pd.DataFrame, "_from_arrays", None)
        if from_arrays is None:  # a pandas without it (private API): the public way, slower
            return pd.DataFrame(dict(zip(self.names, arrays, strict=True)), copy=False)
        # 50-70 us for a row, against 130 for DataFrame(dict): the arrays are already typed
        return from_arrays(
            arrays, columns=self.names, index=pd.RangeIndex(len(self)), verify_integrity=False
        )

    def rows(self) -> list[list[Any]]:
        """The cells as JSON values, row by row (``None`` for a missing cell)."""
        return [list(row) for row in zip(*(_json_cells(c) for c in self.columns), strict=True)]


def _pandas_array(feature: Feature, column: np.ndarray) -> Any:
    if feature.dtype != "category":
        return column
    import pandas as pd

    categories = feature.categories or ()
    codes = _category_codes(categories)
    # an unknown category is a missing one, as HistGradientBoosting treats it
    indices = np.fromiter((codes.get(v, -1) for v in column), dtype=np.int64, count=len(column))
    return pd.Categorical.from_codes(indices, categories=list(categories))


_CODES: dict[tuple[str, ...], dict[str, int]] = {}


def _category_codes(categories: tuple[str, ...]) -> dict[str, int]:
    codes = _CODES.get(categories)
    if codes is None:
        codes = _CODES[categories] = {c: i for i, c in enumerate(categories)}
    return codes


def _json_cells(column: np.ndarray) -> list[Any]:
    return [None if _missing(v) else v for v in column.tolist()]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def typed_column(feature: Feature, cells: Sequence[Any], where: Callable[[int], str]) -> np.ndarray:
    """Check *cells* (JSON values) against *feature* and build its column.

    :param where: the prefix naming row *i* in a message (``"row 3: "``, or ``""``).
    :raises InvalidInput: a cell does not fit; the message names its row and feature.
    """
    kind = kind_of(feature)
    check = _CHECKS[kind]
    try:
        values = [check(feature, cell) for cell in cells]
    except _Unfit:  # walk again to find the first cell that does not fit: errors are rare
        for index, cell in enumerate(cells):
            try:
                check(feature, cell)
            except _Unfit as e:
                raise InvalidInput(f"{where(index)}feature {feature.name!r}: {e}") from None
        raise AssertionError("unreachable") from None  # pragma: no cover
    if kind == "text":
        return np.array(values, dtype=object)
    if kind == "boolean":
        return np.array(values, dtype=bool)
    if kind == "integer" and None not in values:
        return np.array(values, dtype=np.int64)
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


class _Unfit(ValueError):
    """A cell that does not fit its feature; the message says why."""


def _null(feature: Feature) -> None:
    if not feature.nullable:
        raise _Unfit("may not be missing (null); the model needs a value")


def _number(feature: Feature, cell: Any) -> float | None:
    kind = type(cell)
    if kind is float:
        if math.isfinite(cell):
            return cell  # type: ignore[no-any-return]
        raise _Unfit(f"expected a finite number, got {cell!r}")
    if kind is int:
        try:
            return float(cell)
        except OverflowError:
            raise _Unfit("number too large for float64") from None
    if cell is None:
        _null(feature)
        return None
    raise _Unfit(f"expected a number, got {describe(cell)}")


def _integer(feature: Feature, cell: Any) -> int | None:
    if type(cell) is int:
        if -(2**63) <= cell < 2**63:
            return int(cell)
        raise _Unfit("integer out of the int64 range")
    if type(cell) is float and cell.is_integer() and abs(cell) < 2**53:
        return int(cell)  # pandas writes an int column with a missing cell as floats
    if cell is None:
        _null(feature)
        return None
    raise _Unfit(f"expected an integer, got {describe(cell)}")


def _boolean(feature: Feature, cell: Any) -> bool:
    if type(cell) is bool:
        return cell
    if cell is None:
        _null(feature)
    raise _Unfit(f"expected true or false, got {describe(cell)}")


def _text(feature: Feature, cell: Any) -> Any:
    if type(cell) is str:
        if feature.unknown_categories == "refused" and cell not in _known(feature):
            raise _Unfit(unknown_category(feature, cell))
        return cell
    if cell is None:
        _null(feature)
        return math.nan  # what pandas and scikit-learn's imputers take as missing text
    raise _Unfit(f"expected text, got {describe(cell)}")


def unknown_category(feature: Feature, value: str) -> str:
    """Why a category the model refuses is refused."""
    categories = feature.categories or ()
    shown = ", ".join(map(repr, categories[:_SHOWN_CATEGORIES]))
    more = len(categories) - _SHOWN_CATEGORIES
    listed = f"{shown} and {more} more" if more > 0 else shown
    return f"{describe(value)} is not a category the model knows (one of {listed})"


_KNOWN: dict[tuple[str, ...], frozenset[str]] = {}


def _known(feature: Feature) -> frozenset[str]:
    categories = feature.categories or ()
    known = _KNOWN.get(categories)
    if known is None:
        known = _KNOWN[categories] = frozenset(categories)
    return known


def describe(value: Any) -> str:
    """Name a JSON value's type the way a client would, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return f"number {value!r}"


_CHECKS: dict[str, Callable[[Feature, Any], Any]] = {
    "number": _number,
    "integer": _integer,
    "boolean": _boolean,
    "text": _text,
}


def columns_input(
    manifest: ModelManifest, columns: Sequence[Sequence[Any]], where: Callable[[int], str]
) -> np.ndarray | Table:
    """What the model takes, from one list of JSON cells per feature (manifest order).

    A ``matrix`` model gets a float64 matrix (``NaN`` for a missing cell); a ``frame``
    model a :class:`Table`.

    :raises InvalidInput: a cell does not fit its feature.
    """
    features = manifest.features
    typed = [typed_column(f, cells, where) for f, cells in zip(features, columns, strict=True)]
    if manifest.input == "matrix":
        return np.column_stack(typed).astype(np.float64, copy=False)
    return Table(features, tuple(typed))


def rows_input(
    manifest: ModelManifest, rows: Sequence[Sequence[Any]], where: Callable[[int], str]
) -> np.ndarray | Table:
    """:func:`columns_input` from rows of cells in feature order."""
    width = len(manifest.features)
    return columns_input(manifest, [[row[j] for row in rows] for j in range(width)], where)
