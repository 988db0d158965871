"""/predict on a model with text, category and missing cells: answers equal the pipeline's own."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask import Flask

from census import ROW


def test_answers_equal_the_pipelines_own(
    census_app: Flask, census_pipeline: Any, census: Any
) -> None:
    frame = census[0].iloc[:50]
    rows = [
        {k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)) for k, v in r.items()}
        for r in frame.to_dict(orient="records")
    ]
    response = census_app.test_client().post("/predict?proba=true", json=rows)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["result"] == census_pipeline.predict(frame).tolist()
    np.testing.assert_allclose(
        body["probabilities"], census_pipeline.predict_proba(frame), rtol=0, atol=1e-9
    )


def test_one_row_with_a_missing_cell(census_app: Flask, census_pipeline: Any) -> None:
    response = census_app.test_client().post("/predict", json=ROW)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"result": census_pipeline.predict(pd.DataFrame([ROW])).tolist()}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"age": "old"}, "feature 'age': expected an integer, got string 'old'"),
        ({"workclass": 3}, "feature 'workclass': expected text, got number 3"),
        ({"sex": True}, "feature 'sex': expected text, got boolean true"),
        ({"capital_gain": "1"}, "feature 'capital_gain': expected a number, got string '1'"),
    ],
)
def test_bad_cells_are_named(census_app: Flask, change: dict[str, Any], message: str) -> None:
    client = census_app.test_client()
    response = client.post("/predict", json=[ROW, {**ROW, **change}])
    assert response.status_code == 400
    assert response.get_json() == {"error": f"row 1: {message}"}
    assert client.post("/predict", json=ROW).status_code == 200


def test_a_missing_column_is_named(census_app: Flask) -> None:
    row = {k: v for k, v in ROW.items() if k != "education"}
    response = census_app.test_client().post("/predict", json=row)
    assert response.status_code == 400
    assert "missing feature(s) 'education'" in response.get_json()["error"]
