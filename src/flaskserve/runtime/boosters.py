"""XGBoost and LightGBM models, evaluated by their own libraries from their own files.

A booster artifact holds the model in its library's format (XGBoost JSON
``model.json``, LightGBM text ``model.txt``), which the library reads as data:
nothing is unpickled. A Pipeline's steps before the booster are in
``model.skops``, loaded by :func:`flaskserve.artifact.load_model` as any other.
Answers follow the libraries' own ``predict``/``predict_proba``: the same
threshold (XGBoost: ``p > 0.5``) or argmax, the same ``[1 - p, p]`` columns.
"""

from __future__ import annotations

import importlib
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import ModelManifest, load_model, read_verified
from ..errors import ArtifactError, InvalidInput, ModelError
from ..schema import Table
from .base import Prediction

logger = logging.getLogger(__name__)

#: the library -> its file in an artifact and that file's format
FILES = {"xgboost": ("model.json", "xgboost-json"), "lightgbm": ("model.txt", "lightgbm-text")}
_XGB_CLASSIFIERS = ("binary:logistic", "multi:softprob")
_XGB_REFUSED = ("binary:", "multi:", "rank:", "survival:")  # but the classifiers above
_LGB_CLASSIFIERS = ("binary", "multiclass", "multiclassova")
_LGB_REFUSED = ("lambdarank", "rank_xendcg", "custom", "none")
#: UBJSON type markers that may follow the opening ``{`` (a key's length); JSON has ``"``
_UBJSON_MARKERS = b"iUIlL$#"


def import_library(library: str) -> Any:
    """The library's module.

    :raises ArtifactError: it is not installed; the message names the extra to install.
    """
    try:
        return importlib.import_module(library)
    except ImportError as e:
        raise ArtifactError(
            f"this model needs {library}, which is not installed:"
            f" pip install 'flaskserve[{library}]'"
        ) from e


@dataclass(frozen=True)
class NativeModel:
    """A booster read from its library's file, and what the file says about it."""

    library: str
    booster: Any  # xgboost.Booster or lightgbm.Booster
    objective: str
    n_classes: int  # 0 for a regressor
    feature_names: tuple[str, ...] | None
    n_features: int

    @property
    def task(self) -> str:
        return "classification" if self.n_classes else "regression"


def read_native(library: str, payload: bytes, where: object) -> NativeModel:
    """Load *payload*, a model file *library* wrote, with *library* itself.

    :param where: the file, named in errors.
    :raises ArtifactError: the library is missing, the file is damaged or truncated, or
        its objective is one flaskserve does not serve (ranking, survival, raw margins).
    """
    if library == "xgboost":
        return _read_xgboost(payload, where)
    if library == "lightgbm":
        return _read_lightgbm(payload, where)
    raise ArtifactError(f"{where}: unknown booster library {library!r}")


def is_ubjson(payload: bytes) -> bool:
    """Whether *payload* looks like XGBoost's UBJSON (``{`` then a binary length marker)."""
    return payload[:1] == b"{" and payload[1:2] in [bytes([m]) for m in _UBJSON_MARKERS]


def _read_xgboost(payload: bytes, where: object) -> NativeModel:
    xgb = import_library("xgboost")
    if is_ubjson(payload):
        payload = _ubjson_as_json(payload, where)
    try:  # XGBoost reads past the end of some truncated JSON: parse it first
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{where}: not a complete XGBoost JSON model ({e})") from e
    if not isinstance(document, dict) or not isinstance(document.get("learner"), dict):
        raise ArtifactError(f"{where}: not an XGBoost model (no 'learner' object)")
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(payload))
        booster.set_param({"nthread": 1})  # one thread per call, as for LightGBM
        learner = json.loads(booster.save_config())["learner"]
    except xgb.core.XGBoostError as e:
        raise ArtifactError(f"{where}: not a readable XGBoost model ({_first_line(e)})") from e
    objective = str(learner["objective"]["name"])
    if objective.startswith(_XGB_REFUSED) and objective not in _XGB_CLASSIFIERS:
        raise ArtifactError(
            f"{where}: XGBoost objective {objective!r} is not served"
            f" (classifiers: {', '.join(_XGB_CLASSIFIERS)}; regressors)"
        )
    n_classes = 0
    if objective in _XGB_CLASSIFIERS:
        n_classes = max(int(learner["learner_model_param"]["num_class"]), 2)
    names = booster.feature_names
    return NativeModel(
        "xgboost",
        booster,
        objective,
        n_classes,
        tuple(names) if names else None,
        booster.num_features(),
    )


#: run in a child process: read UBJSON with XGBoost, write the model back as JSON
_UBJSON_TO_JSON = (
    "import sys, xgboost\n"
    "booster = xgboost.Booster()\n"
    "booster.load_model(bytearray(sys.stdin.buffer.read()))\n"
    "sys.stdout.buffer.write(booster.save_raw(raw_format='json'))\n"
)


def _ubjson_as_json(payload: bytes, where: object) -> bytes:
    """*payload*, XGBoost's UBJSON, as XGBoost's JSON, read in a child process.

    XGBoost's UBJSON reader reads past the end of some truncated files and crashes the
    process (a segmentation fault, measured in CI); a child that crashes costs nothing.
    Artifacts keep JSON, so only an import reads UBJSON.
    """
    try:
        done = subprocess.run(
            [sys.executable, "-c", _UBJSON_TO_JSON],
            input=payload,
            capture_output=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ArtifactError(f"{where}: XGBoost took over 300 s to read it") from None
    if done.returncode < 0:
        said = f"XGBoost's reader crashed on it, signal {-done.returncode}"
    else:
        said = (done.stderr.decode("utf-8", "replace").strip().splitlines() or [""])[-1][:300]
    if done.returncode != 0:
        raise ArtifactError(f"{where}: not a readable XGBoost model ({said})")
    return done.stdout


def _read_lightgbm(payload: bytes, where: object) -> NativeModel:
    lgb = import_library("lightgbm")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ArtifactError(f"{where}: not a LightGBM text model ({e})") from e
    header = check_lightgbm_text(text, where)
    try:
        booster = lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as e:
        raise ArtifactError(f"{where}: not a readable LightGBM model ({_first_line(e)})") from e
    objective = header.get("objective", "").split(" ")[0]
    if objective in _LGB_REFUSED or not objective:
        raise ArtifactError(f"{where}: LightGBM objective {objective or 'none'!r} is not served")
    n_classes = 0
    if objective in _LGB_CLASSIFIERS:
        n_classes = max(int(header.get("num_class", "1")), 2)
    names = booster.feature_name()
    return NativeModel(
        "lightgbm", booster, objective, n_classes, tuple(names) or None, booster.num_feature()
    )


def check_lightgbm_text(text: str, where: object) -> dict[str, str]:
    """The header of a LightGBM text model, once its trees are all there.

    LightGBM parses the trees in parallel and aborts the whole process (``terminate``,
    not an exception) on some truncated files, so their layout is checked first: each
    tree where ``tree_sizes`` puts it, then ``end of trees``.

    :raises ArtifactError: not a LightGBM model, or truncated.
    """
    if not text.startswith("tree\n"):
        raise ArtifactError(f"{where}: not a LightGBM text model (it does not begin with 'tree')")
    data = text.encode("utf-8")
    start, end = data.find(b"\nTree=0\n"), data.find(b"\nend of trees")
    if start < 0 or end < start:
        raise ArtifactError(f"{where}: truncated LightGBM model (no complete list of trees)")
    header = dict(
        line.split("=", 1) for line in text[: text.find("\nTree=0\n")].splitlines() if "=" in line
    )
    position = start + 1
    try:
        sizes = [int(s) for s in header.get("tree_sizes", "").split()]
    except ValueError as e:
        raise ArtifactError(f"{where}: damaged LightGBM model (tree_sizes: {e})") from e
    for index, size in enumerate(sizes):
        if not data.startswith(f"Tree={index}\n".encode(), position):
            raise ArtifactError(f"{where}: damaged LightGBM model (tree {index} is not whole)")
        position += size
    if sizes and data[position : end + 1].strip():
        raise ArtifactError(f"{where}: damaged LightGBM model (its trees and sizes differ)")
    tail = data[end:]
    if b"\nparameters:" in tail and b"\nend of parameters" not in tail:
        raise ArtifactError(f"{where}: truncated LightGBM model (its parameters end early)")
    return header


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


class BoosterModel:
    """A booster, and the Pipeline steps in front of it, with a scikit-learn face.

    :param labels: what each class index means (the wrapper's ``classes_``).
    :param missing: XGBoost's ``missing`` value, ``None`` for NaN.
    """

    def __init__(
        self,
        native: NativeModel,
        head: Any = None,
        labels: tuple[Any, ...] = (),
        missing: float | None = None,
    ) -> None:
        self.native, self.head = native, head
        self.classes_ = np.asarray(labels if labels else range(native.n_classes))
        self.n_features_in_ = head.n_features_in_ if head is not None else native.n_features
        if head is None and native.feature_names:
            self.feature_names_in_ = np.asarray(native.feature_names, dtype=object)
        self._missing = np.nan if missing is None else missing
        best = native.booster.attr("best_iteration") if native.library == "xgboost" else None
        self._range = (0, int(best) + 1) if best is not None else (0, 0)

    def predict(self, rows: Any) -> np.ndarray:
        scores = self._scores(rows)
        if not self.native.n_classes:
            return scores
        if scores.ndim == 1:
            binary = (scores > 0.5) if self.native.library == "xgboost" else (1.0 - scores < scores)
            return np.asarray(self.classes_[binary.astype(np.intp)])
        return np.asarray(self.classes_[np.argmax(scores, axis=1)])

    def predict_proba(self, rows: Any) -> np.ndarray:
        scores = self._scores(rows)
        if scores.ndim == 1:
            return np.vstack((1.0 - scores, scores)).transpose()
        return scores

    def _scores(self, rows: Any) -> np.ndarray:
        features = self.head.transform(rows) if self.head is not None else rows
        booster = self.native.booster
        if self.native.library == "lightgbm":
            # one thread per call: a server runs a worker per core, and OpenMP's team per
            # call would have the workers' threads fight over the same cores
            return np.asarray(booster.predict(features, num_threads=1))
        try:  # as XGBClassifier.predict: in place, else through a DMatrix
            return np.asarray(
                booster.inplace_predict(
                    features, iteration_range=self._range, missing=self._missing
                )
            )
        except TypeError:
            import xgboost as xgb

            matrix = xgb.DMatrix(features, missing=self._missing, enable_categorical=True)
            return np.asarray(booster.predict(matrix, iteration_range=self._range))

    def contributions(self, features: Any) -> np.ndarray:
        """The library's own exact contributions, bias last, for rows the head transformed:
        XGBoost ``(n, f+1)`` or ``(n, k, f+1)``, LightGBM ``(n, f+1)`` or ``(n, k*(f+1))``."""
        booster = self.native.booster
        if self.native.library == "lightgbm":
            return np.asarray(booster.predict(features, pred_contrib=True, num_threads=1))
        import xgboost as xgb

        matrix = xgb.DMatrix(features, missing=self._missing, enable_categorical=True)
        contributions = booster.predict(matrix, pred_contribs=True, iteration_range=self._range)
        return np.asarray(contributions)


class BoosterRuntime:
    """Serves a :class:`BoosterModel`; ``kind`` is its library."""

    def __init__(self, model: BoosterModel, manifest: ModelManifest) -> None:
        self._model = model
        self._manifest = manifest
        self.kind = model.native.library

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    @property
    def model(self) -> BoosterModel:
        """The booster and the pipeline's steps in front of it (explanations need both)."""
        return self._model

    def predict(self, rows: np.ndarray | Table, *, proba: bool = False) -> Prediction:
        """Predict classes or values for *rows*, optionally class probabilities.

        :raises InvalidInput: probabilities asked of a regressor.
        :raises ModelError: the library failed or answered with non-finite values.
        """
        if proba and self._manifest.task != "classification":
            raise InvalidInput(f"model {self._manifest.name!r} does not give probabilities")
        model_input = rows.to_frame() if isinstance(rows, Table) else rows
        try:
            predictions = self._model.predict(model_input)
            probabilities = self._model.predict_proba(model_input) if proba else None
        except Exception as e:  # any library failure is the model's, never the client's
            logger.exception("model %r failed to predict", self._manifest.name)
            raise ModelError(f"model {self._manifest.name!r} failed to predict") from e
        if predictions.dtype.kind == "f" and not np.isfinite(predictions).all():
            raise ModelError("the model produced non-finite predictions")
        if probabilities is not None and not np.isfinite(probabilities).all():
            raise ModelError("the model produced non-finite probabilities")
        return Prediction(predictions, probabilities)


def load_booster_runtime(directory: Path, manifest: ModelManifest) -> BoosterRuntime:
    """The runtime of a booster artifact: its file verified, then read by its library.

    :raises ArtifactError: a hash mismatch, an untrusted type in ``model.skops``, the
        library missing, a damaged file, or a feature count that differs from the manifest's.
    """
    record = manifest.booster
    library, name = str(record.get("library")), record.get("file")
    if library not in FILES or not isinstance(name, str) or Path(name).name != name:
        raise ArtifactError(f"{directory}: the manifest's booster record is malformed")
    path = directory / name
    payload = read_verified(path, str(record.get("sha256")))
    head = load_model(directory).estimator  # model.skops: verified and audited as always
    native = read_native(library, payload, path)
    head = None if isinstance(head, str) else head  # "passthrough": no steps in front
    model = BoosterModel(native, head, manifest.labels, record.get("missing"))
    declared = len(manifest.features)
    if model.n_features_in_ != declared:
        raise ArtifactError(
            f"{directory}: the manifest lists {declared} features, the model expects"
            f" {model.n_features_in_}"
        )
    if manifest.task != native.task or len(model.classes_) != (native.n_classes or 0):
        raise ArtifactError(f"{directory}: the manifest's task or classes differ from {path}")
    return BoosterRuntime(model, manifest)
