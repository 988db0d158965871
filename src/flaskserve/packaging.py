"""From a fitted estimator to an artifact directory: ``save_model``.

The manifest is built here (schema, classes, ranges, smoke rows, importances,
versions), the compiled model is added where it passes its parity gate, and
:func:`flaskserve.artifact.write_artifact` writes the directory. The artifact
module knows nothing of compiling; this module sits above it and the compiler.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import Feature, ModelManifest, check_manifest, write_artifact
from .compiler import with_compiled
from .modelcard import feature_importances
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
) -> ModelManifest:
    """Write a fitted scikit-learn estimator or Pipeline as a model artifact.

    The directory is written beside *path* and renamed into place, so a reader
    never sees half an artifact; an existing artifact at *path* is replaced.

    :param estimator: a fitted classifier or regressor (or a Pipeline ending in one).
    :param path: the artifact directory to create.
    :param sample: training rows (2-D, numeric): their ranges go into the
        manifest and the first rows, with their predictions, become the smoke
        test. Without it the manifest records no ranges and no smoke rows.
    :param feature_names: one name per column; default ``feature_names_in_`` or ``x0..xn``.
    :param class_names: human names for ``classes_``, in the same order.
    :param name: the model's name; default the directory's name.
    :param version: a positive integer.
    :param metrics: evaluation figures to record (e.g. ``{"accuracy": 0.95}``).
    :param holdout: held-out rows, checked by the compiled model's parity gate too.
    :param compile: also compile the model to ONNX (``model.onnx``) and record
        whether it passed the parity gate (see :mod:`flaskserve.compiler`).
    :raises ValueError: the estimator, sample or names do not fit together.
    """
    target = Path(path)
    task, labels = _task_and_labels(estimator)
    rows = _as_matrix(sample) if sample is not None else None
    names = _checked_names(estimator, rows, feature_names, class_names, labels, version)
    payload = _serialized(estimator)
    manifest = ModelManifest(
        name=name or target.resolve().name,
        version=version,
        task=task,
        estimator=f"{type(estimator).__module__}.{type(estimator).__qualname__}",
        features=_features(names, rows),
        sha256=hashlib.sha256(payload).hexdigest(),
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        labels=labels,
        class_names=tuple(class_names) if class_names is not None else tuple(map(str, labels)),
        metrics=dict(metrics or {}),
        sample=_smoke_sample(estimator, rows),
        feature_importances=feature_importances(estimator, names),
        versions=_library_versions(),
    )
    check_manifest(manifest)
    files = {manifest.model_file: payload}
    if compile:
        holdout_rows = _as_matrix(holdout) if holdout is not None else None
        manifest, files = with_compiled(estimator, manifest, files, rows, holdout_rows)
    write_artifact(target, files, manifest)
    return manifest


def _checked_names(
    estimator: Any,
    rows: np.ndarray | None,
    feature_names: Sequence[str] | None,
    class_names: Sequence[str] | None,
    labels: tuple[Any, ...],
    version: int,
) -> list[str]:
    """The feature names, once they, the class names and the version fit the estimator."""
    width = rows.shape[1] if rows is not None else _declared_width(estimator, feature_names)
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
        raise ValueError(f"sample: expected numeric rows ({e})") from e
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] == 0:
        raise ValueError(f"sample: expected a non-empty 2-D array, got shape {list(rows.shape)}")
    if not np.isfinite(rows).all():
        raise ValueError("sample: contains NaN or infinite values")
    return rows


def _declared_width(estimator: Any, feature_names: Sequence[str] | None) -> int:
    width = getattr(estimator, "n_features_in_", None)
    if width is None and feature_names is None:
        raise ValueError(
            "feature_names: required when neither a sample nor n_features_in_ tells the width"
        )
    return int(width) if width is not None else len(feature_names or ())


def _features(names: list[str], rows: np.ndarray | None) -> tuple[Feature, ...]:
    if rows is None:
        return tuple(Feature(n) for n in names)
    ranges = zip(names, rows.min(axis=0), rows.max(axis=0), strict=True)
    return tuple(Feature(n, "float64", float(lo), float(hi)) for n, lo, hi in ranges)


def _smoke_sample(estimator: Any, rows: np.ndarray | None) -> dict[str, list[Any]]:
    if rows is None:
        return {}
    smoke = rows[:SAMPLE_ROWS]
    return {"inputs": smoke.tolist(), "predictions": plain(estimator.predict(smoke))}


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
