"""What each endpoint does, for the OpenAPI document: one :class:`Operation` per view.

:func:`flaskserve.api.openapi.build_document` walks the app's routes and looks each
endpoint (Flask's name, ``blueprint.view``) up in :data:`OPERATIONS`, so a path is in the
document only because a route serves it, with the methods that route answers. A view
must have an entry here, or one in :data:`EXCLUDED` saying why it is left out;
``tests/api/test_openapi.py`` fails for one that has neither.

Who may call an operation is not written here: :mod:`flaskserve.api.auth` decides it,
and the document reads it from there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]
#: media type -> OpenAPI media type object (``{"schema": ...}``)
Content = dict[str, Any]


@dataclass(frozen=True)
class Operation:
    """One endpoint, the same for each of its routes and methods.

    :param summary: one line; ``{model}`` in it names the model a per-model path is for.
    :param ok: the content of the 200 answer (``None``: no body worth describing).
    :param errors: the statuses it answers with ``{"error": message}``; 401 is added
        where :mod:`~flaskserve.api.auth` asks for a key or token.
    :param query: OpenAPI parameter objects for the query string (or a header).
    :param body: the request body's content, the same for every model.
    :param rows: the request body's content from the row schema of the model the path
        names; the document then writes the path once per served model, so that a client
        generator or a fuzzer sees exactly the features that model checks.
    """

    summary: str
    ok: Content | None
    errors: tuple[int, ...] = ()
    query: tuple[Schema, ...] = ()
    body: Content | None = None
    rows: Callable[[Schema], Content] | None = None


def _json(schema: Schema) -> Content:
    return {"application/json": {"schema": schema}}


def _flag(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "boolean"},
    }


def _rows(row: Schema) -> Content:
    """One row of the model, or a non-empty list of them (the tutorial's body)."""
    return _json({"oneOf": [row, {"type": "array", "items": row, "minItems": 1}]})


_OBJECT: Content = _json({"type": "object"})
_TEXT: Content = {"text/plain": {"schema": {"type": "string"}}}
_HTML: Content = {"text/html": {"schema": {"type": "string"}}}

_PREDICTIONS: Schema = {
    "type": "object",
    "properties": {
        "result": {"type": "array"},
        "probabilities": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "labels": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["result"],
}

_FEATURE: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "type": {"enum": ["number", "integer", "boolean", "text"]},
        "dtype": {"type": "string", "description": "the pandas dtype the model was fitted on"},
        "nullable": {"type": "boolean", "description": "a cell may be null (missing)"},
        "min": {"type": ["number", "null"], "description": "a number's smallest in training"},
        "max": {"type": ["number", "null"], "description": "a number's largest in training"},
        "categories": {
            "type": ["array", "null"],
            "items": {"type": "string"},
            "description": "a text feature's categories seen in training (null: free text)",
        },
        "unknown_categories": {
            "enum": ["refused", "ignored", None],
            "description": "what the model does with a category not seen in training",
        },
    },
    "required": ["name", "type", "dtype", "nullable"],
}
_MODEL: Schema = {
    "type": "object",
    "properties": {"features": {"type": "array", "items": _FEATURE}},
    "required": ["features"],
}

_V2_TENSOR: Schema = {
    "type": "object",
    "description": "the values in data, or, in a binary body, binary_data_size bytes of it",
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string"},
        "parameters": {
            "type": "object",
            "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
        },
        "data": {"type": "array"},
    },
    "required": ["name", "shape", "datatype"],
}
_V2_REQUEST: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": _V2_TENSOR, "minItems": 1},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"enum": ["predict", "predict_proba", "label"]},
                    "parameters": {
                        "type": "object",
                        "properties": {"binary_data": {"type": "boolean"}},
                    },
                },
            },
        },
    },
    "required": ["inputs"],
}
#: Triton's binary tensor data extension: the JSON header, then the raw tensors
_V2_BINARY: Content = {
    "application/octet-stream": {
        "schema": {
            "type": "string",
            "format": "binary",
            "description": "Inference-Header-Content-Length bytes of JSON (as application/json),"
            " then each binary input's binary_data_size bytes, in order",
        }
    }
}
_V2_HEADER_LENGTH: Schema = {
    "name": "Inference-Header-Content-Length",
    "in": "header",
    "required": False,
    "description": "a binary body: how many of its bytes are the JSON header",
    "schema": {"type": "integer", "minimum": 0},
}

_MLFLOW_REQUEST: Content = {
    **_json(
        {
            "type": "object",
            "description": "one of dataframe_split, dataframe_records, instances, inputs",
        }
    ),
    "text/csv": {"schema": {"type": "string"}},
}
_MLFLOW_PREDICTIONS: Schema = {
    "type": "object",
    "properties": {"predictions": {"type": "array"}},
    "required": ["predictions"],
}

_CONTRIBUTIONS: Schema = {
    "type": "object",
    "description": "base_value + the sum of contributions = output, within 1e-6",
    "properties": {
        "base_value": {"type": "number", "description": "the output for an average row"},
        "output": {"type": "number", "description": "the model's output, in the space"},
        "contributions": {
            "type": "object",
            "description": "one number per input column, signed: what it moved the output by",
            "additionalProperties": {"type": "number"},
        },
    },
    "required": ["base_value", "output", "contributions"],
}
_EXPLAINED_ROW: Schema = {
    "type": "object",
    "description": "toward the predicted class; with all_classes, one per class in classes",
    "properties": {
        "prediction": {},
        "class_name": {"type": "string"},
        **_CONTRIBUTIONS["properties"],
        "classes": {"type": "object", "additionalProperties": _CONTRIBUTIONS},
    },
    "required": ["prediction"],
}
_EXPLANATIONS: Schema = {
    "type": "object",
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "space": {"enum": ["probability", "log_odds", "raw"]},
        "explanations": {"type": "array", "items": _EXPLAINED_ROW},
    },
    "required": ["space", "explanations"],
}
_V1_REQUEST: Schema = {
    "type": "object",
    "description": "rows as arrays in feature order, or as objects; inputs wins over instances",
    "properties": {"instances": {"type": "array"}, "inputs": {"type": "array"}},
}
_V1_PREDICTIONS: Schema = {
    "type": "object",
    "properties": {
        "predictions": {"type": "array"},
        "explanations": {"type": "array", "items": _EXPLAINED_ROW},
    },
    "required": ["predictions"],
}
_EXPLAIN_ERRORS = (400, 404, 413, 415, 501, 503)

#: every documented endpoint, by Flask's endpoint name
OPERATIONS: Mapping[str, Operation] = {
    "predict.predict": Operation(
        "Predict with {model} (the tutorial's API)",
        _json(_PREDICTIONS),
        (400, 404, 413, 415, 503),
        query=(_flag("proba", "add class probabilities"), _flag("labels", "add class names")),
        rows=_rows,
    ),
    "explain.explain": Operation(
        "Explain {model}'s answers: exact per-column contributions (501: not explainable)",
        _json(_EXPLANATIONS),
        _EXPLAIN_ERRORS,
        query=(_flag("all_classes", "contributions toward every class, by class name"),),
        rows=_rows,
    ),
    "kserve_v1.models": Operation("KServe V1: the served models", _OBJECT),
    "kserve_v1.model_ready": Operation("KServe V1: model readiness", _OBJECT, (404, 503)),
    "kserve_v1.predict": Operation(
        "KServe V1 prediction",
        _json(_V1_PREDICTIONS),
        (400, 404, 413, 503),
        body=_json(_V1_REQUEST),
    ),
    "kserve_v1.explain": Operation(
        "KServe V1 explanation (exact contributions, as /explain's rows)",
        _json(_V1_PREDICTIONS),
        _EXPLAIN_ERRORS,
        body=_json(_V1_REQUEST),
    ),
    "health.health": Operation("Liveness", _OBJECT),
    "health.ready": Operation("Readiness of the default model", _OBJECT, (503,)),
    "health.metrics": Operation("Prometheus metrics, summed over all workers", _TEXT),
    "health.model": Operation(
        "A model's manifest (the default model's without a name)",
        _json(_MODEL),
        (400, 404, 503),
    ),
    "health.model_stats": Operation(
        "Requests the model answered and its latency percentiles", _OBJECT, (404, 503)
    ),
    "drift.model_drift": Operation(
        "Each input column's drift from training: PSI since start and in the recent window",
        _OBJECT,
        (400, 404, 503),
        query=(
            {
                "name": "version",
                "in": "query",
                "required": False,
                "description": "the version to report on; default the version answering",
                "schema": {"type": "integer", "minimum": 1},
            },
        ),
    ),
    "v2.server_metadata": Operation("Server metadata", _OBJECT),
    "v2.live": Operation("Server liveness", _OBJECT),
    "v2.ready": Operation("Server readiness", _OBJECT, (503,)),
    "v2.model_metadata": Operation("Model metadata", _OBJECT, (400, 404, 503)),
    "v2.model_ready": Operation("Model readiness", _OBJECT, (400, 404, 503)),
    "v2.infer": Operation(
        "Open Inference Protocol inference (JSON, or the binary tensor data extension)",
        {**_OBJECT, **_V2_BINARY},
        (400, 404, 413, 503),
        query=(_V2_HEADER_LENGTH,),
        body={**_json(_V2_REQUEST), **_V2_BINARY},
    ),
    "v2.repository_index": Operation(
        "Repository index (the repository API)", _json({}), (400, 403, 413)
    ),
    "v2.repository_load": Operation(
        "Load a model (the repository API)", _json({}), (403, 404, 503)
    ),
    "v2.repository_unload": Operation("Unload a model (the repository API)", _json({}), (403, 404)),
    "shadow.report": Operation(
        "How {model}'s shadow challenger compares with what answers, over all workers",
        _OBJECT,
        (400, 404, 503),
    ),
    "shadow.start": Operation(
        "Start a shadow challenger: {version, fraction} (the repository API)",
        _json({}),
        (400, 403, 404, 413, 503),
        body=_json(
            {
                "type": "object",
                "properties": {
                    "version": {"type": ["integer", "string"]},
                    "fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                },
                "required": ["version"],
            }
        ),
    ),
    "shadow.stop": Operation("Stop a shadow challenger", _json({}), (400, 403, 404)),
    "shadow.promote": Operation(
        "Promote a shadow challenger: it answers, in every worker", _json({}), (400, 403, 404, 503)
    ),
    "mlflow.invocations": Operation(
        "MLflow scoring",
        _json(_MLFLOW_PREDICTIONS),
        (400, 413, 415, 503),
        body=_MLFLOW_REQUEST,
    ),
    "mlflow.ping": Operation("MLflow liveness", None),
    "mlflow.version": Operation("Server version", _TEXT),
    "ui.index": Operation(
        "The served models and the endpoints: JSON, or a page for a browser",
        {**_OBJECT, **_HTML},
    ),
    "ui.model_page": Operation("A page to try the model, with its model card", _HTML, (404, 503)),
}

#: endpoints left out of the document on purpose, and why
EXCLUDED: Mapping[str, str] = {
    "openapi.openapi_document": "the document itself",
    "openapi.docs": "Swagger UI's page: it reads the document, and adds no operation",
    "openapi.docs_asset": "Swagger UI's CSS and scripts: files for the /docs page, not an API",
    "ui.static": "the web pages' CSS and scripts: files, not an API",
}
