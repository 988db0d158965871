"""MLflow's scoring protocol (``/invocations``, ``/ping``, ``/health``, ``/version``).

Every request body adapts an example from MLflow's own documentation to the
iris model: the "Deploy MLflow Model as a Local Inference Server" page
(mlflow.org/docs/latest/ml/deployment/deploy-model-locally, "Accepted Input
Formats"), the request examples of the MLflow 2.x "Deploy MLflow models"
section (docs/source/models.rst) and ``mlflow models serve --help``. Each
answers MLflow's ``{"predictions": [...]}`` for the tutorial's two rows.
The codec's exhaustive checks are in ``tests/codecs/test_mlflow.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from assertions import assert_error, json_body
from flaskserve import __version__
from flaskserve.app import create_app
from flaskserve.settings import Settings

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# The tutorial's row (virginica, 2) and a setosa (0).
ROWS = [[5.9, 3.0, 5.1, 1.8], [5.0, 3.5, 1.4, 0.2]]
RECORDS = [dict(zip(FEATURES, row, strict=True)) for row in ROWS]
COLUMNS = {name: [row[i] for row in ROWS] for i, name in enumerate(FEATURES)}
EXPECTED = {"predictions": [2, 0]}
JSON = {"Content-Type": "application/json"}
CSV = {"Content-Type": "text/csv"}
# pandas_df.to_csv(index=False) of the two rows
CSV_BODY = b"sepal_length,sepal_width,petal_length,petal_width\n5.9,3.0,5.1,1.8\n5.0,3.5,1.4,0.2\n"

FORMATS: dict[str, dict[str, Any]] = {
    # models.rst: {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3], [4, 5, 6]]}}
    "dataframe_split": {"dataframe_split": {"columns": FEATURES, "data": ROWS}},
    # `mlflow models serve --help`:
    #   {"dataframe_split": {"columns": ["a", "b"], "index": [0, 1, 2], "data": [[1, 2], ...]}}
    # which is the local-server page's {"dataframe_split": pandas_df.to_dict(orient="split")}
    "dataframe_split-with-index": {
        "dataframe_split": {"columns": FEATURES, "index": [0, 1], "data": ROWS}
    },
    # the same, its columns in another order than the model's
    "dataframe_split-reordered": {
        "dataframe_split": {
            "columns": FEATURES[::-1],
            "data": [row[::-1] for row in ROWS],
        }
    },
    # models.rst / `serve --help`: {"dataframe_records": [{"a": 1, "b": 2}, {"a": 3, "b": 4}, ...]}
    # i.e. {"dataframe_records": pandas_df.to_dict(orient="records")}
    "dataframe_records": {"dataframe_records": RECORDS},
    # models.rst: {"instances": [{"a": "s1", "b": 1, "c": [1, 2, 3]}, ...]} (TF Serving rows)
    "instances-records": {"instances": RECORDS},
    # `serve --help` uses "instances" for the same rows as "inputs"
    "instances-rows": {"instances": ROWS},
    # the local-server page's curl: --data '{"inputs": [[1, 2], [3, 4], [5, 6]]}'
    "inputs-rows": {"inputs": ROWS},
    # models.rst: {"inputs": {"a": ["s1", "s2", "s3"], "b": [1, 2, 3], ...}} (TF Serving columns)
    "inputs-columnar": {"inputs": COLUMNS},
    # the local-server page's optional "params", empty: a scikit-learn model takes none
    "inputs-empty-params": {"inputs": ROWS, "params": {}},
}


def _post(client: FlaskClient, payload: Any, headers: dict[str, str] = JSON) -> TestResponse:
    return client.post("/invocations", data=json.dumps(payload), headers=headers)


@pytest.mark.parametrize("payload", FORMATS.values(), ids=FORMATS)
def test_documented_json_formats(client: FlaskClient, payload: dict[str, Any]) -> None:
    response = _post(client, payload)
    assert response.status_code == 200, response.data
    assert response.content_type == "application/json"
    assert json_body(response) == EXPECTED
    assert response.headers["X-Model-Name"] == "iris"
    assert response.headers["X-Model-Version"] == "1"


@pytest.mark.parametrize(
    "body",
    [
        CSV_BODY,
        b"petal_width,petal_length,sepal_width,sepal_length\n1.8,5.1,3.0,5.9\n0.2,1.4,3.5,5.0\n",
        CSV_BODY.replace(b"\n", b"\r\n"),
        b"\xef\xbb\xbf" + CSV_BODY,
    ],
    ids=["to_csv", "reordered-columns", "crlf", "utf8-bom"],
)
def test_csv(client: FlaskClient, body: bytes) -> None:
    # The local-server page: "CSV input must be a valid pandas.DataFrame CSV
    # representation", sent with curl --data; MLflow's server reads it with
    # pandas.read_csv, so the first line names the columns.
    response = client.post("/invocations", data=body, headers=CSV)
    assert response.status_code == 200, response.data
    assert json_body(response) == EXPECTED


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json; charset=utf-8", json.dumps(FORMATS["inputs-rows"]).encode()),
        ("application/json;", json.dumps(FORMATS["inputs-rows"]).encode()),  # the page's curl
        ("Application/JSON", json.dumps(FORMATS["inputs-rows"]).encode()),
        ("text/csv; charset=utf-8", CSV_BODY),
    ],
    ids=["json-charset", "json-trailing-semicolon", "json-upper-case", "csv-charset"],
)
def test_content_type_parameters(client: FlaskClient, content_type: str, body: bytes) -> None:
    response = client.post("/invocations", data=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.data
    assert json_body(response) == EXPECTED


def test_one_row(client: FlaskClient) -> None:
    assert json_body(_post(client, {"dataframe_records": RECORDS[:1]})) == {"predictions": [2]}


def test_agrees_with_predict(client: FlaskClient) -> None:
    rows = [[6.1, 2.8, 4.7, 1.2], [6.3, 3.3, 6.0, 2.5], [4.9, 3.1, 1.5, 0.1]]
    tutorial = json_body(client.post("/predict", json=rows))["result"]
    assert json_body(_post(client, {"inputs": rows}))["predictions"] == tutorial


EXTRA = "colour"
UNKNOWN_COLUMN: dict[str, tuple[bytes, dict[str, str]]] = {
    "dataframe_split": (
        json.dumps(
            {"dataframe_split": {"columns": [*FEATURES, EXTRA], "data": [[*r, 1] for r in ROWS]}}
        ).encode(),
        JSON,
    ),
    "dataframe_records": (
        json.dumps({"dataframe_records": [{**r, EXTRA: 1} for r in RECORDS]}).encode(),
        JSON,
    ),
    "instances-records": (
        json.dumps({"instances": [{**r, EXTRA: 1} for r in RECORDS]}).encode(),
        JSON,
    ),
    "inputs-columnar": (json.dumps({"inputs": {**COLUMNS, EXTRA: [1, 1]}}).encode(), JSON),
    "csv": (
        b"sepal_length,sepal_width,petal_length,petal_width,colour\n"
        b"5.9,3.0,5.1,1.8,1\n5.0,3.5,1.4,0.2,1\n",
        CSV,
    ),
}


@pytest.mark.parametrize(("body", "headers"), UNKNOWN_COLUMN.values(), ids=UNKNOWN_COLUMN)
def test_unknown_column_is_refused(
    client: FlaskClient, body: bytes, headers: dict[str, str]
) -> None:
    """MLflow would drop a column the model does not know; a typo must not go unnoticed."""
    response = client.post("/invocations", data=body, headers=headers)
    assert_error(response, 400, f"'{EXTRA}'", "unknown")


MISSING = "petal_width"
MISSING_COLUMN: dict[str, tuple[bytes, dict[str, str]]] = {
    "dataframe_split": (
        json.dumps(
            {"dataframe_split": {"columns": FEATURES[:3], "data": [r[:3] for r in ROWS]}}
        ).encode(),
        JSON,
    ),
    "dataframe_records": (
        json.dumps(
            {"dataframe_records": [{k: r[k] for k in FEATURES[:3]} for r in RECORDS]}
        ).encode(),
        JSON,
    ),
    "inputs-columnar": (
        json.dumps({"inputs": {k: COLUMNS[k] for k in FEATURES[:3]}}).encode(),
        JSON,
    ),
    "csv": (
        b"sepal_length,sepal_width,petal_length\n5.9,3.0,5.1\n5.0,3.5,1.4\n",
        CSV,
    ),
}


@pytest.mark.parametrize(("body", "headers"), MISSING_COLUMN.values(), ids=MISSING_COLUMN)
def test_missing_column_is_refused(
    client: FlaskClient, body: bytes, headers: dict[str, str]
) -> None:
    response = client.post("/invocations", data=body, headers=headers)
    assert_error(response, 400, f"'{MISSING}'", "missing")


BAD_JSON: dict[str, tuple[Any, tuple[str, ...]]] = {
    # the local-server page's {"instances": [1.0, 2.0, 5.0]}: one flat array of 4 could be
    # one row or four one-feature rows
    "flat-instances": ({"instances": ROWS[0]}, ("ambiguous", "[[...]]")),
    # the local-server page's "params": {"max_answer_len": 10}
    "params": ({"inputs": ROWS, "params": {"max_answer_len": 10}}, ("params", "max_answer_len")),
    # MLflow 1.x's unwrapped split body, refused by MLflow 2 as well
    "mlflow-1-split": ({"columns": FEATURES, "data": ROWS}, ("unknown key(s)", "'columns'")),
    # the local-server page's "record-oriented DataFrame input": a bare list
    "bare-records": (RECORDS, ("expected a JSON object", "wrap it")),
    "two-formats": ({"inputs": ROWS, "instances": ROWS}, ("exactly one", "got 2")),
    "null-cell": (
        {"dataframe_split": {"columns": FEATURES, "data": [[5.9, None, 5.1, 1.8]]}},
        ("'sepal_width'", "null"),
    ),
    "index-length": (
        {"dataframe_split": {"columns": FEATURES, "index": [0], "data": ROWS}},
        ("'index'", "2 labels"),
    ),
}


@pytest.mark.parametrize(("payload", "says"), BAD_JSON.values(), ids=BAD_JSON)
def test_bad_json_is_400(client: FlaskClient, payload: Any, says: tuple[str, ...]) -> None:
    assert_error(_post(client, payload), 400, *says)


def test_invalid_json_is_400(client: FlaskClient) -> None:
    assert_error(client.post("/invocations", data=b'{"inputs": [[5.9,', headers=JSON), 400, "JSON")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},  # curl --data without -H
        {"Content-Type": "application/octet-stream"},
        # The local-server page writes -H 'Content-Type: application/csv', but MLflow's
        # scoring server itself accepts only text/csv and application/json (CONTENT_TYPES
        # in mlflow/pyfunc/scoring_server), as flaskserve does.
        {"Content-Type": "application/csv"},
    ],
    ids=["none", "text-plain", "form", "octet-stream", "application-csv"],
)
def test_unsupported_content_type_is_415(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.post("/invocations", data=json.dumps(FORMATS["inputs-rows"]), headers=headers)
    assert_error(response, 415, "application/json", "text/csv")


def test_ping_health_and_version(client: FlaskClient) -> None:
    ping = client.get("/ping")
    assert ping.status_code == 200
    assert ping.data.strip() == b""
    assert client.get("/health").status_code == 200  # "Same as /ping"
    version = client.get("/version")
    assert version.status_code == 200
    assert version.get_data(as_text=True) == __version__
    assert version.mimetype == "text/plain"


@pytest.fixture(scope="module")
def small_app(model_dir: Path) -> Flask:
    return create_app(Settings(model_dir=model_dir, max_rows=3, poll_seconds=0))


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (json.dumps({"inputs": ROWS * 2}).encode(), JSON),
        (json.dumps({"dataframe_records": RECORDS * 2}).encode(), JSON),
        (json.dumps({"inputs": {k: v * 2 for k, v in COLUMNS.items()}}).encode(), JSON),
        (CSV_BODY + CSV_BODY.split(b"\n", 1)[1], CSV),
    ],
    ids=["inputs", "dataframe_records", "inputs-columnar", "csv"],
)
def test_too_many_rows_is_413(small_app: Flask, body: bytes, headers: dict[str, str]) -> None:
    response = small_app.test_client().post("/invocations", data=body, headers=headers)
    assert_error(response, 413, "4 rows", "limit of 3")


def test_get_invocations_is_405(client: FlaskClient) -> None:
    response = client.get("/invocations")
    assert_error(response, 405, "use POST")
    assert "POST" in response.headers["Allow"]


def test_missing_model_is_503(tmp_path: Path) -> None:
    client = create_app(Settings(model_dir=tmp_path / "missing", poll_seconds=0)).test_client()
    assert client.get("/ping").status_code == 200  # alive, though nothing is served
    assert_error(_post(client, FORMATS["inputs-rows"]), 503, "no model is ready")
