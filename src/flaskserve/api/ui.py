"""The web pages: ``/`` lists the models, ``/ui/<model>`` tries one and shows its card.

Everything the pages need (CSS, JS, charts drawn as SVG) is served from the
package, so they work with no internet. The page calls the same JSON API as
any client, so what it shows is what a client would get.
"""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, Response, abort, jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue

from .. import dataplane
from ..artifact import Feature, ModelManifest
from ..modelcard import describe_explanation, describe_features
from ..runtime.registry import Snapshot
from ..schema import kind_of
from ..version import __version__
from .auth import require_api_key
from .health import public_metadata
from .state import request_scope

bp = Blueprint(
    "ui",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/ui/static",
)

# Only files from this server, and no inline script: the model's data travels as JSON.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
MAX_STEP_DECIMALS = 4


@bp.get("/")
def index() -> ResponseReturnValue:
    """HTML for a browser (it asks for text/html), a JSON index of the endpoints otherwise."""
    state = require_api_key()
    wants = request.accept_mimetypes.best_match(["application/json", "text/html"])
    models = _model_list(state.registry.snapshot)
    if wants == "text/html" and state.settings.ui:
        response = _page("flaskserve/index.html", models=models, version=__version__)
    else:
        response = jsonify(
            name="flaskserve", version=__version__, models=models, endpoints=ENDPOINTS
        )
    response.vary.add("Accept")
    return response


@bp.get("/ui/<name>")
def model_page(name: str) -> ResponseReturnValue:
    """One input per feature, a Predict button, the prediction, and the model card."""
    state = require_api_key()
    if not state.settings.ui:
        abort(404)
    environ, _ = request_scope()
    served = dataplane.begin(environ, state, name, predicting=False).describe()
    manifest = served.runtime.manifest
    data = {
        "name": served.name,
        "task": manifest.task,
        "features": [f.name for f in manifest.features],
        "class_names": list(manifest.class_names),
        # url_for, not literals: behind a proxy that mounts the app under a path, so are these
        "predict_url": url_for("predict.predict", name=served.name),
        "explain_url": url_for("explain.explain", name=served.name),
        "stats_url": url_for("health.model_stats", name=served.name),
    }
    return _page(
        "flaskserve/model.html",
        model=public_metadata(served),
        sha256=manifest.sha256,
        fields=form_fields(manifest),
        card=model_card(manifest),
        data=data,
    )


def _page(template: str, **context: Any) -> Response:
    response = Response(render_template(template, **context), content_type="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


ENDPOINTS = {
    "predict": "/predict/{model}",
    "explain": "/explain/{model}",
    "v2_infer": "/v2/models/{model}/infer",
    "mlflow_invocations": "/invocations",
    "model": "/model/{model}",
    "model_stats": "/model/{model}/stats",
    "model_drift": "/model/{model}/drift",
    "model_shadow": "/model/{model}/shadow",
    "kserve_v1_predict": "/v1/models/{model}:predict",
    "ui": "/ui/{model}",
    "health": "/health",
    "ready": "/ready",
    "metrics": "/metrics",
    "openapi": "/openapi.json",
    "docs": "/docs",
}


def _model_list(snapshot: Snapshot) -> list[dict[str, Any]]:
    names = sorted({*snapshot.models, *(name for name, _ in snapshot.failures)})
    listed = []
    for name in names:
        versions = snapshot.models.get(name, {})
        failures = {str(v): why for v, why in snapshot.failures_of(name).items()}
        listed.append(
            {
                "name": name,
                "versions": [str(v) for v in sorted(versions)],
                "ready": bool(versions) and name not in snapshot.unloaded,
                "default": name == snapshot.default_name,
                "load_failures": failures,
            }
        )
    return listed


def form_fields(manifest: ModelManifest) -> list[dict[str, Any]]:
    """One input per feature, pre-filled with a real training row: a number's range and
    step, a text feature's categories (a ``<select>``), a boolean's ``true``/``false``.

    ``kind`` and ``nullable`` tell the page's script which JSON value to send: text as a
    string, a boolean as ``true``/``false``, an empty field of a feature that may be
    missing as ``null``.
    """
    first_row = (manifest.sample.get("inputs") or [None])[0]
    fields = []
    for index, feature in enumerate(manifest.features):
        kind = kind_of(feature)
        value = first_row[index] if first_row is not None else _middle(feature, kind)
        field: dict[str, Any] = {
            "name": feature.name,
            "id": f"feature-{index}",
            "kind": kind,
            "nullable": feature.nullable,
            "value": _cell_text(value, kind),
            "min": None,
            "max": None,
            "step": None,
            "options": None,  # a <select>'s values
            "unknown": None,  # what the model does with an unseen category
        }
        if kind == "integer":
            low, high = (None if v is None else int(v) for v in (feature.min, feature.max))
            field.update(min=low, max=high, step="1")
        elif kind == "number":
            field.update(min=feature.min, max=feature.max, step=input_step(feature, manifest))
        elif kind == "boolean":
            field["options"] = ["false", "true"]
        elif feature.categories is not None:
            field["options"] = list(feature.categories)
            field["unknown"] = feature.unknown_categories
        fields.append(field)
    return fields


def _cell_text(value: Any, kind: str) -> str:
    """A JSON cell as the form shows it: ``""`` for a missing one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "text":
        return str(value)
    return _plain_number(value)


def input_step(feature: Feature, manifest: ModelManifest) -> str:
    """The finest decimal the training data shows for *feature* (``0.1`` for iris)."""
    index = manifest.feature_names.index(feature.name)
    seen = [row[index] for row in manifest.sample.get("inputs", [])]
    seen += [feature.min, feature.max]
    numbers = [v for v in seen if isinstance(v, int | float) and not isinstance(v, bool)]
    decimals = max((_decimals(v) for v in numbers), default=MAX_STEP_DECIMALS)
    return "1" if decimals == 0 else f"{10.0**-decimals:.{decimals}f}"


def _decimals(value: float) -> int:
    mantissa, _, exponent = _plain_number(value).partition("e")
    decimals = len(mantissa.partition(".")[2]) - int(exponent or 0)
    return min(max(decimals, 0), MAX_STEP_DECIMALS)


def _plain_number(value: float) -> str:
    """``5.1``, ``123456789012``: 15 significant digits, all a float64 holds without noise."""
    text = f"{float(value):.15g}"
    return text[:-2] if text.endswith(".0") else text


def _middle(feature: Feature, kind: str) -> float | None:
    if feature.min is None or feature.max is None:
        return None
    middle = (feature.min + feature.max) / 2
    return float(round(middle)) if kind == "integer" else middle


def model_card(manifest: ModelManifest) -> dict[str, Any]:
    """What the card shows, shaped for the template: the features (type, may be missing,
    categories or range), metrics, per-class report, matrix, bars, and how the model is
    explained (:func:`~flaskserve.modelcard.describe_explanation`)."""
    metrics = manifest.metrics
    headline = {
        k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    return {
        "headline": headline,
        "per_class": metrics.get("per_class") or {},
        "confusion": _confusion(metrics.get("confusion_matrix"), manifest.class_names),
        "importances": _importance_bars(manifest.feature_importances),
        "features": describe_features(manifest.features),
        "explanation": describe_explanation(manifest.explanation),
    }


def _confusion(matrix: Any, names: tuple[str, ...]) -> dict[str, Any] | None:
    if not isinstance(matrix, list) or len(matrix) != len(names) or not names:
        return None
    largest = max((max(row) for row in matrix if row), default=0) or 1
    rows = [
        {
            "name": name,
            # shade 0-4 by share of the largest cell; a class, since the CSP forbids inline styles
            "cells": [{"count": n, "shade": math.ceil(4 * n / largest)} for n in row],
        }
        for name, row in zip(names, matrix, strict=True)
    ]
    return {"names": list(names), "rows": rows}


def _importance_bars(importances: dict[str, float]) -> list[dict[str, Any]]:
    largest = max(importances.values(), default=0.0) or 1.0
    ordered = sorted(importances.items(), key=lambda item: -item[1])
    return [
        {"name": name, "value": value, "width": round(100 * value / largest, 2)}
        for name, value in ordered
    ]
