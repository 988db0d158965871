"""`flaskserve train data.csv` with text columns and empty cells: a pipeline that serves them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import flaskserve
from census import ROW, census_frame
from flaskserve.app import create_app
from flaskserve.cli import main
from flaskserve.settings import Settings
from flaskserve.training import read_csv_dataset


@pytest.fixture(scope="module")
def census_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame, target = census_frame(300)
    frame["income"] = target
    path = tmp_path_factory.mktemp("data") / "census.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(census_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`flaskserve train census.csv --target income`, as a user runs it."""
    out = tmp_path_factory.mktemp("models") / "census"
    result = CliRunner().invoke(
        main, ["train", str(census_csv), "--target", "income", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def test_text_columns_and_empty_cells_are_read_as_such(census_csv: Path) -> None:
    dataset = read_csv_dataset(census_csv, "income")
    frame = dataset.features
    assert isinstance(frame, pd.DataFrame)
    assert frame["workclass"].isna().any() and frame["hours_per_week"].isna().any()
    assert frame["age"].dtype == np.float64 and frame["capital_gain"].dtype == np.float64
    assert not pd.api.types.is_numeric_dtype(frame["education"].dtype)


def test_the_manifest_types_every_column(trained: tuple[Path, str]) -> None:
    manifest = flaskserve.load_model(trained[0]).manifest
    kinds = {f.name: (f.dtype, f.nullable, f.unknown_categories) for f in manifest.features}
    assert kinds == {
        "age": ("float64", True, None),
        "workclass": ("str", True, "ignored"),
        "education": ("str", True, "ignored"),
        "sex": ("str", True, "ignored"),
        "hours_per_week": ("float64", True, None),
        "capital_gain": ("float64", True, None),
    }
    assert manifest.input == "frame"
    education = next(f for f in manifest.features if f.name == "education")
    assert education.categories == ("Bachelors", "Doctorate", "HS-grad", "Masters", "Some-college")
    assert trained[1].startswith("Accuracy :  ")


@pytest.mark.parametrize(("runtime", "tolerance"), [("sklearn", 1e-9), ("compiled", 1e-6)])
def test_served_answers_equal_the_pipelines_own(
    trained: tuple[Path, str], runtime: str, tolerance: float
) -> None:
    """Exactly on scikit-learn; within the parity gate's 1e-6 compiled (it passed its gate)."""
    loaded = flaskserve.load_model(trained[0])
    assert loaded.manifest.compiled["status"] == "passed", loaded.manifest.compiled
    estimator = loaded.estimator
    client = create_app(Settings(model_dir=trained[0], runtime=runtime)).test_client()
    rows: list[dict[str, Any]] = [
        ROW,
        {**ROW, "workclass": None, "education": "Doctorate", "capital_gain": None},
        {**ROW, "workclass": "Never-seen", "sex": "Female", "age": 71.5},
    ]
    response = client.post("/predict?proba=true", json=rows)
    assert response.status_code == 200, response.get_json()
    frame = pd.DataFrame(rows).astype({"age": float, "capital_gain": float})
    assert response.get_json()["result"] == estimator.predict(frame).tolist()
    np.testing.assert_allclose(
        response.get_json()["probabilities"], estimator.predict_proba(frame), rtol=0, atol=tolerance
    )
