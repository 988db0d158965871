"""Each process loads a model (and its explainer) once, and only the model the client read."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest

from flaskserve.artifact import ModelManifest, read_manifest
from flaskserve.batch import scoring
from flaskserve.batch.scoring import (
    ModelRef,
    cached_explainer,
    cached_runtime,
    load_checked_explainer,
)
from flaskserve.errors import ArtifactError
from flaskserve.explain import Explainer, build_explainer


def test_a_model_is_loaded_once_per_process(model_dir: Path) -> None:
    model = ModelRef(str(model_dir), read_manifest(model_dir).sha256, "sklearn")

    runtime = cached_runtime(model)

    assert cached_runtime(ModelRef(model.path, model.sha256, "sklearn")) is runtime
    assert runtime.kind == "sklearn"


def test_a_model_changed_since_the_client_read_it_is_refused(model_dir: Path) -> None:
    model = ModelRef(str(model_dir), "0" * 64)

    with pytest.raises(ArtifactError, match="the model changed while the batch ran"):
        cached_runtime(model)


def test_an_explainer_is_made_once_per_process(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = []
    build = build_explainer

    def counting(directory: Path, manifest: ModelManifest) -> Explainer:
        made.append(directory)
        return build(directory, manifest)

    monkeypatch.setattr(scoring, "build_explainer", counting)
    monkeypatch.setattr(scoring, "_explainers", OrderedDict())  # none from other tests
    model = ModelRef(str(model_dir), read_manifest(model_dir).sha256, "sklearn")

    explainer = cached_explainer(model)

    assert cached_explainer(ModelRef(model.path, model.sha256, "sklearn")) is explainer
    assert made == [model_dir]
    assert explainer.space == "probability"


def test_an_explainer_of_a_model_changed_since_the_client_read_it_is_refused(
    model_dir: Path,
) -> None:
    with pytest.raises(ArtifactError, match="the model changed while the batch ran"):
        load_checked_explainer(ModelRef(str(model_dir), "0" * 64))
