"""Each process loads a model once, and only the model the client read."""

from __future__ import annotations

from pathlib import Path

import pytest

from flaskserve.artifact import read_manifest
from flaskserve.batch.scoring import ModelRef, cached_runtime
from flaskserve.errors import ArtifactError


def test_a_model_is_loaded_once_per_process(model_dir: Path) -> None:
    model = ModelRef(str(model_dir), read_manifest(model_dir).sha256, "sklearn")

    runtime = cached_runtime(model)

    assert cached_runtime(ModelRef(model.path, model.sha256, "sklearn")) is runtime
    assert runtime.kind == "sklearn"


def test_a_model_changed_since_the_client_read_it_is_refused(model_dir: Path) -> None:
    model = ModelRef(str(model_dir), "0" * 64)

    with pytest.raises(ArtifactError, match="the model changed while the batch ran"):
        cached_runtime(model)
