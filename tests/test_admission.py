"""One admission path: ``serve`` (the registry) and ``batch`` refuse exactly the same models.

Each broken artifact is a copy of the tutorial's with one thing wrong; every
refusal must come from :func:`flaskserve.admission.admit`, with the same reason
on both paths, and the intact copy must be accepted by both.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flaskserve.admission import admit
from flaskserve.artifact import MANIFEST_NAME, MODEL_NAME
from flaskserve.cli import main
from flaskserve.errors import ArtifactError
from flaskserve.runtime.registry import ModelRegistry

Breakage = Callable[[Path], None]


def _edit_manifest(directory: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = directory / MANIFEST_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def _wrong_smoke_predictions(directory: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["sample"]["predictions"] = [(p + 1) % 3 for p in data["sample"]["predictions"]]

    _edit_manifest(directory, edit)


def _appended_bytes(directory: Path) -> None:
    with (directory / MODEL_NAME).open("ab") as f:
        f.write(b"\0appended")


def _one_feature_too_few(directory: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["features"] = data["features"][:3]
        data["sample"] = {}
        data["compiled"] = {}

    _edit_manifest(directory, edit)


def _tampered_compiled_model(directory: Path) -> None:
    with (directory / "model.onnx").open("ab") as f:
        f.write(b"\0")


BROKEN: dict[str, tuple[Breakage, str]] = {
    "smoke-test": (_wrong_smoke_predictions, "smoke test failed"),
    "sha256": (_appended_bytes, "SHA-256 mismatch"),
    "feature-count": (_one_feature_too_few, "the estimator expects 4"),
    "compiled-sha256": (_tampered_compiled_model, "SHA-256 mismatch"),
}


def _batch(model: Path, tmp_path: Path) -> tuple[int, str]:
    rows = tmp_path / "rows.csv"
    rows.write_text("sepal_length,sepal_width,petal_length,petal_width\n5.9,3,5.1,1.8\n")
    result = CliRunner().invoke(
        main, ["batch", str(model), str(rows), "-o", str(tmp_path / "o.csv")]
    )
    return result.exit_code, result.output


def _serve_refusal(model: Path) -> str | None:
    snapshot = ModelRegistry(model).refresh()
    return next(iter(snapshot.failures.values()), None)


@pytest.mark.parametrize("kind", list(BROKEN))
def test_batch_refuses_exactly_what_serve_refuses(
    model_dir: Path, tmp_path: Path, kind: str
) -> None:
    breakage, reason = BROKEN[kind]
    broken = tmp_path / "iris"
    shutil.copytree(model_dir, broken)
    breakage(broken)

    with pytest.raises(ArtifactError, match=reason) as refused:
        admit(broken)
    served = _serve_refusal(broken)
    assert served == refused.value.message
    code, output = _batch(broken, tmp_path)
    assert code != 0
    assert reason in output and "o.csv" not in {p.name for p in tmp_path.iterdir()}


def test_an_intact_copy_is_admitted_by_both(model_dir: Path, tmp_path: Path) -> None:
    intact = tmp_path / "iris"
    shutil.copytree(model_dir, intact)
    assert admit(intact).manifest.name == "iris"
    assert _serve_refusal(intact) is None
    assert ModelRegistry(intact).refresh().get("iris").version == 1
    code, output = _batch(intact, tmp_path)
    assert code == 0, output
    assert (tmp_path / "o.csv").read_text().splitlines()[1] == "2"
