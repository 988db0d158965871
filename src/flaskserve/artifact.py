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

import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError

MANIFEST_NAME = "flaskserve.json"
#: the dtypes a feature may have: what :mod:`flaskserve.schema` knows how to decode
FEATURE_DTYPES = (
    "float64",
    "float32",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "uint16",
    "uint32",
    "bool",
    "str",
    "string",
    "object",
    "category",
)
MODEL_NAME = "model.skops"
FORMAT_VERSION = 1

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
    # HistGradientBoosting on category columns keeps partial(check_array) in the
    # preprocessor it builds; a partial of any other function is still refused, since
    # the function is a node of its own that must be trusted too
    "functools.partial",
    "sklearn.utils.validation.check_array",
)


@dataclass(frozen=True)
class Feature:
    """One input column: its name, dtype and what the sample showed of it.

    :ivar dtype: the pandas dtype the model was fitted on (``float64``, ``int64``,
        ``bool``, ``str``, ``object`` or ``category``): it decides which JSON values a
        cell may hold (:mod:`flaskserve.schema`).
    :ivar min: the smallest value seen, for a number.
    :ivar nullable: a cell may be missing (the model answers with it missing).
    :ivar categories: the text values seen in training, for a text feature.
    :ivar unknown_categories: what the model does with text it has not seen:
        ``"refused"`` (the request is answered 400), ``"ignored"`` (it is answered).
    """

    name: str
    dtype: str = "float64"
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    categories: tuple[str, ...] | None = None
    unknown_categories: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Feature:
        categories = data.get("categories")
        if categories is not None:
            data = {**data, "categories": tuple(categories)}
        return cls(**data)


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
    #: ``matrix``: rows are a float64 matrix; ``frame``: a DataFrame of typed columns
    input: str = "matrix"
    #: an XGBoost or LightGBM model in its library's own file (``file``, ``sha256``,
    #: ``format``, ``library``, ``version``, ``objective``); ``model_file`` then holds the
    #: Pipeline's steps before it (:mod:`flaskserve.runtime.boosters`)
    booster: dict[str, Any] = field(default_factory=dict)
    #: where the model came from, when it was imported (``{"kind": "mlflow", ...}``)
    source: dict[str, Any] = field(default_factory=dict)
    #: how the model is explained (:mod:`flaskserve.explain`): ``method`` and ``space``,
    #: the training rows' ``mean`` a linear model needs, and ``importance``, each input
    #: column's mean absolute contribution over ``rows`` held-out rows; or ``reason``
    explanation: dict[str, Any] = field(default_factory=dict)
    #: each input column's distribution over the training rows, by name, that served rows
    #: are compared with (:mod:`flaskserve.monitoring.drift_baseline`); ``{}``: none recorded
    baselines: dict[str, Any] = field(default_factory=dict)

    @cached_property  # read on every request
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @cached_property  # read on every request
    def plain_numbers(self) -> bool:
        """Rows are a float64 matrix of numbers that are never missing: the fast path."""
        return self.input == "matrix" and not any(f.nullable for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # a feature's typing fields only where they say something: a manifest of
        # numbers reads as it always has
        data["features"] = [_without_defaults(f) for f in data["features"]]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelManifest:
        """Rebuild a manifest, naming the first field that is missing or wrong.

        :raises ArtifactError: the manifest does not describe a loadable model.
        """
        try:
            features = tuple(Feature.from_dict(f) for f in data["features"])
            values = {**data, "features": features}
            values["labels"] = tuple(data.get("labels", ()))
            values["class_names"] = tuple(data.get("class_names", ()))
            manifest = cls(**values)
        except KeyError as e:
            raise ArtifactError(f"{MANIFEST_NAME}: missing field {e.args[0]!r}") from e
        except (TypeError, ValueError, AttributeError) as e:
            raise ArtifactError(f"{MANIFEST_NAME}: malformed ({e})") from e
        check_manifest(manifest)
        return manifest


_FEATURE_DEFAULTS = {"nullable": False, "categories": None, "unknown_categories": None}


def _without_defaults(feature: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in feature.items() if k not in _FEATURE_DEFAULTS or v != _FEATURE_DEFAULTS[k]
    }


@dataclass(frozen=True)
class LoadedModel:
    """A verified estimator together with its manifest."""

    estimator: Any
    manifest: ModelManifest
    path: Path


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Read an artifact back, verifying its hash and the types it contains.

    :raises ArtifactError: the directory, manifest or model file is missing or
        malformed, the SHA-256 does not match, or the file holds an untrusted type.
    """
    directory = Path(path)
    manifest = read_manifest(directory)
    model_path = directory / manifest.model_file
    payload = read_verified(model_path, manifest.sha256)
    estimator = load_skops(payload, model_path)
    return LoadedModel(estimator=estimator, manifest=manifest, path=directory)


def load_skops(payload: bytes, origin: Path, extra_trusted: Sequence[str] = ()) -> Any:
    """The object in skops *payload*, if it holds only types skops or :data:`TRUSTED_TYPES`
    trust (and *extra_trusted*, a list kept in the caller's code, never read from a file).

    :param origin: the file the bytes came from, for the messages.
    :raises ArtifactError: an untrusted type, or not a readable skops file.
    """
    import skops.io as sio

    trusted = [*TRUSTED_TYPES, *extra_trusted]
    try:
        untrusted = [t for t in sio.get_untrusted_types(data=payload) if t not in trusted]
        if untrusted:
            raise ArtifactError(
                f"{origin}: contains types flaskserve does not trust: {', '.join(untrusted)}"
            )
        return sio.loads(payload, trusted=trusted)
    except ArtifactError:
        raise
    except Exception as e:  # skops raises many kinds on a corrupt file; all mean "unreadable"
        raise ArtifactError(f"{origin}: not a readable skops file ({e})") from e


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


def check_manifest(manifest: ModelManifest) -> None:
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
    if manifest.input not in ("matrix", "frame"):
        raise ArtifactError(f"{MANIFEST_NAME}: input must be 'matrix' or 'frame'")
    for feature in manifest.features:
        check_feature(feature)
    if manifest.task == "classification" and len(manifest.class_names) != len(manifest.labels):
        raise ArtifactError(f"{MANIFEST_NAME}: class_names and labels differ in length")


def check_feature(feature: Feature) -> None:
    """:raises ArtifactError: the feature's type or categories are not ones flaskserve reads."""
    if feature.dtype not in FEATURE_DTYPES:
        raise ArtifactError(
            f"{MANIFEST_NAME}: feature {feature.name!r} has dtype {feature.dtype!r}"
            f" (expected one of {', '.join(FEATURE_DTYPES)})"
        )
    categories = feature.categories
    if categories is not None and not all(isinstance(c, str) for c in categories):
        raise ArtifactError(f"{MANIFEST_NAME}: feature {feature.name!r}: categories must be text")
    if feature.unknown_categories not in (None, "refused", "ignored"):
        raise ArtifactError(
            f"{MANIFEST_NAME}: feature {feature.name!r}: unknown_categories must be"
            " 'refused' or 'ignored'"
        )
    if feature.dtype == "bool" and feature.nullable:  # a boolean column cannot hold a gap
        raise ArtifactError(
            f"{MANIFEST_NAME}: feature {feature.name!r}: a boolean is never nullable"
        )
    if type(feature.nullable) is not bool:
        raise ArtifactError(
            f"{MANIFEST_NAME}: feature {feature.name!r}: nullable must be a boolean"
        )


def json_default(value: Any) -> Any:
    """NumPy values as plain Python, for ``json.dumps(default=...)``: the one conversion."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def write_artifact(target: Path, files: dict[str, bytes], manifest: ModelManifest) -> None:
    """Write *files* and the manifest beside *target*, then rename the directory into place.

    A reader never sees half an artifact; an existing artifact at *target* is replaced
    only once the new one is whole, and a failed write leaves it as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; servers often run as another user
        for name, content in files.items():
            (staging / name).write_bytes(content)
        (staging / MANIFEST_NAME).write_text(
            json.dumps(manifest.to_dict(), indent=2, allow_nan=False, default=json_default) + "\n",
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
