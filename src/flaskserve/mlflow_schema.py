"""An MLflow model's signature and input example, as the sample ``save_model`` types the
features from (:mod:`flaskserve.mlflow_import`).

The input example is used where the model has one, its columns cast to the signature's
types; without one, a made-up row where the signature says more than "numbers". An
optional column (``"required": false``) is nullable where the model answers with the cell
missing, which :func:`flaskserve.frames.describe_frame` tries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ArtifactError

MLMODEL = "MLmodel"
#: MLflow signature column types, as the pandas dtype a sample column gets
_SIGNATURE_DTYPES = {
    "double": "float64",
    "float": "float64",
    "long": "int64",
    "integer": "int64",
    "boolean": "bool",
    "string": "object",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool


def signature_columns(mlmodel: dict[str, Any]) -> list[Column]:
    """The signature's input columns, or ``[]`` without a column-based signature.

    :raises ArtifactError: a column of a type flaskserve cannot serve (binary, datetime).
    """
    signature = mlmodel.get("signature")
    inputs = signature.get("inputs") if isinstance(signature, dict) else None
    try:
        specs = json.loads(inputs) if isinstance(inputs, str) else []
    except ValueError as e:
        raise ArtifactError(f"{MLMODEL}: signature inputs are not JSON ({e})") from e
    if not isinstance(specs, list) or not all(isinstance(s, dict) and "name" in s for s in specs):
        return []  # a tensor signature names no columns
    columns = []
    for spec in specs:
        kind = spec.get("type")
        if kind not in _SIGNATURE_DTYPES:
            raise ArtifactError(
                f"{MLMODEL}: signature column {spec['name']!r} has type {kind!r}"
                f" (flaskserve serves {', '.join(_SIGNATURE_DTYPES)})"
            )
        columns.append(Column(str(spec["name"]), kind, spec.get("required", True) is not False))
    return columns


def sample_frame(
    directory: Path,
    mlmodel: dict[str, Any],
    columns: list[Column],
    estimator: Any,
    notes: list[str],
) -> Any:
    """The rows ``save_model`` types the features from: the input example, else rows made
    from the signature (only where it says more than "numbers"), else ``None``."""
    example = _input_example(directory, mlmodel)
    if example is not None:
        return _typed(example, columns)
    if not columns or all(c.type in ("double", "float") and c.required for c in columns):
        return None
    notes.append(
        "no input example: typed the features from the signature with one made-up row"
        " (numbers 0, text the encoder's first category); ranges are not the training data's"
    )
    return _typed(_signature_row(columns, estimator), columns)


def _input_example(directory: Path, mlmodel: dict[str, Any]) -> Any:
    info = mlmodel.get("saved_input_example_info")
    if not isinstance(info, dict) or info.get("type") != "dataframe":
        return None
    name = info.get("artifact_path")
    if not isinstance(name, str) or Path(name).name != name or not (directory / name).is_file():
        raise ArtifactError(f"{directory / MLMODEL}: input example {name!r} is not a file here")
    path = directory / name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path}: not a readable JSON input example ({e})") from e
    import pandas as pd

    if info.get("pandas_orient", "split") == "split" and isinstance(data, dict):
        return pd.DataFrame(data.get("data", []), columns=data.get("columns"))
    if isinstance(data, list):  # records
        return pd.DataFrame(data)
    raise ArtifactError(f"{path}: an input example flaskserve does not read")


def _typed(frame: Any, columns: list[Column]) -> Any:
    """*frame* with each column cast to the type the signature gives it."""
    import pandas as pd

    frame = frame.copy()
    for column in columns:
        if column.name not in frame.columns:
            raise ArtifactError(f"input example: no column {column.name!r} (the signature has it)")
        dtype = _SIGNATURE_DTYPES[column.type]
        values = frame[column.name]
        if dtype == "int64" and values.isna().any():
            frame[column.name] = pd.array(values, dtype="Int64")
        elif dtype == "object":
            frame[column.name] = values.astype(object).where(values.notna(), None)
        else:
            frame[column.name] = values.astype(dtype)
    return frame[[c.name for c in columns]] if columns else frame


def _signature_row(columns: list[Column], estimator: Any) -> Any:
    import pandas as pd

    from .frames import _encoder_categories

    known = _encoder_categories(estimator)
    made_up = {"double": 0.0, "float": 0.0, "long": 0, "integer": 0, "boolean": False}
    row = {c.name: made_up.get(c.type, (known.get(c.name) or ("",))[0]) for c in columns}
    return pd.DataFrame([row])
