"""Open Inference Protocol tensors whose headers were checked, turned into float64 rows.

:mod:`.v2` checks the request's keys and each tensor's header; this module reads
the tensors' ``data``: its nesting against the shape, each value against the
datatype, and the layout (one combined input, or one input per feature).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInput, PayloadTooLarge
from .dtypes import value_converter
from .records import describe


@dataclass(frozen=True)
class Tensor:
    """An input whose header is valid; its data is not checked yet."""

    name: str
    shape: tuple[int, ...]
    datatype: str
    data: list[Any]

    @property
    def where(self) -> str:
        return f"input {self.name!r}"


def tensor_rows(tensors: list[Tensor], names: Sequence[str], max_rows: int) -> np.ndarray:
    # One input is the combined layout unless it is named after a feature and
    # shaped like one: then it is the per-feature layout with features missing.
    only = tensors[0]
    if len(tensors) == 1 and (only.name not in names or only.shape[1:] == (len(names),)):
        return _combined_rows(only, names, max_rows)
    return _feature_rows(tensors, names, max_rows)


def _combined_rows(tensor: Tensor, names: Sequence[str], max_rows: int) -> np.ndarray:
    if len(tensor.shape) != 2 or tensor.shape[1] != len(names):
        raise InvalidInput(
            f"{tensor.where}: expected shape [-1, {len(names)}] (rows of {', '.join(names)}),"
            f" got {list(tensor.shape)}"
        )
    _check_row_count(tensor, max_rows)
    return _floats(tensor, names).reshape(tensor.shape)


def _feature_rows(tensors: list[Tensor], names: Sequence[str], max_rows: int) -> np.ndarray:
    by_name = {t.name: t for t in tensors}
    missing = [n for n in names if n not in by_name]
    unknown = [t.name for t in tensors if t.name not in names]
    if missing or unknown:
        problems = [f"missing feature input(s) {quoted(missing)}"] if missing else []
        problems += [f"unknown input(s) {quoted(unknown)}"] if unknown else []
        raise InvalidInput(
            f"inputs: {'; '.join(problems)} (expected one input per feature: {', '.join(names)};"
            f" or one input of shape [-1, {len(names)}])"
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
    return np.column_stack([_floats(by_name[name], (name,)) for name in names])


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
