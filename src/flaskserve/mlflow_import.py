"""An MLflow model, a directory with an ``MLmodel`` file or a ``models:/``/``runs:/`` URI,
converted into a flaskserve artifact: ``flaskserve import MLFLOW_DIR``.

Only flavours stored in a format that runs no code are read without the operator's word:
scikit-learn in skops, XGBoost and LightGBM in their libraries' own files. A flavour stored
as a pickle (or only as a ``python_function`` with its loader module) needs
``--trust-pickle``. The signature becomes the schema (docs/artifact.md).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifact import ModelManifest, load_skops
from .errors import ArtifactError
from .mlflow_schema import MLMODEL, sample_frame, signature_columns
from .packaging import save_model
from .pickles import load_trusted_pickle

URI_SCHEMES = ("models:/", "runs:/")
#: what skops must rebuild to read MLflow's skops file of a LightGBM scikit-learn model;
#: kept here in code, never read from the MLmodel file (its ``skops_trusted_types``)
_LIGHTGBM_SKOPS_TYPES = (
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    "lightgbm.basic.Booster",
    "collections.OrderedDict",
)
_XGBOOST_CLASSES = ("XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor")


class ImportRefused(ArtifactError):
    """The MLflow model cannot be imported; the message says why, in one line."""


class PickleRequired(ImportRefused):
    """The model is stored as a pickle, and the operator has not vouched for it."""


@dataclass(frozen=True)
class Imported:
    """What :func:`import_model` wrote, and what it had to make up on the way."""

    manifest: ModelManifest
    out: Path
    notes: list[str] = field(default_factory=list)


def is_model_uri(source: str) -> bool:
    """Whether *source* is an MLflow model URI rather than a path."""
    return source.startswith(URI_SCHEMES)


def import_model(
    source: str,
    *,
    out: Path | None = None,
    name: str | None = None,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    trust_pickle: bool = False,
) -> Imported:
    """Convert the MLflow model at *source* (a directory or a model URI) into an artifact.

    :param out: the artifact directory; default ``build/<name>``.
    :param name: the model's name; default the registered name, else the directory's.
    :raises ImportRefused: not an MLflow model, an unknown flavour, a missing file or
        dependency, or a pickle without *trust_pickle* (:class:`PickleRequired`).
    :raises ValueError: the model, its sample or the names do not fit together.
    :raises OSError: the artifact cannot be written.
    """
    if not is_model_uri(source):
        return _import_directory(
            Path(source), {}, out, name, feature_names, class_names, trust_pickle
        )
    origin = _registry_source(source)
    with tempfile.TemporaryDirectory(prefix="flaskserve-mlflow-") as scratch:
        directory = download(source, Path(scratch))
        name = name or origin.get("registered_name")
        return _import_directory(
            directory, origin, out, name, feature_names, class_names, trust_pickle
        )


def _import_directory(
    directory: Path,
    origin: dict[str, Any],
    out: Path | None,
    name: str | None,
    feature_names: Sequence[str] | None,
    class_names: Sequence[str] | None,
    trust_pickle: bool,
) -> Imported:
    mlmodel = read_mlmodel(directory)
    flavor, estimator = load_flavor(directory, mlmodel, trust_pickle=trust_pickle)
    notes: list[str] = []
    columns = signature_columns(mlmodel)
    sample = sample_frame(directory, mlmodel, columns, estimator, notes)
    if feature_names is None and sample is None and columns:
        feature_names = [c.name for c in columns]
    name = name or directory.resolve().name
    target = out or Path("build") / name
    source = {"kind": "mlflow", "flavor": flavor, **origin}
    for key in ("run_id", "model_uuid"):
        if mlmodel.get(key):
            source.setdefault(key, str(mlmodel[key]))
    manifest = save_model(
        estimator,
        target,
        sample=sample,
        feature_names=feature_names,
        class_names=class_names,
        name=name,
        source=source,
    )
    return Imported(manifest, target, notes)


def read_mlmodel(directory: Path) -> dict[str, Any]:
    """The ``MLmodel`` file of *directory*, parsed.

    :raises ImportRefused: no such file, PyYAML missing, or not a mapping with ``flavors``.
    """
    path = directory / MLMODEL
    if not path.is_file():
        raise ImportRefused(f"{directory}: no {MLMODEL} file; is this an MLflow model directory?")
    try:
        import yaml
    except ImportError:
        raise ImportRefused(
            f"reading {MLMODEL} needs PyYAML: pip install 'flaskserve[mlflow]'"
        ) from None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ImportRefused(f"{path}: not a readable YAML file ({str(e).splitlines()[0]})") from e
    if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
        raise ImportRefused(f"{path}: no 'flavors' mapping; is this an MLflow model?")
    return data


def load_flavor(directory: Path, mlmodel: dict[str, Any], *, trust_pickle: bool) -> tuple[str, Any]:
    """The flavour read and the model object, from the first flavour flaskserve knows.

    :raises ImportRefused: no known flavour, a missing file or library, or a pickle
        without *trust_pickle*.
    """
    flavors: dict[str, Any] = mlmodel["flavors"]
    loaders: dict[str, Callable[[Path, dict[str, Any], bool], Any]] = {
        "sklearn": _load_sklearn,
        "xgboost": _load_xgboost,
        "lightgbm": _load_lightgbm,
    }
    for flavor, loader in loaders.items():
        if isinstance(flavors.get(flavor), dict):
            return flavor, loader(directory, flavors[flavor], trust_pickle)
    pyfunc = flavors.get("python_function")
    if isinstance(pyfunc, dict) and pyfunc.get("model_path"):
        path = _model_file(directory, pyfunc, "model_path")
        return "python_function", _pickled(path, "python_function", trust_pickle)
    known = ", ".join(sorted(flavors)) or "none"
    raise ImportRefused(
        f"{directory / MLMODEL}: flavours {known}; flaskserve imports sklearn, xgboost, lightgbm"
    )


def _model_file(directory: Path, conf: dict[str, Any], key: str) -> Path:
    name = conf.get(key)
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise ImportRefused(f"{directory / MLMODEL}: {key!r} must name a file in the directory")
    path = directory / name
    if not path.is_file():
        raise ImportRefused(f"{path}: missing (the {MLMODEL} file names it)")
    return path


def _pickled(path: Path, flavor: str, trust_pickle: bool) -> Any:
    if not trust_pickle:
        raise PickleRequired(f"{path}: the {flavor} flavour is stored as a pickle")
    return load_trusted_pickle(path, trust_pickle=True)


def _load_sklearn(directory: Path, conf: dict[str, Any], trust_pickle: bool) -> Any:
    path = _model_file(directory, conf, "pickled_model")
    serialization = conf.get("serialization_format") or "pickle"  # MLflow's own default
    if serialization == "skops":
        return load_skops(path.read_bytes(), path)
    if serialization in ("pickle", "cloudpickle"):
        return _pickled(path, f"sklearn ({serialization})", trust_pickle)
    raise ImportRefused(
        f"{path}: serialization_format {serialization!r} is not one flaskserve reads"
    )


def _import_library(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportRefused(
            f"this MLflow model needs {module}: pip install 'flaskserve[{extra}]'"
        ) from None


def _load_xgboost(directory: Path, conf: dict[str, Any], trust_pickle: bool) -> Any:
    path = _model_file(directory, conf, "data")
    xgboost = _import_library("xgboost", "xgboost")
    model_class = str(conf.get("model_class") or "xgboost.core.Booster")
    short = model_class.rsplit(".", 1)[-1]
    if short in _XGBOOST_CLASSES:
        model = getattr(xgboost, short)()
    elif short == "Booster":
        model = xgboost.Booster()
    else:
        raise ImportRefused(
            f"{directory / MLMODEL}: xgboost model_class {model_class!r} is unknown"
        )
    try:
        model.load_model(str(path))  # the library's own file format: no code runs
    except xgboost.core.XGBoostError as e:
        raise ImportRefused(f"{path}: not a readable XGBoost model ({str(e)[:200]})") from e
    return model


def _load_lightgbm(directory: Path, conf: dict[str, Any], trust_pickle: bool) -> Any:
    path = _model_file(directory, conf, "data")
    lightgbm = _import_library("lightgbm", "lightgbm")
    model_class = str(conf.get("model_class") or "lightgbm.basic.Booster")
    serialization = conf.get("serialization_format") or "cloudpickle"
    if model_class.endswith(".Booster"):  # always the native text file, whatever the key says
        try:
            return lightgbm.Booster(model_file=str(path))
        except lightgbm.basic.LightGBMError as e:
            raise ImportRefused(f"{path}: not a readable LightGBM model ({e})") from e
    if serialization == "skops":
        return load_skops(path.read_bytes(), path, _LIGHTGBM_SKOPS_TYPES)
    return _pickled(path, f"lightgbm ({serialization})", trust_pickle)


def download(uri: str, into: Path) -> Path:
    """Download the model at *uri* into *into* with MLflow, and return its directory.

    :raises ImportRefused: mlflow is not installed, ``MLFLOW_TRACKING_URI`` is not set,
        or MLflow cannot resolve or download *uri*.
    """
    mlflow = _mlflow()
    try:
        path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(into))
    except mlflow.exceptions.MlflowException as e:
        raise ImportRefused(f"{uri}: {str(e.message).splitlines()[0]}") from e
    return Path(path)


def _mlflow() -> Any:
    try:
        import mlflow
        import mlflow.artifacts
    except ImportError:
        raise ImportRefused(
            "a models:/ or runs:/ URI needs mlflow: pip install 'flaskserve[mlflow]'"
        ) from None
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        raise ImportRefused(
            "a models:/ or runs:/ URI needs MLFLOW_TRACKING_URI set to the tracking server"
        )
    return mlflow


def _registry_source(uri: str) -> dict[str, Any]:
    """What the URI says of the model: registered name and version, or the run."""
    source: dict[str, Any] = {"uri": uri}
    scheme, _, rest = uri.partition(":/")
    parts = rest.strip("/").split("/")
    if scheme == "runs":
        source["run_id"] = parts[0]
        return source
    if "@" in parts[0]:
        name, alias = parts[0].split("@", 1)
        source.update(registered_name=name, alias=alias)
        version = _alias_version(name, alias)
        if version:
            source["version"] = version
    elif len(parts) > 1 and not parts[0].startswith("m-"):
        source.update(registered_name=parts[0], version=parts[1])
    return source


def _alias_version(name: str, alias: str) -> str | None:
    mlflow = _mlflow()
    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException as e:
        raise ImportRefused(f"models:/{name}@{alias}: {str(e.message).splitlines()[0]}") from e
