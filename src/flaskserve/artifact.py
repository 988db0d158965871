"""The model artifact: a directory with the model in skops format and a manifest.

::

    build/iris/
      model.skops       the estimator, written by ``skops.io``
      flaskserve.json   the manifest: schema, classes, metrics, SHA-256, versions

Loading never unpickles. skops rebuilds objects from a JSON schema and refuses
any type it does not trust; beyond skops' own defaults (scikit-learn estimators,
NumPy arrays), the only types trusted are those in :data:`TRUSTED_TYPES`, kept
here in code and never read from the artifact.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError
from .modelcard import feature_importances

MANIFEST_NAME = "flaskserve.json"
MODEL_NAME = "model.skops"
FORMAT_VERSION = 1
SAMPLE_ROWS = 5

#: Compiled scikit-learn types that skops does not trust by default but that
#: common estimators need. Each is a data structure rebuilt from arrays, not code.
TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
)


@dataclass(frozen=True)
class Feature:
    """One input column: its name, dtype and the range seen in the sample."""

    name: str
    dtype: str = "float64"
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class ModelManifest:
    """What ``flaskserve.json`` records about a model."""

    name: str
    version: int
    task: str
    estimator: str
    features: tuple[Feature, ...]
    sha256: str
    created: str
    labels: tuple[Any, ...] = ()
    class_names: tuple[str, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    sample: dict[str, list[Any]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    compiled: dict[str, Any] = field(default_factory=dict)
    feature_importances: dict[str, float] = field(default_factory=dict)
    model_file: str = MODEL_NAME
    format_version: int = FORMAT_VERSION

    @cached_property  # read on every request
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelManifest:
        """Rebuild a manifest, naming the first field that is missing or wrong.

        :raises ArtifactError: the manifest does not describe a loadable model.
        """
        try:
            features = tuple(Feature(**f) for f in data["features"])
            values = {**data, "features": features}
            values["labels"] = tuple(data.get("labels", ()))
            values["class_names"] = tuple(data.get("class_names", ()))
            manifest = cls(**values)
        except KeyError as e:
            raise ArtifactError(f"{MANIFEST_NAME}: missing field {e.args[0]!r}") from e
        except (TypeError, ValueError, AttributeError) as e:
            raise ArtifactError(f"{MANIFEST_NAME}: malformed ({e})") from e
        _check_manifest(manifest)
        return manifest


@dataclass(frozen=True)
class LoadedModel:
    """A verified estimator together with its manifest."""

    estimator: Any
    manifest: ModelManifest
    path: Path


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
    import sklearn
    import skops
    import skops.io as sio

    from . import __version__

    target = Path(path)
    task, labels = _task_and_labels(estimator)
    rows = _as_matrix(sample) if sample is not None else None
    width = rows.shape[1] if rows is not None else _declared_width(estimator, feature_names)
    names = _feature_names(estimator, width, feature_names)
    if class_names is not None and len(class_names) != len(labels):
        raise ValueError(f"class_names: expected {len(labels)} names, got {len(class_names)}")
    if version < 1:
        raise ValueError(f"version: expected a positive integer, got {version}")
    payload = sio.dumps(estimator)
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
        versions={
            "flaskserve": __version__,
            "scikit-learn": sklearn.__version__,
            "skops": skops.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    )
    _check_manifest(manifest)
    files = {manifest.model_file: payload}
    if compile:
        holdout_rows = _as_matrix(holdout) if holdout is not None else None
        manifest, files = with_compiled(estimator, manifest, files, rows, holdout_rows)
    write_artifact(target, files, manifest)
    return manifest


def with_compiled(
    estimator: Any,
    manifest: ModelManifest,
    files: dict[str, bytes],
    rows: np.ndarray | None,
    holdout: np.ndarray | None,
) -> tuple[ModelManifest, dict[str, bytes]]:
    from .compiler import compile_estimator

    compiled = compile_estimator(estimator, manifest.task, len(manifest.features), rows, holdout)
    if compiled.payload is not None:
        files = {**files, compiled.record["file"]: compiled.payload}
    return replace(manifest, compiled=compiled.record), files


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Read an artifact back, verifying its hash and the types it contains.

    :raises ArtifactError: the directory, manifest or model file is missing or
        malformed, the SHA-256 does not match, or the file holds an untrusted type.
    """
    import skops.io as sio

    directory = Path(path)
    manifest = read_manifest(directory)
    model_path = directory / manifest.model_file
    payload = read_verified(model_path, manifest.sha256)
    try:
        untrusted = _refused_types(payload)
        if untrusted:
            raise ArtifactError(
                f"{model_path}: contains types flaskserve does not trust: {', '.join(untrusted)}"
            )
        estimator = sio.loads(payload, trusted=list(TRUSTED_TYPES))
    except ArtifactError:
        raise
    except Exception as e:  # skops raises many kinds on a corrupt file; all mean "unreadable"
        raise ArtifactError(f"{model_path}: not a readable skops file ({e})") from e
    return LoadedModel(estimator=estimator, manifest=manifest, path=directory)


def check_artifact_file(file: Path) -> None:
    """:raises ArtifactError: *file* leads outside its artifact directory (a symbolic link
    out) or is not a regular file (a device or a pipe, which could be read without end)."""
    resolved = file.resolve()
    if not resolved.is_relative_to(file.parent.resolve()):
        raise ArtifactError(f"{file}: leads outside the artifact directory; refusing it")
    if resolved.exists() and not stat.S_ISREG(resolved.stat().st_mode):
        raise ArtifactError(f"{file}: not a regular file; refusing it")


def read_verified(file: Path, sha256: str) -> bytes:
    """The bytes of *file*, if their SHA-256 is the one the manifest recorded.

    :raises ArtifactError: unreadable, outside the artifact, or changed after it was saved.
    """
    check_artifact_file(file)
    try:
        payload = file.read_bytes()
    except OSError as e:
        raise ArtifactError(f"{file}: cannot read the model file ({e.strerror})") from e
    digest = hashlib.sha256(payload).hexdigest()
    if digest != sha256:
        raise ArtifactError(
            f"{file}: SHA-256 mismatch (manifest {str(sha256)[:12]}..., file "
            f"{digest[:12]}...); the file was changed after it was saved, refusing to load it"
        )
    return payload


def untrusted_types(estimator: Any) -> list[str]:
    """The types in *estimator* that :func:`load_model` would refuse to load.

    ``save_model`` writes any estimator; call this first to know whether
    ``flaskserve serve`` will accept the result.
    """
    import skops.io as sio

    return _refused_types(sio.dumps(estimator))


def _refused_types(payload: bytes) -> list[str]:
    import skops.io as sio

    return [t for t in sio.get_untrusted_types(data=payload) if t not in TRUSTED_TYPES]


def read_manifest(directory: Path) -> ModelManifest:
    """Read and check ``flaskserve.json`` in *directory*.

    :raises ArtifactError: missing, not JSON, or not a valid manifest.
    """
    manifest_path = directory / MANIFEST_NAME
    check_artifact_file(manifest_path)
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ArtifactError(f"{directory}: no {MANIFEST_NAME}; is this a model artifact?") from e
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{manifest_path}: not a readable JSON file ({e})") from e
    if not isinstance(data, dict):
        raise ArtifactError(f"{manifest_path}: expected a JSON object")
    if type(data.get("format_version")) is not int or data["format_version"] != FORMAT_VERSION:
        raise ArtifactError(
            f"{manifest_path}: format_version {data.get('format_version')!r} is not supported"
            f" (expected {FORMAT_VERSION})"
        )
    return ModelManifest.from_dict(data)


def _check_manifest(manifest: ModelManifest) -> None:
    # The model file name comes from disk: it must not lead out of the directory.
    model_file = manifest.model_file
    if not isinstance(model_file, str) or model_file in ("", ".", ".."):
        raise ArtifactError(f"{MANIFEST_NAME}: model_file must be a plain file name")
    if Path(model_file).name != model_file:
        raise ArtifactError(f"{MANIFEST_NAME}: model_file must be a plain file name")
    if not isinstance(manifest.sha256, str) or len(manifest.sha256) != 64:
        raise ArtifactError(f"{MANIFEST_NAME}: sha256 must be 64 hexadecimal digits")
    if type(manifest.version) is not int or manifest.version < 1:
        raise ArtifactError(f"{MANIFEST_NAME}: version must be a positive integer")
    if manifest.task not in ("classification", "regression"):
        raise ArtifactError(f"{MANIFEST_NAME}: task {manifest.task!r} is not supported")
    names = manifest.feature_names
    if (
        not all(isinstance(n, str) and n for n in names)
        or not names
        or len(set(names)) != len(names)
    ):
        raise ArtifactError(f"{MANIFEST_NAME}: features must be unique non-empty names")
    if manifest.task == "classification" and len(manifest.class_names) != len(manifest.labels):
        raise ArtifactError(f"{MANIFEST_NAME}: class_names and labels differ in length")


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
    return {"inputs": smoke.tolist(), "predictions": _plain(estimator.predict(smoke))}


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
        return "classification", tuple(_plain(estimator.classes_))
    if is_regressor(estimator):
        return "regression", ()
    raise ValueError(
        f"estimator: {type(estimator).__name__} is neither a classifier nor a regressor"
    )


def _plain(values: Any) -> list[Any]:
    """NumPy values as JSON-ready Python values (int stays int, str stays str)."""
    return np.asarray(values).tolist()  # type: ignore[no-any-return]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_artifact(target: Path, files: dict[str, bytes], manifest: ModelManifest) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; servers often run as another user
        for name, content in files.items():
            (staging / name).write_bytes(content)
        (staging / MANIFEST_NAME).write_text(
            json.dumps(manifest.to_dict(), indent=2, allow_nan=False, default=_json_default) + "\n",
            encoding="utf-8",
        )
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, retired / target.name)
            os.replace(staging, target)
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
