"""The OpenAPI document is valid, built from the manifests, and says what the routes are.

Every route of the app is in the document, every path in it is a route, and every endpoint
has a description in ``flaskserve.api.operations`` (or is left out there, with the reason),
so a new view fails here until it is described.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate
from werkzeug.exceptions import HTTPException

from census import ROW as CENSUS_ROW
from census import onehot_pipeline
from flaskserve.api.auth import ADMIN_ENDPOINTS, OPEN_ENDPOINTS
from flaskserve.api.openapi import feature_schema
from flaskserve.api.operations import EXCLUDED, OPERATIONS
from flaskserve.app import create_app
from flaskserve.artifact import Feature
from flaskserve.packaging import save_model
from flaskserve.settings import Settings

ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
# a value for each path variable of the document
URL_VALUES = {"name": "iris", "version": "1"}

_ADD_IT = (
    "a view has no description in the OpenAPI document: add an Operation for its endpoint "
    "to OPERATIONS in flaskserve/api/operations.py, or list it in EXCLUDED there with the reason"
)


@pytest.fixture()
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    return body


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_is_documented(app: Flask, document: dict[str, Any]) -> None:
    models = sorted(app.extensions["flaskserve"].registry.snapshot.models)
    undocumented = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in EXCLUDED:
            continue
        operation = OPERATIONS.get(rule.endpoint)
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        paths = [path]
        if operation is not None and operation.rows is not None and "name" in rule.arguments:
            # documented once per served model, as /predict/<model name>
            paths = [path.replace("{name}", model) for model in models]
        methods = {m.lower() for m in rule.methods or ()} - {"head", "options"}
        for path in paths:
            if path not in document["paths"] or not methods <= set(document["paths"][path]):
                undocumented.add((rule.endpoint, path, tuple(sorted(methods))))
    assert not undocumented


def test_every_documented_operation_is_a_route(app: Flask, document: dict[str, Any]) -> None:
    assert set(_documented_endpoints(app, document).values()) == set(OPERATIONS)


def test_every_endpoint_is_described_or_excluded(app: Flask) -> None:
    undescribed = _undescribed(app)
    assert not undescribed, f"{', '.join(sorted(undescribed))}: {_ADD_IT}"


def test_a_new_view_without_a_description_is_caught(model_dir: Path) -> None:
    app = create_app(Settings(model_dir=model_dir, poll_seconds=0))
    bp = Blueprint("throwaway", __name__)
    bp.add_url_rule("/throwaway/<name>", "view", lambda name: name, methods=["POST"])
    app.register_blueprint(bp)
    assert _undescribed(app) == {"throwaway.view"}
    # until it is described, it is left out, and the document stays valid
    body: dict[str, Any] = app.test_client().get("/openapi.json").json  # type: ignore[assignment]
    assert not [path for path in body["paths"] if path.startswith("/throwaway")]
    validate(body)


def test_the_tables_name_only_endpoints_of_the_app(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert not set(OPERATIONS) & set(EXCLUDED)
    assert set(OPERATIONS) | set(EXCLUDED) <= endpoints
    assert all(reason.strip() for reason in EXCLUDED.values())


def test_security_follows_the_access_policy(app: Flask, document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"].items() >= {"type": "http", "scheme": "bearer"}.items()
    header = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["apiKeyHeader"].items() >= header.items()
    assert schemes["adminToken"].items() >= {"type": "http", "scheme": "bearer"}.items()
    api_key: list[dict[str, list[str]]] = [{"apiKey": []}, {"apiKeyHeader": []}]
    for (path, method), endpoint in _documented_endpoints(app, document).items():
        operation = document["paths"][path][method]
        expected: list[dict[str, list[str]]] = []
        if endpoint not in OPEN_ENDPOINTS:
            expected = [{"adminToken": []}] if endpoint in ADMIN_ENDPOINTS else api_key
        assert operation["security"] == expected, (method, path)
        assert ("401" in operation["responses"]) is (endpoint not in OPEN_ENDPOINTS), path
        for status, response in operation["responses"].items():
            if status != "200":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


def test_row_schema_comes_from_the_manifest(document: dict[str, Any]) -> None:
    schema = document["components"]["schemas"]["Row.iris"]
    assert list(schema["properties"]) == list(ROW)
    assert schema["required"] == list(ROW)
    assert schema["additionalProperties"] is False
    petal_width = schema["properties"]["petal_width"]
    assert petal_width["type"] == "number"
    assert petal_width["examples"] == [0.1, 2.5]
    row = {"$ref": "#/components/schemas/Row.iris"}
    for path, model in [("/predict/iris", "model 'iris'"), ("/predict", "the default model")]:
        for method in ("post", "put"):
            operation = document["paths"][path][method]
            assert model in operation["summary"]
            body = operation["requestBody"]["content"]["application/json"]["schema"]
            assert body["oneOf"] == [row, {"type": "array", "items": row, "minItems": 1}]


@pytest.mark.parametrize(
    ("row", "valid"),
    [
        (ROW, True),
        ({k: v for k, v in ROW.items() if k != "petal_width"}, False),
        ({**ROW, "colour": 1}, False),
        ({**ROW, "sepal_width": "3.0"}, False),
    ],
    ids=["tutorial-row", "missing", "unknown", "string"],
)
def test_row_schema_agrees_with_the_server(
    document: dict[str, Any], client: FlaskClient, row: dict[str, Any], valid: bool
) -> None:
    schema = {**document["components"]["schemas"]["Row.iris"], "components": document["components"]}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(row))
    assert (not errors) is valid
    assert (client.post("/predict", json=row).status_code == 200) is valid


# --- a model of typed features: text with categories, integers, missing cells


@pytest.fixture(scope="module")
def census_clients(
    census_app: Flask, census: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, FlaskClient]:
    """The census pipeline that ignores unseen categories, and one that refuses them."""
    refusing = tmp_path_factory.mktemp("models") / "census"
    save_model(onehot_pipeline(*census, unknown="error"), refusing, sample=census[0])
    strict = create_app(Settings(model_dir=refusing, poll_seconds=0)).test_client()
    return {"ignored": census_app.test_client(), "refused": strict}


def _census_row(client: FlaskClient) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/openapi.json").json  # type: ignore[assignment]
    validate(body)
    schema: dict[str, Any] = body["components"]["schemas"]["Row.census"]
    return schema


def test_census_row_schema_is_typed(census_clients: dict[str, FlaskClient]) -> None:
    schema = _census_row(census_clients["ignored"])
    assert list(schema["properties"]) == list(CENSUS_ROW) == schema["required"]
    age, workclass = schema["properties"]["age"], schema["properties"]["workclass"]
    assert age == {
        "type": ["integer", "null"],  # OpenAPI 3.1: null is a type, not 3.0's nullable
        "format": "int64",
        "examples": [17, 79],
        "description": "seen in training: 17 to 79; null: missing",
    }
    assert workclass["type"] == ["string", "null"]
    assert "enum" not in workclass  # an unseen category is answered: any string will do
    assert workclass["examples"] == ["Federal-gov", "Local-gov", "Private", "Self-emp"]
    assert "unseen category is accepted" in workclass["description"]
    hours = schema["properties"]["hours_per_week"]
    assert (hours["type"], hours["examples"]) == (["number", "null"], [12.0, 66.0])


def test_refused_categories_are_an_enum(census_clients: dict[str, FlaskClient]) -> None:
    sex = _census_row(census_clients["refused"])["properties"]["sex"]
    assert sex["type"] == ["string", "null"]
    assert sex["enum"] == ["Female", "Male", None]
    assert "examples" not in sex
    assert "unseen category is refused" in sex["description"]


@pytest.mark.parametrize(
    ("change", "ignored", "refused"),
    [
        ({}, True, True),
        ({"workclass": None, "age": None, "hours_per_week": 40}, True, True),
        ({"age": 39.0}, True, True),  # a whole float is an integer, to both
        ({"workclass": "Never-worked"}, True, False),
        ({"age": 39.5}, False, False),
        ({"sex": True}, False, False),
        ({"capital_gain": "0"}, False, False),
    ],
    ids=["row", "nulls", "whole-float", "unseen", "fraction", "boolean", "string"],
)
def test_census_row_schema_agrees_with_the_server(
    census_clients: dict[str, FlaskClient], change: dict[str, Any], ignored: bool, refused: bool
) -> None:
    row = {**CENSUS_ROW, **change}
    for unknown, valid in [("ignored", ignored), ("refused", refused)]:
        client = census_clients[unknown]
        errors = list(jsonschema.Draft202012Validator(_census_row(client)).iter_errors(row))
        assert (not errors) is valid, (unknown, errors)
        assert (client.post("/predict", json=row).status_code == 200) is valid, unknown


@pytest.mark.parametrize(
    ("feature", "expected"),
    [
        (Feature("flag", "bool"), {"type": "boolean"}),
        (
            Feature("note", "str", nullable=True),
            {
                "type": ["string", "null"],
                "description": "text (too many distinct values in training to list); null: missing",
            },
        ),
        (
            Feature("x", "float64", min=0.5, max=2.0),
            {
                "type": "number",
                "examples": [0.5, 2.0],
                "description": "seen in training: 0.5 to 2.0",
            },
        ),
        (Feature("n", "int64"), {"type": "integer", "format": "int64"}),
    ],
    ids=["boolean", "free-text", "number", "integer-without-range"],
)
def test_feature_schema(feature: Feature, expected: dict[str, Any]) -> None:
    assert feature_schema(feature) == expected


def test_many_categories_are_all_examples_and_some_described() -> None:
    names = tuple(f"c{i:02}" for i in range(30))
    schema = feature_schema(Feature("c", "str", categories=names, unknown_categories="ignored"))
    assert schema["examples"] == list(names)
    assert "c19 and 10 more (all in examples)" in schema["description"]
    assert "c20" not in schema["description"]


def test_docs_page_uses_local_assets_only(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/openapi.json" in html
    assert "http://" not in html and "https://" not in html
    for asset in re.findall(r'(?:src|href)="(/docs/[^"]+)"', html):
        with client.get(asset) as response:  # closes the file Flask streams
            assert response.status_code == 200, asset
            assert len(response.data) > 1000


@pytest.mark.parametrize("asset", ["../../etc/passwd", "swagger-editor.js", "index.html"])
def test_docs_serves_only_its_assets(client: FlaskClient, asset: str) -> None:
    assert client.get(f"/docs/{asset}").status_code == 404


def _documented_endpoints(app: Flask, document: dict[str, Any]) -> dict[tuple[str, str], str]:
    """The endpoint each operation of *document* reaches, asserting that one does."""
    adapter = app.url_map.bind("localhost")
    found: dict[tuple[str, str], str] = {}
    unmatched: list[tuple[str, str, str]] = []
    for path, item in document["paths"].items():
        concrete = re.sub(r"{(\w+)}", lambda m: URL_VALUES[m.group(1)], path)
        for method in set(item) - {"parameters"}:
            try:
                endpoint, _ = adapter.match(concrete, method=method.upper())
            except HTTPException as e:  # no route, not that method, or a redirect
                unmatched.append((method, path, type(e).__name__))
                continue
            found[(path, method)] = str(endpoint)
    assert not unmatched
    return found


def _undescribed(app: Flask) -> set[str]:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    return endpoints - set(OPERATIONS) - set(EXCLUDED)
