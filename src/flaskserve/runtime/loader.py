"""Turn a model directory into a ready runtime: compiled when it has earned it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..artifact import ModelManifest, load_model, read_manifest, read_verified
from ..audit import audit_model_file
from ..errors import ArtifactError
from ..settings import RUNTIME_CHOICES
from .base import Runtime
from .sklearn import SklearnRuntime

logger = logging.getLogger(__name__)


def load_runtime(model_dir: str | os.PathLike[str], runtime: str = "auto") -> Runtime:
    """Load and verify the artifact in *model_dir* and wrap it in a runtime.

    :param runtime: ``auto``: the compiled model if it passed its parity gate,
        else scikit-learn; ``sklearn``: always scikit-learn; ``compiled``: the
        compiled model even if it failed the gate (an operator's override).
    :raises ArtifactError: the artifact is missing, tampered with or untrusted,
        the estimator expects another number of features than the manifest
        lists, or ``compiled`` was asked of an artifact without a compiled model.
    """
    directory = Path(model_dir)
    if runtime not in RUNTIME_CHOICES:
        raise ArtifactError(f"runtime {runtime!r}: expected one of {', '.join(RUNTIME_CHOICES)}")
    manifest = read_manifest(directory)
    compiled = manifest.compiled
    if runtime == "compiled" or (runtime == "auto" and compiled.get("status") == "passed"):
        return _load_compiled(directory, manifest, forced=runtime == "compiled")
    loaded = load_model(directory)
    declared = len(loaded.manifest.features)
    expected = getattr(loaded.estimator, "n_features_in_", declared)
    if expected != declared:
        raise ArtifactError(
            f"{model_dir}: the manifest lists {declared} features, the estimator expects {expected}"
        )
    return SklearnRuntime(loaded.estimator, loaded.manifest)


def _load_compiled(directory: Path, manifest: ModelManifest, *, forced: bool) -> Runtime:
    from .compiled import CompiledRuntime

    record = manifest.compiled
    name = record.get("file")
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise ArtifactError(
            f"{directory}: no compiled model (run `flaskserve compile {directory}`)"
        )
    # The scikit-learn model is not loaded, but a changed file still means a changed artifact.
    model_path = directory / manifest.model_file
    audit_model_file(read_verified(model_path, manifest.sha256), model_path)
    payload = read_verified(directory / name, str(record.get("sha256")))
    if forced and record.get("status") != "passed":
        logger.warning(
            "%s: serving the compiled model although it failed its parity gate", directory
        )
    try:
        return CompiledRuntime(payload, manifest)
    except ArtifactError as e:
        raise ArtifactError(f"{directory}: {e.message}") from e
    except ImportError as e:
        raise ArtifactError(
            f"{directory}: the compiled model needs {e.name} (pip install onnxruntime)"
        ) from e
    except Exception as e:  # ONNX Runtime rejects a corrupt graph with its own exception types
        raise ArtifactError(f"{directory / name}: not a loadable ONNX model ({e})") from e
