"""Turn a model directory into a ready runtime."""

from __future__ import annotations

import os

from ..artifact import load_model
from ..errors import ArtifactError
from .base import Runtime
from .sklearn import SklearnRuntime


def load_runtime(model_dir: str | os.PathLike[str]) -> Runtime:
    """Load and verify the artifact in *model_dir* and wrap it in a runtime.

    :raises ArtifactError: the artifact is missing, tampered with or untrusted,
        or the estimator expects another number of features than the manifest lists.
    """
    loaded = load_model(model_dir)
    declared = len(loaded.manifest.features)
    expected = getattr(loaded.estimator, "n_features_in_", declared)
    if expected != declared:
        raise ArtifactError(
            f"{model_dir}: the manifest lists {declared} features, the estimator expects {expected}"
        )
    return SklearnRuntime(loaded.estimator, loaded.manifest)
