"""From a fitted estimator to an artifact directory: ``save_model``.

The manifest is built here (schema, classes, ranges, smoke rows, importances,
versions), the compiled model is added where it passes its parity gate, and
:func:`flaskserve.artifact.write_artifact` writes the directory. The artifact
module knows nothing of compiling; this module sits above it and the compiler.
XGBoost and LightGBM models (and Pipelines ending in one) are stored in their own
format, never pickled: :func:`flaskserve.boosters.split_booster` says which objects.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import Feature, ModelManifest, check_manifest, write_artifact
from .boosters import NOT_COMPILED, BoosterParts, split_booster
from .compiler import with_compiled
from .explain.record import explanation_record
from .frames import TypedSample, describe_frame, is_frame
from .modelcard import feature_importances
from .monitoring.drift_baseline import compute_baselines
from .runtime.boosters import BoosterModel
from .schema import Table
from .version import __version__

SAMPLE_ROWS = 5


def save_model(
    estimator: Any,
    path: str | os.PathLike[str],
    *,
    sample: Any = None,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    name: str | None = None,
    version: int = 1,
    metrics: dict[str, Any] | None = None,
    holdout: Any = None,
    compile: bool = True,
    source: dict[str, Any] | None = None,
) -> ModelManifest:
    """Write a fitted scikit-learn estimator or Pipeline as a model artifact.

    :param estimator: a fitted classifier or regressor (or Pipeline ending in one); XGBoost too.
    :param path: the artifact directory to create (written beside it, renamed into place).
    :param sample: training rows: a pandas DataFrame (text, ``category``, boolean and
        number columns; missing cells), or a 2-D array of numbers (``NaN`` for a
        missing cell). Each feature's type, range, categories and whether it may be
        missing go into the manifest (docs/typing.md), with its drift baseline; the first
        rows, with their predictions, become the smoke test. Without it the manifest
        records no types beyond numbers, no ranges, baselines or smoke rows.
    :param feature_names: one name per column; default ``feature_names_in_`` or ``x0..xn``.
    :param class_names: human names for ``classes_``, in the same order.
    :param name: the model's name; default the directory's name.
    :param version: a positive integer.
    :param metrics: evaluation figures to record (e.g. ``{"accuracy": 0.95}``).
    :param holdout: held-out rows, checked by the compiled model's parity gate too.
    :param compile: also compile the model to ONNX (``model.onnx``; XGBoost and LightGBM
        with onnxmltools) and record whether it passed the parity gate (:mod:`flaskserve.compiler`).
    :param source: where the model came from (``{"kind": "mlflow", ...}``), for ``GET /model``.
    :raises ValueError: the estimator, sample or names do not fit together.
    """
    parts, model, task, labels, feature_names = _taken_apart(estimator, sample, feature_names)
    typed = typed_sample(model, sample, feature_names) if sample is not None else None
    names = _checked_names(model, typed, feature_names, class_names, labels, version)
    payload = _serialized(parts.head if parts else estimator)
    manifest = ModelManifest(  # an existing artifact at *path* is replaced once this is whole
        name=name or Path(path).resolve().name,
        version=version,
        task=task,
        estimator=f"{type(estimator).__module__}.{type(estimator).__qualname__}",
        sha256=hashlib.sha256(payload).hexdigest(),
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        metrics=dict(metrics or {}),
        versions=_library_versions(),
        **_described(estimator, model, typed, names, labels, class_names),
        source=dict(source or {}),
    )
    check_manifest(manifest)
    manifest = _explained(estimator, parts, manifest, sample, holdout)
    files = {manifest.model_file: payload}
    if parts:  # in its own format; compiled below from that file, as `flaskserve compile` does
        manifest, files = _with_booster(parts, manifest, files)
    if compile:
        manifest, files = _compiled(estimator, manifest, files, typed, holdout, parts)
    write_artifact(Path(path), files, manifest)
    return manifest


def _explained(
    estimator: Any, parts: BoosterParts | None, manifest: ModelManifest, sample: Any, holdout: Any
) -> ModelManifest:
    """*manifest* with its ``explanation`` record; a booster is explained as it will be
    served: its pipeline's steps, then the booster read from its own file."""
    booster = None
    if parts is not None:
        head = None if isinstance(parts.head, str) else parts.head
        booster = BoosterModel(parts.native, head, parts.labels, parts.record.get("missing"))
    record = explanation_record(estimator, booster, manifest, sample, holdout)
    return replace(manifest, explanation=record)


def _taken_apart(
    estimator: Any, sample: Any, feature_names: Sequence[str] | None
) -> tuple[BoosterParts | None, Any, str, tuple[Any, ...], Sequence[str] | None]:
    """An XGBoost or LightGBM model's parts (else ``None``), what predicts as the estimator
    does, its task and labels, and the feature names."""
    parts = split_booster(estimator)
    if parts is None:
        return None, estimator, *_task_and_labels(estimator), feature_names
    if feature_names is None and is_frame(sample):
        feature_names = parts.frame_columns(sample)
    return parts, parts.model, parts.task, parts.labels, feature_names


def _described(
    estimator: Any,
    model: Any,
    typed: TypedSample | None,
    names: list[str],
    labels: tuple[Any, ...],
    class_names: Sequence[str] | None,
) -> dict[str, Any]:
    """The manifest's fields on features, classes and smoke rows."""
    return {
        "features": typed.features if typed else tuple(Feature(n) for n in names),
        "labels": labels,
        "class_names": tuple(class_names) if class_names is not None else tuple(map(str, labels)),
        "sample": _smoke_sample(model, typed),
        "feature_importances": feature_importances(estimator, names),
        "input": typed.input if typed else "matrix",
        "baselines": compute_baselines(typed.features, typed.rows) if typed else {},
    }


def _with_booster(
    parts: BoosterParts, manifest: ModelManifest, files: dict[str, bytes]
) -> tuple[ModelManifest, dict[str, bytes]]:
    manifest = replace(manifest, booster=parts.record, compiled=dict(NOT_COMPILED))
    return manifest, {**files, parts.record["file"]: parts.payload}


def _compiled(
    estimator: Any,
    manifest: ModelManifest,
    files: dict[str, bytes],
    typed: TypedSample | None,
    holdout: Any,
    parts: BoosterParts | None = None,
) -> tuple[ModelManifest, dict[str, bytes]]:
    """*manifest* and *files* with the compiled model; a booster's is compiled from its own
    file, the Pipeline steps in front of it (``parts.head``) given to the compiler."""
    held = None
    if holdout is not None:
        model = parts.model if parts else estimator
        held = typed_sample(model, holdout, list(manifest.feature_names)).rows
    compiled = parts.head if parts else estimator
    with warnings.catch_warnings():
        # fitted on a DataFrame of numbers, checked on matrices (the answers are the same)
        warnings.filterwarnings("ignore", "X does not have valid feature names")
        return with_compiled(compiled, manifest, files, typed.rows if typed else None, held)


def typed_sample(
    estimator: Any, sample: Any, feature_names: Sequence[str] | None = None
) -> TypedSample:
    """*sample* typed: a DataFrame column by column, anything else as a numeric matrix.

    :raises ValueError: the sample does not fit the estimator; the message says where.
    """
    if is_frame(sample):
        return describe_frame(estimator, sample, list(feature_names) if feature_names else None)
    rows = _as_matrix(sample)
    nullable = np.isnan(rows).any(axis=0)
    names = _feature_names(estimator, rows.shape[1], feature_names)
    if nullable.any():
        _check_missing_served(
            estimator, rows, [n for n, m in zip(names, nullable, strict=True) if m]
        )
    features = tuple(
        Feature(n, "float64", _bound(np.nanmin, column), _bound(np.nanmax, column), bool(null))
        for n, column, null in zip(names, rows.T, nullable, strict=True)
    )
    return TypedSample(features, "matrix", rows)


def _check_missing_served(estimator: Any, rows: np.ndarray, names: list[str]) -> None:
    try:
        _predict_matrix(estimator, rows)
    except ValueError as e:
        raise ValueError(
            f"sample: missing cells (NaN) in {', '.join(map(repr, names))}, and the estimator"
            f" cannot predict with them ({str(e)[:200]})"
        ) from e


def _bound(reduce: Any, column: np.ndarray) -> float | None:
    return None if np.isnan(column).all() else float(reduce(column))


def _checked_names(
    estimator: Any,
    typed: TypedSample | None,
    feature_names: Sequence[str] | None,
    class_names: Sequence[str] | None,
    labels: tuple[Any, ...],
    version: int,
) -> list[str]:
    """The feature names, once they, the class names and the version fit the estimator."""
    if typed is not None:
        names = [f.name for f in typed.features]
        _feature_names(estimator, typed.width, names)  # the estimator's width checked
    else:
        width = _declared_width(estimator, feature_names)
        names = _feature_names(estimator, width, feature_names)
    if class_names is not None and len(class_names) != len(labels):
        raise ValueError(f"class_names: expected {len(labels)} names, got {len(class_names)}")
    if version < 1:
        raise ValueError(f"version: expected a positive integer, got {version}")
    return names


def _serialized(estimator: Any) -> bytes:
    import skops.io as sio

    return sio.dumps(estimator)  # type: ignore[no-any-return]


def _library_versions() -> dict[str, str]:
    """The versions that wrote the artifact: a loader can tell what it may not read."""
    import sklearn
    import skops

    return {
        "flaskserve": __version__,
        "scikit-learn": sklearn.__version__,
        "skops": skops.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _as_matrix(sample: Any) -> np.ndarray:
    try:
        rows = np.asarray(sample, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"sample: expected numeric rows, or a pandas DataFrame for text columns ({e})"
        ) from e
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] == 0:
        raise ValueError(f"sample: expected a non-empty 2-D array, got shape {list(rows.shape)}")
    if np.isinf(rows).any():
        raise ValueError("sample: contains infinite values")
    return rows


def _declared_width(estimator: Any, feature_names: Sequence[str] | None) -> int:
    width = getattr(estimator, "n_features_in_", None)
    if width is None and feature_names is None:
        raise ValueError(
            "feature_names: required when neither a sample nor n_features_in_ tells the width"
        )
    return int(width) if width is not None else len(feature_names or ())


def _smoke_sample(estimator: Any, typed: TypedSample | None) -> dict[str, list[Any]]:
    """The first rows, as JSON cells (``None`` for a missing one), and their predictions."""
    if typed is None:
        return {}
    if isinstance(typed.rows, Table):
        smoke = typed.rows.take(np.arange(min(SAMPLE_ROWS, len(typed.rows))))
        return {"inputs": smoke.rows(), "predictions": plain(estimator.predict(smoke.to_frame()))}
    matrix = typed.rows[:SAMPLE_ROWS]
    inputs = [[None if v != v else v for v in row] for row in matrix.tolist()]
    return {"inputs": inputs, "predictions": plain(_predict_matrix(estimator, matrix))}


def _predict_matrix(estimator: Any, matrix: np.ndarray) -> Any:
    with warnings.catch_warnings():
        # fitted on a DataFrame: "X does not have valid feature names"
        warnings.simplefilter("ignore")
        return estimator.predict(matrix)


def _feature_names(estimator: Any, width: int, given: Sequence[str] | None) -> list[str]:
    names = list(given) if given is not None else None
    if names is None and hasattr(estimator, "feature_names_in_"):
        names = [str(n) for n in estimator.feature_names_in_]
    if names is None:
        names = [f"x{i}" for i in range(width)]
    if len(names) != width:
        raise ValueError(f"feature_names: expected {width} names, got {len(names)}")
    expected = getattr(estimator, "n_features_in_", width)
    if expected != width:
        raise ValueError(
            f"sample: the estimator expects {expected} features, the sample has {width}"
        )
    if len(set(names)) != len(names) or not all(names):
        raise ValueError("feature_names: names must be unique and non-empty")
    return names


def _task_and_labels(estimator: Any) -> tuple[str, tuple[Any, ...]]:
    from sklearn.base import is_classifier, is_regressor
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except (NotFittedError, TypeError) as e:
        raise ValueError(f"estimator: expected a fitted scikit-learn estimator ({e})") from e
    if is_classifier(estimator):
        return "classification", tuple(plain(estimator.classes_))
    if is_regressor(estimator):
        return "regression", ()
    raise ValueError(
        f"estimator: {type(estimator).__name__} is neither a classifier nor a regressor"
    )


def plain(values: Any) -> list[Any]:
    """NumPy values as JSON-ready Python values (int stays int, str stays str)."""
    return np.asarray(values).tolist()  # type: ignore[no-any-return]
