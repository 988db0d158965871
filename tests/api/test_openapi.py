"""The OpenAPI document is valid, complete, and built from the manifests."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}


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
    undocumented = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in (
            "static",
            "ui.static",
            "openapi.docs",
            "openapi.docs_asset",
            "openapi.openapi_document",
        ):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        if path.endswith("/{name}") and path.startswith("/predict"):
            continue  # documented once per served model, as /predict/<model name>
        methods = {m.lower() for m in rule.methods or ()} - {"head", "options"}
        if path not in document["paths"] or not methods <= set(document["paths"][path]):
            undocumented.add((path, tuple(sorted(methods))))
    assert not undocumented


def test_row_schema_comes_from_the_manifest(document: dict[str, Any]) -> None:
    schema = document["components"]["schemas"]["Row.iris"]
    assert list(schema["properties"]) == list(ROW)
    assert schema["required"] == list(ROW)
    assert schema["additionalProperties"] is False
    petal_width = schema["properties"]["petal_width"]
    assert petal_width["type"] == "number"
    assert petal_width["examples"] == [0.1, 2.5]
    assert "/predict/iris" in document["paths"]


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
