"""``GET /openapi.json`` (OpenAPI 3.1) and ``GET /docs`` (Swagger UI, served locally).

The document is built from the models being served: each model's row schema
comes from its manifest (feature names, types, the ranges seen in training),
so a client generator or a fuzzer sees exactly what the server checks.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from flask import Blueprint, Response, abort, jsonify, send_from_directory
from flask.typing import ResponseReturnValue

from ..artifact import ModelManifest
from ..runtime.registry import Snapshot
from ..version import __version__
from .auth import require_api_key

bp = Blueprint("openapi", __name__)

_ERROR = {"$ref": "#/components/schemas/Error"}
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
    return jsonify(build_document(require_api_key().registry.snapshot))


@bp.get("/docs")
def docs() -> ResponseReturnValue:
    return Response(_DOCS_PAGE, mimetype="text/html")


@bp.get("/docs/<asset>")
def docs_asset(asset: str) -> ResponseReturnValue:
    """Swagger UI's files from the swagger-ui-py package: no CDN, works offline."""
    if asset not in _DOCS_ASSETS:
        abort(404)
    return send_from_directory(str(resources.files("swagger_ui") / "static"), asset)


def build_document(snapshot: Snapshot) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the models in *snapshot*."""
    manifests = {
        name: versions[max(versions)].runtime.manifest for name, versions in snapshot.models.items()
    }
    schemas: dict[str, Any] = {"Error": _error_schema()}
    paths: dict[str, Any] = {}
    for name, manifest in sorted(manifests.items()):
        schemas[f"Row.{name}"] = row_schema(manifest)
        paths[f"/predict/{name}"] = _predict_path(f"Row.{name}", f"model {name!r}")
    if snapshot.default_name in manifests:
        paths["/predict"] = _predict_path(f"Row.{snapshot.default_name}", "the default model")
    paths.update(_v2_paths())
    paths.update(_mlflow_paths())
    paths.update(_health_paths())
    paths.update(_ui_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flaskserve",
            "version": __version__,
            "description": "Predictions from scikit-learn models: the tutorial's /predict, "
            "the Open Inference Protocol (v2) and MLflow's /invocations.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }


def row_schema(manifest: ModelManifest) -> dict[str, Any]:
    """One row of *manifest*'s model as a JSON object: every feature, a finite number."""
    properties = {}
    for feature in manifest.features:
        prop: dict[str, Any] = {"type": "number"}
        if feature.min is not None and feature.max is not None:
            prop["description"] = f"seen in training: {feature.min} to {feature.max}"
            prop["examples"] = [feature.min, feature.max]
        properties[feature.name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": manifest.feature_names,
        "additionalProperties": False,
    }


def _predict_path(schema: str, what: str) -> dict[str, Any]:
    row = {"$ref": f"#/components/schemas/{schema}"}
    operation = {
        "summary": f"Predict with {what} (the tutorial's API)",
        "parameters": [
            _flag("proba", "add class probabilities"),
            _flag("labels", "add class names"),
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [row, {"type": "array", "items": row, "minItems": 1}]}
                }
            },
        },
        "responses": _responses(
            {
                "type": "object",
                "properties": {
                    "result": {"type": "array"},
                    "probabilities": {
                        "type": "array",
                        "items": {"type": "array", "items": {"type": "number"}},
                    },
                    "labels": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["result"],
            },
            400,
            404,
            413,
            415,
            503,
        ),
    }
    return {"post": operation, "put": operation}


def _flag(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "boolean"},
    }


def _responses(ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": ok}}}
    }
    for status in errors:
        out[str(status)] = {
            "description": "Error",
            "content": {"application/json": {"schema": _ERROR}},
        }
    return out


def _error_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def _v2_paths() -> dict[str, Any]:
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string"},
            "parameters": {"type": "object"},
            "data": {"type": "array"},
        },
        "required": ["name", "shape", "datatype", "data"],
    }
    request = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": tensor, "minItems": 1},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"enum": ["predict", "predict_proba", "label"]}},
                },
            },
        },
        "required": ["inputs"],
    }
    infer = {
        "post": {
            "summary": "Open Inference Protocol inference",
            "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
            "responses": _responses({"type": "object"}, 400, 404, 413, 503),
        }
    }
    meta = {
        "get": {
            "summary": "Model metadata",
            "responses": _responses({"type": "object"}, 400, 404, 503),
        }
    }
    ready = {
        "get": {
            "summary": "Model readiness",
            "responses": _responses({"type": "object"}, 400, 404, 503),
        }
    }
    admin = {
        "post": {
            "summary": "Repository API (needs the admin bearer token)",
            "responses": _responses({}, 401, 403, 404, 503),
        }
    }
    paths: dict[str, Any] = {
        "/v2": {"get": {"summary": "Server metadata", "responses": _responses({"type": "object"})}},
        "/v2/health/live": {
            "get": {"summary": "Server liveness", "responses": _responses({"type": "object"})}
        },
        "/v2/health/ready": {
            "get": {"summary": "Server readiness", "responses": _responses({"type": "object"}, 503)}
        },
        "/v2/repository/index": admin,
    }
    for base, params in (
        ("/v2/models/{name}", [name]),
        ("/v2/models/{name}/versions/{version}", [name, version]),
    ):
        paths[base] = {"parameters": params, **meta}
        paths[f"{base}/ready"] = {"parameters": params, **ready}
        paths[f"{base}/infer"] = {"parameters": params, **infer}
    for action in ("load", "unload"):
        paths[f"/v2/repository/models/{{name}}/{action}"] = {"parameters": [name], **admin}
    return paths


def _mlflow_paths() -> dict[str, Any]:
    body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "one of dataframe_split, dataframe_records, instances, inputs",
                }
            },
            "text/csv": {"schema": {"type": "string"}},
        },
    }
    predictions = {
        "type": "object",
        "properties": {"predictions": {"type": "array"}},
        "required": ["predictions"],
    }
    return {
        "/invocations": {
            "post": {
                "summary": "MLflow scoring",
                "requestBody": body,
                "responses": _responses(predictions, 400, 413, 415, 503),
            }
        },
        "/ping": {
            "get": {"summary": "MLflow liveness", "responses": {"200": {"description": "OK"}}}
        },
        "/version": {
            "get": {
                "summary": "Server version",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


def _health_paths() -> dict[str, Any]:
    return {
        "/health": {"get": {"summary": "Liveness", "responses": _responses({"type": "object"})}},
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics, summed over all workers",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/ready": {
            "get": {
                "summary": "Readiness of the default model",
                "responses": _responses({"type": "object"}, 503),
            }
        },
        "/model": {
            "get": {
                "summary": "The default model's manifest",
                "responses": _responses({"type": "object"}, 503),
            }
        },
        "/model/{name}": {
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "get": {
                "summary": "A model's manifest",
                "responses": _responses({"type": "object"}, 400, 404, 503),
            },
        },
    }


def _ui_paths() -> dict[str, Any]:
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "/": {
            "get": {
                "summary": "The served models and the endpoints: JSON, or a page for a browser",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": {"type": "object"}}, **html},
                    }
                },
            }
        },
        "/ui/{name}": {
            "parameters": [name],
            "get": {
                "summary": "A page to try the model, with its model card",
                "responses": {
                    **_responses({}, 404, 503),
                    "200": {"description": "OK", "content": html},
                },
            },
        },
        "/model/{name}/stats": {
            "parameters": [name],
            "get": {
                "summary": "Requests the model answered and its latency percentiles",
                "responses": _responses({"type": "object"}, 404, 503),
            },
        },
    }
