"""``POST /explain`` and KServe V1 on the app: the shape, additivity on every row, every refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.datasets import load_diabetes, load_iris
from sklearn.neighbors import KNeighborsClassifier

from census import ROW as CENSUS_ROW
from components import require_module
from flaskserve import save_model
from flaskserve.app import create_app
from flaskserve.errors import SettingsError
from flaskserve.settings import Settings

require_module("shap", "the iris forest is explained with it")

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TUTORIAL_ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
CLASS_NAMES = ["setosa", "versicolor", "virginica"]
TOLERANCE = 1e-6


def _rows(count: int, seed: int = 3) -> list[dict[str, float]]:
    x = load_iris()["data"]
    rng = np.random.default_rng(seed)
    values = np.round(rng.uniform(x.min(0), x.max(0), size=(count, 4)), 2)
    return [dict(zip(FEATURES, r, strict=True)) for r in values.tolist()]


def _additive(part: dict[str, Any]) -> None:
    total = part["base_value"] + sum(part["contributions"].values())
    assert abs(total - part["output"]) <= TOLERANCE


def test_the_tutorial_row_adds_up_to_the_probability_predict_shows(client: FlaskClient) -> None:
    answer = client.post("/explain", json=TUTORIAL_ROW)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["model_name"] == "iris" and body["space"] == "probability"
    (row,) = body["explanations"]
    assert row["prediction"] == 2 and row["class_name"] == "virginica"
    assert list(row["contributions"]) == FEATURES
    _additive(row)
    shown = client.post("/predict?proba=true", json=TUTORIAL_ROW).get_json()
    assert abs(row["output"] - shown["probabilities"][0][2]) <= TOLERANCE
    assert round(row["output"], 3) == 0.953


def test_every_row_and_class_adds_up_to_the_served_probabilities(client: FlaskClient) -> None:
    rows = _rows(300)
    body = client.post("/explain/iris?all_classes=true", json=rows).get_json()
    served = client.post("/predict/iris?proba=true", json=rows).get_json()
    assert len(body["explanations"]) == 300
    for row, label, probabilities in zip(
        body["explanations"], served["result"], served["probabilities"], strict=True
    ):
        assert row["prediction"] == label and row["class_name"] == CLASS_NAMES[label]
        assert list(row["classes"]) == CLASS_NAMES
        for name, probability in zip(CLASS_NAMES, probabilities, strict=True):
            _additive(row["classes"][name])
            assert abs(row["classes"][name]["output"] - probability) <= TOLERANCE


def test_the_predicted_class_is_explained_by_default(client: FlaskClient) -> None:
    rows = _rows(20, seed=8)
    default = client.post("/explain", json=rows).get_json()["explanations"]
    every = client.post("/explain?all_classes=true", json=rows).get_json()["explanations"]
    for one, all_ in zip(default, every, strict=True):
        assert {k: one[k] for k in ("base_value", "output", "contributions")} == all_["classes"][
            one["class_name"]
        ]


def test_a_regressor_is_explained_in_its_own_units(tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestRegressor

    x, y = load_diabetes(return_X_y=True)
    model = RandomForestRegressor(n_estimators=20, random_state=0).fit(x, y)
    save_model(model, tmp_path / "diabetes", sample=x)
    client = create_app(Settings(model_dir=tmp_path / "diabetes")).test_client()
    rows = [list(r) for r in x[:25].tolist()]
    body = client.post("/explain", json=rows).get_json()
    predicted = client.post("/predict", json=rows).get_json()["result"]
    assert body["space"] == "raw"
    for row, value in zip(body["explanations"], predicted, strict=True):
        assert "class_name" not in row and row["prediction"] == value
        _additive(row)
        assert abs(row["output"] - value) <= TOLERANCE * max(1.0, abs(value))
    refused = client.post("/explain?all_classes=true", json=rows)
    assert refused.status_code == 400 and "regression model" in refused.get_json()["error"]


def test_a_typed_pipeline_explains_its_input_columns(census_app: Flask) -> None:
    client = census_app.test_client()
    body = client.post("/explain", json=CENSUS_ROW).get_json()
    (row,) = body["explanations"]
    assert body["space"] == "log_odds" and list(row["contributions"]) == list(CENSUS_ROW)
    _additive(row)
    probability = client.post("/predict?proba=true", json=CENSUS_ROW).get_json()["probabilities"]
    chosen = max(probability[0])
    assert abs(1 / (1 + np.exp(-row["output"])) - chosen) <= TOLERANCE


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"sepal_length": 5.9}, 400, "missing feature(s) 'sepal_width'"),
        ({**TUTORIAL_ROW, "petal_width": "wide"}, 400, "'petal_width'"),
        ([], 400, "expected at least one row"),
        ("[1, 2", 400, "invalid JSON"),
        ([TUTORIAL_ROW] * 1_001, 413, "1001 rows is over the limit of 1000"),
    ],
    ids=["missing", "text", "empty", "not-json", "too-many"],
)
def test_bad_bodies_name_the_problem_and_leave_the_server_well(
    client: FlaskClient, body: Any, status: int, says: str
) -> None:
    sent = {"data": body} if isinstance(body, str) else {"json": body}
    answer = client.post("/explain", content_type="application/json", **sent)
    assert answer.status_code == status
    assert says in answer.get_json()["error"]
    assert client.post("/explain", json=TUTORIAL_ROW).status_code == 200


def test_the_explanation_row_limit_is_a_setting(model_dir: Path) -> None:
    settings = Settings.from_env({"FLASKSERVE_MAX_EXPLAIN_ROWS": "10"}, model_dir=model_dir)
    client = create_app(settings).test_client()
    assert client.post("/explain", json=[TUTORIAL_ROW] * 10).status_code == 200
    refused = client.post("/explain", json=[TUTORIAL_ROW] * 11)
    assert refused.status_code == 413 and "over the limit of 10" in refused.get_json()["error"]
    assert client.post("/predict", json=[TUTORIAL_ROW] * 11).status_code == 200


def test_rows_that_would_take_too_long_are_refused_before_any_work(model_dir: Path) -> None:
    settings = Settings.from_env({"FLASKSERVE_EXPLAIN_SECONDS": "0.01"}, model_dir=model_dir)
    client = create_app(settings).test_client()
    assert client.post("/explain", json=TUTORIAL_ROW).status_code == 200
    refused = client.post("/explain", json=[TUTORIAL_ROW] * 1_000)
    assert refused.status_code == 413
    message = refused.get_json()["error"]
    assert message.startswith("model 'iris' explains about ")
    assert "over the 0.01 s an explanation may take (FLASKSERVE_EXPLAIN_SECONDS)" in message
    fits = int(message.rsplit("send at most ", 1)[1].split()[0])
    assert 1 <= fits < 1_000
    assert client.post("/explain", json=[TUTORIAL_ROW] * fits).status_code == 200


@pytest.mark.parametrize("raw", ["0", "-1", "soon"])
def test_the_explanation_time_setting_is_checked(raw: str) -> None:
    with pytest.raises(SettingsError, match="FLASKSERVE_EXPLAIN_SECONDS"):
        Settings.from_env({"FLASKSERVE_EXPLAIN_SECONDS": raw})


def test_a_model_that_cannot_be_explained_answers_501_saying_why(tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    save_model(KNeighborsClassifier().fit(x, y), tmp_path / "knn", sample=x)
    client = create_app(Settings(model_dir=tmp_path / "knn")).test_client()
    for _ in range(2):  # the refusal is remembered, and said the same way
        answer = client.post("/explain", json=[list(x[0])])
        assert answer.status_code == 501
        assert answer.get_json() == {
            "error": "KNeighborsClassifier has no exact explanation: flaskserve explains tree"
            " ensembles, XGBoost, LightGBM and linear models (and pipelines ending in one),"
            " never by approximation"
        }
    assert client.post("/predict", json=[list(x[0])]).get_json() == {"result": [0]}


def test_an_unknown_model_is_404(client: FlaskClient) -> None:
    answer = client.post("/explain/nope", json=TUTORIAL_ROW)
    assert answer.status_code == 404 and "nope" in answer.get_json()["error"]


# ---------------------------------------------------------------- KServe V1


def test_v1_predict_answers_as_predict(client: FlaskClient) -> None:
    rows = _rows(30, seed=4)
    instances = [[r[f] for f in FEATURES] for r in rows]
    answer = client.post("/v1/models/iris:predict", json={"instances": instances})
    assert answer.status_code == 200
    expected = client.post("/predict", json=rows).get_json()["result"]
    assert answer.get_json() == {"predictions": expected}
    as_objects = client.post("/v1/models/iris:predict", json={"instances": rows})
    assert as_objects.get_json() == {"predictions": expected}
    inputs_win = {"inputs": instances[:2], "instances": instances}
    assert client.post("/v1/models/iris:predict", json=inputs_win).get_json() == {
        "predictions": expected[:2]
    }


def test_v1_explain_answers_as_explain(client: FlaskClient) -> None:
    rows = _rows(12, seed=6)
    instances = [[r[f] for f in FEATURES] for r in rows]
    answer = client.post("/v1/models/iris:explain", json={"instances": instances}).get_json()
    explained = client.post("/explain", json=rows).get_json()["explanations"]
    assert answer["explanations"] == explained
    assert answer["predictions"] == [row["prediction"] for row in explained]


def test_v1_readiness_and_model_list(client: FlaskClient) -> None:
    assert client.get("/v1/models").get_json() == {"models": ["iris"]}
    assert client.get("/v1/models/iris").get_json() == {"name": "iris", "ready": True}
    missing = client.get("/v1/models/nope")
    assert missing.status_code == 404 and set(missing.get_json()) == {"error"}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([[5.9, 3.0, 5.1, 1.8]], "expected a JSON object with 'instances', got an array"),
        ({"rows": [[5.9, 3.0, 5.1, 1.8]]}, "expected a JSON object with 'instances'"),
        ({"instances": {"a": 1}}, "'instances': expected a list of rows, got an object"),
        ({"instances": [[5.9, 3.0, 5.1]]}, "row 0: expected 4 values"),
    ],
    ids=["array", "no-instances", "not-a-list", "short-row"],
)
@pytest.mark.parametrize("verb", ["predict", "explain"])
def test_v1_bad_bodies_are_400_with_kserves_error_shape(
    client: FlaskClient, body: Any, says: str, verb: str
) -> None:
    answer = client.post(f"/v1/models/iris:{verb}", json=body)
    assert answer.status_code == 400
    assert set(answer.get_json()) == {"error"} and says in answer.get_json()["error"]
