"""Turn a model directory into a ready runtime."""

from __future__ import annotations

import os

from ..artifact import load_model
from .base import Runtime
from .sklearn import SklearnRuntime


def load_runtime(model_dir: str | os.PathLike[str]) -> Runtime:
    """Load and verify the artifact in *model_dir* and wrap it in a runtime.

    :raises ArtifactError: the artifact is missing, tampered with or untrusted.
    """
    loaded = load_model(model_dir)
    return SklearnRuntime(loaded.estimator, loaded.manifest)
