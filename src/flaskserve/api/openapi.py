"""``GET /openapi.json`` (OpenAPI 3.1) and ``GET /docs`` (Swagger UI, served locally).

The document is built from the app itself: each of its routes becomes a path, described
by the endpoint's entry in :data:`~flaskserve.api.operations.OPERATIONS`, so the document
cannot list a path the server does not serve. Each model's row schema comes from its
manifest (feature names, JSON types, which may be null, the categories of text and the
ranges of numbers seen in training), and the prediction paths
are written once per served model, so a client generator or a fuzzer sees exactly what
the server checks.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from importlib import resources
from typing import Any, NamedTuple
from urllib.parse import quote

from flask import Blueprint, Response, abort, current_app, jsonify, send_from_directory
from flask.typing import ResponseReturnValue
from werkzeug.routing import Map, Rule

from ..artifact import Feature, ModelManifest
from ..runtime.registry import Snapshot
from ..schema import kind_of
from ..version import __version__
from .auth import ADMIN_ENDPOINTS, OPEN_ENDPOINTS, require_api_key
from .operations import OPERATIONS, Operation, Schema

bp = Blueprint("openapi", __name__)

_ERROR: Schema = {"$ref": "#/components/schemas/Error"}
_API_KEY: list[Schema] = [{"apiKey": []}, {"apiKeyHeader": []}]  # either will do
_ADMIN: list[Schema] = [{"adminToken": []}]
_SECURITY_SCHEMES: Schema = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "One of the server's API keys (FLASKSERVE_API_KEYS), as "
        "'Authorization: Bearer <key>'. Needed only where keys are configured.",
    },
    "apiKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "One of the server's API keys, as 'X-API-Key: <key>'.",
    },
    "adminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The admin token (FLASKSERVE_ADMIN_TOKEN); without one configured "
        "the repository API answers 403.",
    },
}
# werkzeug's ``<converter(arguments):variable>``, and what each converter accepts
_VARIABLE = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
_CONVERTER_SCHEMAS: Mapping[str, Schema] = {
    "int": {"type": "integer", "minimum": 0},
    "float": {"type": "number", "minimum": 0},
    "uuid": {"type": "string", "format": "uuid"},
}
#: a feature's kind (flaskserve.schema.kind_of) -> the JSON Schema type of its cells
_JSON_TYPES = {"number": "number", "integer": "integer", "boolean": "boolean", "text": "string"}
_LISTED_CATEGORIES = 20  # in a text feature's description; examples list them all
_DOCS_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")
_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flaskserve API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-ui-standalone-preset.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"});
</script></body></html>
"""


@bp.get("/openapi.json")
def openapi_document() -> ResponseReturnValue:
    """The API as this server serves it; it lists the models' features and training ranges,
    so it needs an API key when keys are configured (the Swagger page at /docs does not)."""
    snapshot = require_api_key().registry.snapshot
    return jsonify(build_document(current_app.url_map, snapshot))


@bp.get("/docs")
def docs() -> ResponseReturnValue:
    return Response(_DOCS_PAGE, mimetype="text/html")


@bp.get("/docs/<asset>")
def docs_asset(asset: str) -> ResponseReturnValue:
    """Swagger UI's files from the swagger-ui-py package: no CDN, works offline."""
    if asset not in _DOCS_ASSETS:
        abort(404)
    return send_from_directory(str(resources.files("swagger_ui") / "static"), asset)


def build_document(url_map: Map, snapshot: Snapshot) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the routes in *url_map*, for the models in *snapshot*.

    An endpoint without an entry in :data:`~flaskserve.api.operations.OPERATIONS` is left
    out (those in ``EXCLUDED`` on purpose; ``tests/api/test_openapi.py`` fails for others).
    """
    manifests = {
        name: versions[max(versions)].runtime.manifest for name, versions in snapshot.models.items()
    }
    schemas: dict[str, Any] = {"Error": _error_schema()}
    for name, manifest in sorted(manifests.items()):
        schemas[f"Row.{name}"] = row_schema(manifest)
    paths = _paths(url_map, sorted(manifests), snapshot.default_name)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flaskserve",
            "version": __version__,
            "description": "Predictions from scikit-learn models: the tutorial's /predict, "
            "the Open Inference Protocol (v2) and MLflow's /invocations.",
        },
        # copies: the document is the caller's to change, the table's dicts stay the table's
        "paths": copy.deepcopy(paths),
        "components": {"schemas": schemas, "securitySchemes": copy.deepcopy(_SECURITY_SCHEMES)},
    }


def row_schema(manifest: ModelManifest) -> dict[str, Any]:
    """One row of *manifest*'s model as a JSON object: every feature, none other."""
    return {
        "type": "object",
        "properties": {f.name: feature_schema(f) for f in manifest.features},
        "required": list(manifest.feature_names),
        "additionalProperties": False,
    }


def feature_schema(feature: Feature) -> Schema:
    """What a cell of *feature* may hold, as the server checks it (docs/api.md, OpenAPI).

    Its JSON type; ``null`` too where the feature may be missing (OpenAPI 3.1 writes
    that as a type list, not 3.0's ``nullable``); for text, the categories as an ``enum``
    where the model refuses unseen ones, as ``examples`` where it accepts them; for a
    number, the range seen in training as a description and examples (the server does
    not refuse a value outside it).
    """
    kind = kind_of(feature)
    schema: Schema = {"type": _JSON_TYPES[kind]}
    if kind == "text":
        notes = [_text_schema(feature, schema)]
    else:
        notes = _range_schema(feature, kind, schema)
    if feature.nullable:
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
        notes.append("null: missing")
    if notes:
        schema["description"] = "; ".join(notes)
    return schema


def _range_schema(feature: Feature, kind: str, schema: Schema) -> list[str]:
    """Add a number's training range to *schema* as examples; its description."""
    if kind == "integer":
        schema["format"] = "int64"
    if kind == "boolean" or feature.min is None or feature.max is None:
        return []
    low, high = feature.min, feature.max
    if kind == "integer":
        low, high = int(low), int(high)
    schema["examples"] = [low, high]
    return [f"seen in training: {low} to {high}"]


def _text_schema(feature: Feature, schema: Schema) -> str:
    """Add *feature*'s categories to *schema*; their description."""
    if feature.categories is None:
        return "text (too many distinct values in training to list)"
    categories = list(feature.categories)
    if feature.unknown_categories == "refused":
        schema["enum"] = categories
        return "one of the categories seen in training; an unseen category is refused"
    schema["examples"] = categories
    shown = ", ".join(categories[:_LISTED_CATEGORIES])
    if len(categories) > _LISTED_CATEGORIES:
        shown += f" and {len(categories) - _LISTED_CATEGORIES} more (all in examples)"
    return f"seen in training: {shown}; an unseen category is accepted and the model ignores it"


def _paths(url_map: Map, models: list[str], default: str | None) -> dict[str, Any]:
    """The routes of *url_map* as OpenAPI path items, each method an operation."""
    paths: dict[str, Any] = {}
    for rule in url_map.iter_rules():
        operation = OPERATIONS.get(rule.endpoint)
        if operation is None:
            continue
        methods = sorted(m.lower() for m in (rule.methods or set()) - {"HEAD", "OPTIONS"})
        for target in _targets(rule, operation, models, default):
            item = paths.setdefault(target.path, {})
            if target.parameters:
                item["parameters"] = target.parameters
            for method in methods:
                item[method] = _operation(rule.endpoint, operation, target)
    return paths


class _Target(NamedTuple):
    """One path a rule is documented as, and for per-model operations the model it is for."""

    path: str
    parameters: list[Schema]
    model: str | None = None
    what: str = ""  # the model in words, for the summary


def _targets(
    rule: Rule, operation: Operation, models: list[str], default: str | None
) -> Iterator[_Target]:
    """*rule* as OpenAPI paths: one, or for an operation whose body is a model's rows, one
    per served model (``<name>`` written in), or the default model's for a rule without it."""
    if operation.rows is None:
        yield _Target(*_template(rule, {}))
    elif "name" in rule.arguments:
        for name in models:
            yield _Target(*_template(rule, {"name": name}), name, f"model {name!r}")
    elif default in models:
        yield _Target(*_template(rule, {}), default, "the default model")


def _template(rule: Rule, values: Mapping[str, str]) -> tuple[str, list[Schema]]:
    """*rule*'s path with *values* written in, the other variables as ``{variable}``
    path templates, and an OpenAPI parameter for each of those."""
    parameters: list[Schema] = []

    def substitute(match: re.Match[str]) -> str:
        converter, variable = match.group(1), match.group(2)
        if variable in values:
            return quote(values[variable], safe="")
        schema = dict(_CONVERTER_SCHEMAS.get(converter or "", {"type": "string"}))
        parameters.append({"name": variable, "in": "path", "required": True, "schema": schema})
        return f"{{{variable}}}"

    return _VARIABLE.sub(substitute, rule.rule), parameters


def _operation(endpoint: str, operation: Operation, target: _Target) -> Schema:
    out: Schema = {"summary": operation.summary.replace("{model}", target.what)}
    if operation.query:
        out["parameters"] = list(operation.query)
    body = operation.body
    if operation.rows is not None and target.model is not None:
        body = operation.rows({"$ref": f"#/components/schemas/Row.{target.model}"})
    if body is not None:
        out["requestBody"] = {"required": True, "content": body}
    needs_key = endpoint not in OPEN_ENDPOINTS
    out["responses"] = _responses(operation, needs_key)
    if endpoint in ADMIN_ENDPOINTS:
        out["security"] = _ADMIN
    else:  # an empty list: no credentials
        out["security"] = _API_KEY if needs_key else []
    return out


def _responses(operation: Operation, needs_key: bool) -> Schema:
    ok: Schema = {"description": "OK"}
    if operation.ok is not None:
        ok["content"] = operation.ok
    out: Schema = {"200": ok}
    for status in sorted({*operation.errors, *((401,) if needs_key else ())}):
        out[str(status)] = {
            "description": HTTPStatus(status).phrase,
            "content": {"application/json": {"schema": _ERROR}},
        }
    return out


def _error_schema() -> Schema:
    return {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
