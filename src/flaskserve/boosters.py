"""XGBoost and LightGBM models: from a fitted model or a library's own file to what an
artifact stores.

``save_model`` stores a booster in its library's own format (XGBoost JSON
``model.json``, LightGBM text ``model.txt``), never a pickle; a Pipeline's
steps before it go to ``model.skops``. ``flaskserve import`` reads a file the
libraries wrote themselves, recognised by its content: XGBoost JSON (an object
with a ``learner``), XGBoost UBJSON (``{`` then a binary length marker) or
LightGBM text (``tree`` then ``version=v...``).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArtifactError
from .runtime.boosters import FILES, BoosterModel, NativeModel, is_ubjson, read_native

LIBRARIES = tuple(FILES)
#: the ``compiled`` record of a booster artifact: its library serves it
NOT_COMPILED = {
    "status": "unsupported",
    "reason": "XGBoost and LightGBM models are served by their own library (not compiled yet)",
}
#: a passthrough head: a booster saved without Pipeline steps in front of it
NO_HEAD = "passthrough"


@dataclass(frozen=True)
class BoosterParts:
    """A booster model taken apart for an artifact.

    :ivar model: what predicts as the library does, for the manifest's typing and
        smoke rows: the estimator itself, or a :class:`BoosterModel` for a bare booster.
    :ivar head: the Pipeline's steps before the booster, or :data:`NO_HEAD`.
    :ivar payload: the booster in its library's own format.
    """

    model: Any
    head: Any
    payload: bytes
    native: NativeModel
    task: str
    labels: tuple[Any, ...]
    record: dict[str, Any] = field(default_factory=dict)

    def frame_columns(self, frame: Any) -> list[str] | None:
        """The columns of *frame* a bare LightGBM model takes: LightGBM's own feature names
        differ from the frame's (spaces become underscores), and it takes columns by position.
        ``None``: the model's own names (``feature_names_in_``) are the frame's.
        """
        if self.native.library != "lightgbm" or not isinstance(self.head, str):
            return None
        return [str(c) for c in frame.columns]


def library_of(model: Any) -> str | None:
    """``xgboost`` or ``lightgbm`` for one of their models or boosters, else ``None``."""
    library = type(model).__module__.split(".")[0]
    return library if library in LIBRARIES else None


def split_booster(estimator: Any) -> BoosterParts | None:
    """*estimator* taken apart, if it is (or its Pipeline ends in) an XGBoost or LightGBM
    model; ``None`` for any other.

    Accepted: ``XGBClassifier``/``XGBRegressor`` (fitted, or restored with ``load_model``),
    ``LGBMClassifier``/``LGBMRegressor``, a bare ``xgboost.Booster`` or ``lightgbm.Booster``
    (classes ``0..k-1``), and a scikit-learn Pipeline ending in one of these.

    :raises ValueError: the booster is not fitted, or its objective is not served.
    """
    head: Any = NO_HEAD
    final = estimator
    steps = getattr(estimator, "steps", None)
    if steps and type(estimator).__name__ == "Pipeline":
        final = steps[-1][1]
        head = estimator[:-1] if len(steps) > 1 else NO_HEAD
    library = library_of(final)
    if library is None:
        return None
    file, form = FILES[library]
    payload = _native_payload(library, final)
    try:
        native = read_native(library, payload, f"the {library} model")
    except ArtifactError as e:
        raise ValueError(e.message) from e
    labels = _labels(final, native)
    missing = getattr(final, "missing", math.nan)
    record: dict[str, Any] = {
        "library": library,
        "file": file,
        "format": form,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "version": _version(library),
        "objective": native.objective,
    }
    if missing is not None and not (isinstance(missing, float) and math.isnan(missing)):
        record["missing"] = float(missing)  # XGBoost's missing value, when not NaN
    model = estimator
    if not hasattr(final, "fit"):  # a bare Booster: predicts through flaskserve's own face
        model = BoosterModel(native, None if isinstance(head, str) else head, labels, missing=None)
    return BoosterParts(model, head, payload, native, native.task, labels, record)


def _native_payload(library: str, final: Any) -> bytes:
    try:
        if library == "xgboost":
            booster = final.get_booster() if hasattr(final, "get_booster") else final
            return bytes(booster.save_raw(raw_format="json"))
        booster = getattr(final, "booster_", final)  # LGBMModel.booster_, or a Booster
        return str(booster.model_to_string()).encode("utf-8")
    except Exception as e:  # an unfitted wrapper raises the library's own NotFitted kinds
        raise ValueError(f"estimator: expected a fitted {library} model ({e})") from e


def _labels(final: Any, native: NativeModel) -> tuple[Any, ...]:
    if not native.n_classes:
        return ()
    classes = getattr(final, "classes_", None)
    if classes is None:
        return tuple(range(native.n_classes))
    labels = tuple(classes.tolist() if hasattr(classes, "tolist") else classes)
    if len(labels) != native.n_classes:
        raise ValueError(
            f"estimator: classes_ has {len(labels)} classes, the booster {native.n_classes}"
        )
    return labels


def _version(library: str) -> str:
    from .runtime.boosters import import_library

    return str(import_library(library).__version__)


def sniff(payload: bytes) -> str | None:
    """The library that wrote *payload*, from its content: ``xgboost``, ``lightgbm`` or
    ``None`` (not a booster file)."""
    head = payload[:4096]
    if is_ubjson(head) and b"learner" in head[:64]:
        return "xgboost"
    if head.lstrip()[:1] == b"{" and b'"learner"' in head:
        return "xgboost"
    if head.startswith(b"tree\n") or (head[:1] != b"{" and b"\nversion=v" in head[:64]):
        return "lightgbm"
    return None


def read_native_file(path: str | os.PathLike[str]) -> NativeModel | None:
    """The booster in *path*, a file XGBoost or LightGBM wrote; ``None`` for another file.

    :raises ArtifactError: the file cannot be read, is damaged or truncated, or its
        library is not installed; the message names the file.
    """
    try:
        payload = Path(path).read_bytes()
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read ({e.strerror})") from e
    library = sniff(payload)
    if library is None:
        return None
    return read_native(library, payload, path)
