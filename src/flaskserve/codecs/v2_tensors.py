"""Open Inference Protocol tensors whose headers were checked, turned into the model's rows.

:mod:`.v2` checks the request's keys and each tensor's header (and
:mod:`.v2_binary` fills in ``data`` sent as raw bytes); this module reads the
tensors' ``data``: its nesting against the shape, each value against the
datatype, and the layout (one combined input, or one input per feature).

A model of numbers that are never missing gets a float64 matrix straight from
the values. Any other (text, boolean or missing cells) has each value checked
against its datatype, then each cell against its feature with
:func:`flaskserve.schema.typed_column` (docs/typing.md), so the same rules hold
here as in ``/predict``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..artifact import Feature, ModelManifest
from ..errors import InvalidInput, PayloadTooLarge
from ..schema import Table, columns_input, describe, kind_of
from .dtypes import FLOAT_LIMITS, INT_RANGES, checked_array, value_converter

_NUMBERS = (*FLOAT_LIMITS, *INT_RANGES)
#: the datatypes that may carry each kind of feature, and what a message suggests
_DATATYPES_OF_KIND: dict[str, tuple[tuple[str, ...], str]] = {
    "text": (("BYTES",), "BYTES"),
    "boolean": (("BOOL",), "BOOL"),
    "number": (_NUMBERS, "FP64 (or another float or integer datatype)"),
    "integer": ((*INT_RANGES, *FLOAT_LIMITS), "INT64 (or another integer datatype)"),
}


@dataclass(frozen=True)
class Tensor:
    """An input whose header is valid; its data is not checked yet."""

    name: str
    shape: tuple[int, ...]
    datatype: str
    data: list[Any]
    #: the bytes it takes of the binary data after the JSON (``None``: its ``data`` is JSON)
    binary_size: int | None = None

    @property
    def where(self) -> str:
        return f"input {self.name!r}"


def tensor_input(
    tensors: list[Tensor], manifest: ModelManifest, max_rows: int
) -> np.ndarray | Table:
    """What *manifest*'s model takes, from the request's input tensors.

    :raises InvalidInput: a tensor's layout, shape, datatype or a value does not fit;
        the message names the input (and the row and feature).
    :raises PayloadTooLarge: more rows than *max_rows*.
    """
    names = manifest.feature_names
    if manifest.plain_numbers:
        return tensor_rows(tensors, names, max_rows)  # numbers only: the fast path
    if manifest.input == "matrix" and _is_combined(tensors, names):
        tensor = tensors[0]
        _check_combined_shape(tensor, names)
        _check_row_count(tensor, max_rows)
        values = _checked_cells(tensor, names)
        columns = [values[j :: len(names)] for j in range(len(names))]
    else:
        by_name = _per_feature(tensors, names, max_rows, combined=manifest.input == "matrix")
        for feature in manifest.features:
            _check_feature_datatype(by_name[feature.name], feature)
        columns = [_checked_cells(by_name[name], (name,)) for name in names]
    return columns_input(manifest, columns, "row {}: ".format)


def tensor_rows(tensors: list[Tensor], names: Sequence[str], max_rows: int) -> np.ndarray:
    """The float64 rows of a model of numbers that are never missing."""
    for tensor in tensors:
        if tensor.datatype == "BYTES":
            raise InvalidInput(
                f"{tensor.where}: datatype BYTES is not supported for numeric features; use FP64"
            )
    if _is_combined(tensors, names):
        return _combined_rows(tensors[0], names, max_rows)
    return _feature_rows(tensors, names, max_rows)


def _is_combined(tensors: list[Tensor], names: Sequence[str]) -> bool:
    # One input is the combined layout unless it is named after a feature and
    # shaped like one: then it is the per-feature layout with features missing.
    only = tensors[0]
    return len(tensors) == 1 and (only.name not in names or only.shape[1:] == (len(names),))


def _combined_rows(tensor: Tensor, names: Sequence[str], max_rows: int) -> np.ndarray:
    _check_combined_shape(tensor, names)
    _check_row_count(tensor, max_rows)
    return _floats(tensor, names).reshape(tensor.shape)


def _check_combined_shape(tensor: Tensor, names: Sequence[str]) -> None:
    if len(tensor.shape) != 2 or tensor.shape[1] != len(names):
        raise InvalidInput(
            f"{tensor.where}: expected shape [-1, {len(names)}] (rows of {', '.join(names)}),"
            f" got {list(tensor.shape)}"
        )


def _feature_rows(tensors: list[Tensor], names: Sequence[str], max_rows: int) -> np.ndarray:
    by_name = _per_feature(tensors, names, max_rows, combined=True)
    return np.column_stack([_floats(by_name[name], (name,)) for name in names])


def _per_feature(
    tensors: list[Tensor], names: Sequence[str], max_rows: int, *, combined: bool
) -> dict[str, Tensor]:
    """The inputs by feature: one for each, all of one length within *max_rows*."""
    by_name = {t.name: t for t in tensors}
    missing = [n for n in names if n not in by_name]
    unknown = [t.name for t in tensors if t.name not in names]
    if missing or unknown:
        problems = [f"missing feature input(s) {quoted(missing)}"] if missing else []
        problems += [f"unknown input(s) {quoted(unknown)}"] if unknown else []
        alternative = f"; or one input of shape [-1, {len(names)}]" if combined else ""
        raise InvalidInput(
            f"inputs: {'; '.join(problems)}"
            f" (expected one input per feature: {', '.join(names)}{alternative})"
        )
    first = by_name[names[0]]
    n = _column_length(first)
    _check_row_count(first, max_rows)
    for tensor in tensors:
        if _column_length(tensor) != n:
            raise InvalidInput(
                f"{tensor.where}: expected {n} rows like input {first.name!r},"
                f" got shape {list(tensor.shape)}"
            )
    return by_name


def _check_feature_datatype(tensor: Tensor, feature: Feature) -> None:
    kind = kind_of(feature)
    allowed, expected = _DATATYPES_OF_KIND[kind]
    if tensor.datatype not in allowed:
        raise InvalidInput(
            f"{tensor.where}: datatype {tensor.datatype} does not fit feature {feature.name!r}"
            f" ({kind}, {feature.dtype}); expected {expected}"
        )


def _column_length(tensor: Tensor) -> int:
    if len(tensor.shape) == 1 or (len(tensor.shape) == 2 and tensor.shape[1] == 1):
        return tensor.shape[0]
    raise InvalidInput(
        f"{tensor.where}: expected shape [-1] or [-1, 1] for one feature, got {list(tensor.shape)}"
    )


def _check_row_count(tensor: Tensor, max_rows: int) -> None:
    n = tensor.shape[0]
    if n == 0:
        raise InvalidInput(
            f"{tensor.where}: expected at least one row, got shape {list(tensor.shape)}"
        )
    if n > max_rows:
        raise PayloadTooLarge(f"{n} rows is over the limit of {max_rows} per request")


def _floats(tensor: Tensor, columns: Sequence[str]) -> np.ndarray:
    """The tensor's values as flat float64; each value named by row and feature on error."""
    values = _flat_values(tensor)
    checked = checked_array(values, tensor.datatype)
    if checked is not None:
        return checked
    convert = value_converter(tensor.datatype)
    width = len(columns)
    result = np.empty(len(values), dtype=np.float64)
    for index, value in enumerate(values):
        try:
            result[index] = convert(value, tensor.datatype)
        except ValueError as e:
            where = f"{tensor.where}: row {index // width}, feature {columns[index % width]!r}"
            raise InvalidInput(f"{where}: {e}") from e
    return result


def _checked_cells(tensor: Tensor, columns: Sequence[str]) -> list[Any]:
    """The tensor's values, flat, each valid for its datatype; ``null`` is left to the feature."""
    values = _flat_values(tensor)
    if tensor.datatype == "BYTES":
        return values  # text: the feature checks each cell
    convert = value_converter(tensor.datatype)
    width = len(columns)
    for index, value in enumerate(values):
        if value is None:
            continue
        try:
            convert(value, tensor.datatype)
        except ValueError as e:
            where = f"{tensor.where}: row {index // width}, feature {columns[index % width]!r}"
            raise InvalidInput(f"{where}: {e}") from e
    return values


def _flat_values(tensor: Tensor) -> list[Any]:
    nested = any(isinstance(v, list) for v in tensor.data)
    values = _leaves(tensor.data) if nested else tensor.data
    needed = math.prod(tensor.shape)
    if len(values) != needed:
        raise InvalidInput(
            f"{tensor.where}: shape {list(tensor.shape)} needs {needed} values, got {len(values)}"
        )
    if nested:
        _check_nesting(tensor.data, tensor.shape, tensor, "data")
    return values


def _leaves(data: list[Any]) -> list[Any]:
    # Iterative, so an absurdly deep body cannot exhaust the recursion limit.
    leaves: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            leaves.append(item)
        else:
            stack.pop()
    return leaves


def _check_nesting(data: Any, shape: tuple[int, ...], tensor: Tensor, path: str) -> None:
    where = f"{tensor.where}: nested data does not match shape {list(tensor.shape)}"
    if not isinstance(data, list) or len(data) != shape[0]:
        got = f"an array of {len(data)}" if isinstance(data, list) else describe(data)
        raise InvalidInput(f"{where}: {path} should be an array of {shape[0]}, got {got}")
    for index, item in enumerate(data):
        if len(shape) > 1:
            _check_nesting(item, shape[1:], tensor, f"{path}[{index}]")
        elif isinstance(item, list):
            raise InvalidInput(f"{where}: {path}[{index}] should be a value, got an array")


# --- messages, shared with .v2 ---


def quoted(names: Sequence[str]) -> str:
    return ", ".join(map(repr, names))


def shown(value: Any) -> str:
    if not isinstance(value, list):
        return describe(value)
    try:
        text = json.dumps(value)
    except (ValueError, RecursionError):
        return "a deeply nested array"
    return text if len(text) <= 40 else text[:37] + "..."
