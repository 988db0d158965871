"""The other surfaces of a booster model: its web page and `flaskserve batch`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from census import as_categories, booster, census_frame
from components import require_module
from flaskserve.app import create_app
from flaskserve.cli import main
from flaskserve.packaging import save_model
from flaskserve.settings import Settings

lgb = require_module("lightgbm", "pip install 'flaskserve[lightgbm]'")
xgb = require_module("xgboost", "pip install 'flaskserve[xgboost]'")


@pytest.fixture(scope="module", params=["xgboost", "lightgbm"])
def served_booster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    frame, target = census_frame(rows=300, seed=5)
    typed = as_categories(frame)
    model = booster(request.param, typed, target, trees=15)
    out = tmp_path_factory.mktemp(request.param) / "census"
    save_model(model, out, sample=typed, compile=False)  # the native runtime serves
    return out, model, frame


def test_the_web_page_offers_the_categories(served_booster: Any) -> None:
    out, _, _ = served_booster
    page = create_app(Settings(model_dir=out)).test_client().get("/ui/census")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<select" in html and "Doctorate" in html and "Self-emp" in html


def test_batch_scores_like_the_library(served_booster: Any, tmp_path: Path) -> None:
    out, model, frame = served_booster
    rows = frame.iloc[:120]
    rows.to_csv(tmp_path / "in.csv", index=False)
    result = CliRunner().invoke(
        main, ["batch", str(out), str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv")]
    )
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(tmp_path / "out.csv")
    expected = np.asarray(model.predict(as_categories(rows)))
    assert scored["prediction"].astype(str).tolist() == expected.astype(str).tolist()
