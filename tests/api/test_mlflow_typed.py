"""``/invocations`` on a model with text columns and missing cells, bodies written by pandas.

Every body is what pandas (and so MLflow's client, which serializes with
pandas) writes for the census frame: ``to_json(orient="split")`` under
``dataframe_split``, ``orient="records"`` under the other keys, ``to_csv``
for ``text/csv``. The answers must equal the pipeline's own ``predict`` on
the same DataFrame. The codec's own checks are in tests/codecs/test_mlflow_typed.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from assertions import assert_error, json_body
from census import ROW, onehot_pipeline, strict_pipeline
from flaskserve.app import create_app
from flaskserve.packaging import save_model
from flaskserve.settings import Settings

Body = Callable[[FlaskClient, pd.DataFrame], TestResponse]


def _json(key: str, orient: str) -> Body:
    def post(client: FlaskClient, frame: pd.DataFrame) -> TestResponse:
        return client.post("/invocations", json={key: json.loads(frame.to_json(orient=orient))})

    return post


def _columns(client: FlaskClient, frame: pd.DataFrame) -> TestResponse:
    # TF Serving's columnar form: {"feature": [value per row], ...}
    columns = {name: json.loads(frame[name].to_json(orient="values")) for name in frame}
    return client.post("/invocations", json={"inputs": columns})


def _csv(client: FlaskClient, frame: pd.DataFrame) -> TestResponse:
    body = frame.to_csv(index=False)
    return client.post("/invocations", data=body, content_type="text/csv")


BODIES: dict[str, Body] = {
    "dataframe_split": _json("dataframe_split", "split"),
    "dataframe_records": _json("dataframe_records", "records"),
    "instances": _json("instances", "records"),
    "inputs": _json("inputs", "records"),
    "inputs-columns": _columns,
    "csv": _csv,
}


def _predictions(response: TestResponse) -> Any:
    assert response.status_code == 200, response.data[:300]
    return json_body(response)["predictions"]


@pytest.mark.parametrize("send", BODIES.values(), ids=BODIES.keys())
def test_answers_equal_the_pipelines_own(
    census_app: Flask, census_pipeline: Any, census: Any, send: Body
) -> None:
    frame = census[0].iloc[:60]
    assert frame.isna().any().any()  # missing text and number cells are among them
    reordered = frame[list(reversed(frame.columns))]  # columns are matched by name

    answer = _predictions(send(census_app.test_client(), reordered))

    assert answer == census_pipeline.predict(frame).tolist()


@pytest.mark.parametrize("send", BODIES.values(), ids=BODIES.keys())
def test_an_int_column_with_a_missing_cell_and_awkward_text(
    census_app: Flask, census_pipeline: Any, census: Any, send: Body
) -> None:
    frame = census[0].iloc[:5].copy()
    frame.loc[1, "age"] = None  # pandas makes the column float64; it writes 39.0 and null
    frame.loc[2, "workclass"] = 'Self-emp, "inc"\nNY'  # quoted in CSV; unknown, ignored
    frame.loc[3, "education"] = "12"  # text that looks like a number stays text

    answer = _predictions(send(census_app.test_client(), frame))

    assert answer == census_pipeline.predict(frame).tolist()


@pytest.fixture(scope="module")
def strict_client(tmp_path_factory: pytest.TempPathFactory, census: Any) -> FlaskClient:
    """A pipeline with no imputers whose encoder refuses unknown categories."""
    model, sample = strict_pipeline(*census)
    out = tmp_path_factory.mktemp("models") / "strict"
    save_model(model, out, sample=sample)
    return create_app(Settings(model_dir=out)).test_client()


GOOD = {**ROW, "hours_per_week": 40.0}


def _split(*rows: dict[str, Any]) -> dict[str, Any]:
    return {"dataframe_split": json.loads(pd.DataFrame(list(rows)).to_json(orient="split"))}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            _split(GOOD, {**GOOD, "age": "old"}),
            "dataframe_split: row 1: feature 'age': expected an integer, got string 'old'",
        ),
        (
            {"dataframe_records": [GOOD, {**GOOD, "workclass": 3}]},
            "dataframe_records: row 1: feature 'workclass': expected text, got number 3",
        ),
        (
            {"inputs": [GOOD, {**GOOD, "hours_per_week": None}]},
            "inputs: row 1: feature 'hours_per_week': may not be missing (null)",
        ),
        (
            {"instances": [{**GOOD, "sex": None}]},
            "instances: row 0: feature 'sex': may not be missing (null)",
        ),
        (
            _split({**GOOD, "workclass": "Never-worked"}),
            "row 0: feature 'workclass': string 'Never-worked' is not a category the model knows",
        ),
        (
            {"dataframe_records": [{k: v for k, v in GOOD.items() if k != "sex"} | {"zip": 1}]},
            "missing feature(s) 'sex'; unknown feature(s) 'zip'",
        ),
        (
            {"dataframe_split": {"columns": ["age", "sex"], "data": [[39, "Male"]]}},
            "'columns': missing feature(s) 'workclass', 'education'",
        ),
    ],
    ids=["text-for-int", "number-for-text", "null-number", "null-text", "unknown", "names", "cols"],
)
def test_bad_json_cells_are_named(
    strict_client: FlaskClient, body: dict[str, Any], says: str
) -> None:
    response = strict_client.post("/invocations", json=body)

    assert_error(response, 400, says)
    assert strict_client.post("/invocations", json=_split(GOOD)).status_code == 200


HEADER = "age,workclass,education,sex,hours_per_week,capital_gain\n"
GOOD_LINE = "39,Private,Bachelors,Male,40,2174\n"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("old,Private,Bachelors,Male,40,0", "line 3: feature 'age': expected an integer"),
        ("39,Private,Bachelors,Male,,0", "line 3: feature 'hours_per_week': may not be missing"),
        ("39,,Bachelors,Male,40,0", "line 3: feature 'workclass': may not be missing"),
        ("39,Private,Bachelors,Male,nan,0", "feature 'hours_per_week': expected a number"),
        ("39,Never-worked,Bachelors,Male,40,0", "'Never-worked' is not a category"),
        ("39,Private,Bachelors,Male,40", "line 3: expected 6 values"),
    ],
    ids=["text-for-int", "empty-number", "empty-text", "nan", "unknown", "ragged"],
)
def test_bad_csv_cells_are_named(strict_client: FlaskClient, line: str, says: str) -> None:
    body = HEADER + GOOD_LINE + line + "\n"

    response = strict_client.post("/invocations", data=body, content_type="text/csv")

    assert_error(response, 400, "CSV: ", says)
    good = strict_client.post("/invocations", data=HEADER + GOOD_LINE, content_type="text/csv")
    assert good.status_code == 200


def test_csv_empty_cells_are_missing_where_the_model_takes_them(
    census_app: Flask, census_pipeline: Any
) -> None:
    body = HEADER + "39,,Bachelors,Male,,2174\n"

    answer = _predictions(
        census_app.test_client().post("/invocations", data=body, content_type="text/csv")
    )

    expected = pd.DataFrame([{**ROW, "workclass": None}])
    assert answer == census_pipeline.predict(expected).tolist()


def test_the_refusing_encoder_is_the_census_pipelines(
    tmp_path: Path, census: Any, census_pipeline: Any
) -> None:
    """``onehot_pipeline(unknown="error")``: an unknown category is a 400, a known one answers."""
    frame, target = census
    out = tmp_path / "refusing"
    save_model(onehot_pipeline(frame, target, unknown="error"), out, sample=frame)
    client = create_app(Settings(model_dir=out)).test_client()

    refused = client.post("/invocations", json={"inputs": [{**ROW, "education": "Preschool"}]})

    assert_error(refused, 400, "feature 'education': string 'Preschool' is not a category")
    assert _predictions(client.post("/invocations", json={"inputs": [ROW]})) == (
        census_pipeline.predict(pd.DataFrame([ROW])).tolist()
    )
