"""The one way from an artifact directory to a runtime that is allowed to answer.

``flaskserve serve`` (at start and on every rescan), the repository API and
``flaskserve batch`` all call :func:`admit`, so a model one of them refuses,
every one of them refuses, for the same reason. The checks, in order:

1. the manifest is well formed (``artifact.read_manifest``);
2. every file it names is a regular file inside the artifact and has the
   SHA-256 the manifest records (``artifact.read_verified``);
3. the model file holds only trusted types (``audit``; skops loads nothing else);
4. the estimator expects as many features as the manifest lists;
5. the smoke rows stored at training still give the predictions recorded then.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .artifact import ModelManifest, load_model, read_manifest, read_verified
from .audit import audit_model_file
from .errors import ArtifactError, InvalidInput
from .runtime.base import Runtime
from .runtime.compiled import PARALLEL_ROWS
from .runtime.native import CHECKPOINT_FILE
from .runtime.sklearn import SklearnRuntime
from .schema import rows_input

logger = logging.getLogger(__name__)

#: ``auto``: the compiled model if it passed its parity gate, else scikit-learn;
#: ``sklearn``: always scikit-learn (an XGBoost or LightGBM model: its library);
#: ``compiled``: the compiled model even if it failed the gate (an operator's override).
RUNTIME_CHOICES = ("auto", "sklearn", "compiled")


def admit(
    model_dir: str | os.PathLike[str], runtime: str = "auto", *, parallel_rows: int = PARALLEL_ROWS
) -> Runtime:
    """Load the artifact in *model_dir* and prove it works before it may answer.

    :param runtime: one of :data:`RUNTIME_CHOICES`.
    :param parallel_rows: the compiled model splits a batch this large over every usable
        core, where its gate allowed it; 0: one thread always.
    :raises ArtifactError: any check above fails, or ``compiled`` was asked of an
        artifact without a compiled model.
    """
    loaded = load_runtime(model_dir, runtime, parallel_rows=parallel_rows)
    _smoke_test(Path(model_dir), loaded)
    return loaded


def load_runtime(
    model_dir: str | os.PathLike[str], runtime: str = "auto", *, parallel_rows: int = PARALLEL_ROWS
) -> Runtime:
    """Checks 1-4 of :func:`admit`, without the smoke test (for tools that inspect a model).

    :raises ArtifactError: as :func:`admit`.
    """
    directory = Path(model_dir)
    if runtime not in RUNTIME_CHOICES:
        raise ArtifactError(f"runtime {runtime!r}: expected one of {', '.join(RUNTIME_CHOICES)}")
    manifest = read_manifest(directory)
    compiled = manifest.compiled
    passed = compiled.get("status") == "passed"
    # XGBoost, LightGBM: their library answers under "sklearn", and under "auto" unless compiled
    if manifest.booster and (runtime == "sklearn" or (runtime == "auto" and not passed)):
        from .runtime.boosters import load_booster_runtime

        return load_booster_runtime(directory, manifest)
    if runtime == "compiled" or (runtime == "auto" and passed):
        return _load_compiled(directory, manifest, runtime == "compiled", parallel_rows)
    if runtime == "auto" and compiled.get("status"):
        logger.info(
            "%s: serving scikit-learn, not the compiled model: %s",
            directory,
            compiled.get("reason") or f"its parity gate {compiled.get('status')}",
        )
    loaded = load_model(directory)
    declared = len(loaded.manifest.features)
    expected = getattr(loaded.estimator, "n_features_in_", declared)
    if expected != declared:
        raise ArtifactError(
            f"{model_dir}: the manifest lists {declared} features, the estimator expects {expected}"
        )
    return SklearnRuntime(loaded.estimator, loaded.manifest)


def _load_compiled(
    directory: Path, manifest: ModelManifest, forced: bool, parallel_rows: int
) -> Runtime:
    from .runtime.compiled import CompiledRuntime  # ONNX Runtime only when a model needs it

    record = manifest.compiled
    name = record.get("file")
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise ArtifactError(
            f"{directory}: no compiled model (run `flaskserve compile {directory}`)"
        )
    # The scikit-learn model is not loaded, but a changed file still means a changed artifact.
    model_path = directory / manifest.model_file
    audit_model_file(read_verified(model_path, manifest.sha256), model_path)
    booster = manifest.booster.get("file")  # not loaded either: still part of the artifact
    if isinstance(booster, str) and Path(booster).name == booster:
        read_verified(directory / booster, str(manifest.booster.get("sha256")))
    payload = read_verified(directory / name, str(record.get("sha256")))
    if forced and record.get("status") != "passed":
        logger.warning(
            "%s: serving the compiled model although it failed its parity gate", directory
        )
    native = record.get("native") or {}
    checkpoint = None
    if native.get("status") == "passed" and native.get("file") == CHECKPOINT_FILE:
        checkpoint = read_verified(directory / CHECKPOINT_FILE, str(native.get("sha256")))
    try:
        return CompiledRuntime(payload, manifest, parallel_rows=parallel_rows, native=checkpoint)
    except ArtifactError as e:
        raise ArtifactError(f"{directory}: {e.message}") from e
    except ImportError as e:
        raise ArtifactError(
            f"{directory}: the compiled model needs {e.name} (pip install onnxruntime)"
        ) from e
    except Exception as e:  # ONNX Runtime rejects a corrupt graph with its own exception types
        raise ArtifactError(f"{directory / name}: not a loadable ONNX model ({e})") from e


def _smoke_test(path: Path, runtime: Runtime) -> None:
    sample = runtime.manifest.sample
    if not sample.get("inputs"):
        return
    try:
        rows = rows_input(runtime.manifest, sample["inputs"], "smoke row {}: ".format)
    except (InvalidInput, IndexError, TypeError) as e:
        raise ArtifactError(f"{path}: the smoke rows do not fit the features ({e})") from e
    got = runtime.predict(rows).predictions
    expected = np.asarray(sample["predictions"])
    same = (
        np.allclose(got, expected, rtol=1e-6, atol=1e-6)
        if got.dtype.kind == "f"
        else np.array_equal(got, expected)
    )
    if not same:
        raise ArtifactError(
            f"{path}: smoke test failed: the sample rows stored at training"
            " no longer give the recorded predictions"
        )
