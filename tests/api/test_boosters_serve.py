"""XGBoost and LightGBM artifacts served over HTTP: answers equal the libraries' own."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from census import as_categories, booster, census_frame
from components import require_module
from flaskserve.app import create_app
from flaskserve.packaging import save_model
from flaskserve.settings import Settings

xgb = require_module("xgboost", "pip install 'flaskserve[xgboost]'")
lgb = require_module("lightgbm", "pip install 'flaskserve[lightgbm]'")


@pytest.fixture(scope="module", params=["xgboost", "lightgbm"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[FlaskClient, Any, Any]:
    frame, target = census_frame(rows=300)
    typed = as_categories(frame)
    model = booster(request.param, typed, target)
    out = tmp_path_factory.mktemp(request.param) / "census"
    save_model(model, out, sample=typed)
    client = create_app(Settings(model_dir=out, runtime="sklearn")).test_client()
    return client, model, typed.iloc[:40]


def _records(frame: Any) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))  # type: ignore[no-any-return]


def test_predict(served: tuple[FlaskClient, Any, Any]) -> None:
    client, model, rows = served
    assert rows.isna().any().any()  # missing cells, as null
    response = client.post("/predict?proba=true", json=_records(rows))
    assert response.status_code == 200, response.json
    body = response.json
    assert body is not None
    assert body["result"] == np.asarray(model.predict(rows)).tolist()
    difference = np.abs(np.asarray(body["probabilities"]) - model.predict_proba(rows)).max()
    assert difference <= 1e-6


def test_v2(served: tuple[FlaskClient, Any, Any]) -> None:
    client, model, rows = served
    kinds = {"int64": "INT64", "float64": "FP64", "category": "BYTES"}
    inputs = [
        {
            "name": name,
            "shape": [len(rows)],
            "datatype": kinds[str(rows[name].dtype)],
            "data": [None if v != v else v for v in rows[name].astype(object).tolist()],
        }
        for name in rows.columns
    ]
    response = client.post("/v2/models/census/infer", json={"inputs": inputs})
    assert response.status_code == 200, response.json
    body = response.json
    assert body is not None
    assert body["outputs"][0]["data"] == np.asarray(model.predict(rows)).tolist()


def test_invocations(served: tuple[FlaskClient, Any, Any]) -> None:
    client, model, rows = served
    split = json.loads(rows.to_json(orient="split", index=False))
    response = client.post("/invocations", json={"dataframe_split": split})
    assert response.status_code == 200, response.json
    body = response.json
    assert body is not None
    assert body["predictions"] == np.asarray(model.predict(rows)).tolist()


def test_model_shows_the_booster(served: tuple[FlaskClient, Any, Any]) -> None:
    client, _, _ = served
    body = client.get("/model").json
    assert body is not None
    assert body["runtime"] in ("xgboost", "lightgbm")
    assert body["booster"]["format"] in ("xgboost-json", "lightgbm-text")
