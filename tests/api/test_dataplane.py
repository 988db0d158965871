"""The data plane: every view that uses a model goes through it, and cannot skip its steps.

The policy of who may call what is walked over every route the app has, so a new
endpoint that forgets access control fails here, not in production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask, jsonify
from flask.typing import ResponseReturnValue

from flaskserve import dataplane
from flaskserve.api.auth import ADMIN_ENDPOINTS, OPEN_ENDPOINTS
from flaskserve.api.state import request_scope
from flaskserve.app import create_app
from flaskserve.codecs import records
from flaskserve.settings import Settings

KEY = "k" * 24
ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
# a value for each URL variable of the app's routes
URL_VALUES = {"name": "iris", "version": "1", "asset": "swagger-ui.css", "filename": "ui.css"}


def _keyed_app(model_dir: Path, **settings: Any) -> Flask:
    return create_app(Settings(model_dir=model_dir, poll_seconds=0, api_keys=KEY, **settings))


def _with_throwaway_view(app: Flask) -> Flask:
    """A new surface, written the way the data plane asks: decode, begin, predict, encode."""
    bp = Blueprint("throwaway", __name__)

    @bp.post("/throwaway/<name>")
    def throwaway(name: str) -> ResponseReturnValue:
        environ, state = request_scope()
        call = dataplane.begin(environ, state, name)
        rows = records.decode_rows(call.body_json(), call.manifest.feature_names, 10)
        return jsonify(labels=call.predict(rows).predictions.tolist())

    app.register_blueprint(bp)
    return app


def test_a_new_view_through_the_data_plane_is_refused_without_a_key(model_dir: Path) -> None:
    client = _with_throwaway_view(_keyed_app(model_dir)).test_client()
    refused = client.post("/throwaway/iris", json=ROW)
    assert refused.status_code == 401
    assert refused.json == {
        "error": "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
    }
    answered = client.post("/throwaway/iris", json=ROW, headers={"X-API-Key": KEY})
    assert answered.status_code == 200
    assert answered.json == {"labels": [2]}


def test_a_new_view_through_the_data_plane_is_counted(model_dir: Path) -> None:
    app = _with_throwaway_view(_keyed_app(model_dir))
    client = app.test_client()
    for _ in range(3):
        response = client.post("/throwaway/iris", json=[ROW, ROW], headers={"X-API-Key": KEY})
        assert response.headers["X-Model-Name"] == "iris"
        assert response.headers["X-Model-Version"] == "1"
    client.post("/throwaway/iris", json=ROW)  # refused: counted as a 401, no model, no rows
    metrics = client.get("/metrics").get_data(as_text=True)
    counted = 'flaskserve_requests_total{endpoint="/throwaway/<name>",model="iris",status="200"}'
    assert f"{counted} 3.0" in metrics
    refused = 'flaskserve_requests_total{endpoint="/throwaway/<name>",model="",status="401"}'
    assert f"{refused} 1.0" in metrics
    assert 'flaskserve_rows_predicted_total{model="iris",version="1"} 6.0' in metrics


def _every_route(app: Flask) -> list[tuple[str, str, str]]:
    adapter = app.url_map.bind("localhost")
    routes = []
    for rule in app.url_map.iter_rules():
        method = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})[0]
        values = {variable: URL_VALUES[variable] for variable in rule.arguments}
        path = adapter.build(rule.endpoint, values, method=method)
        routes.append((rule.endpoint, method, path))
    return routes


def test_every_route_needs_a_key_unless_it_is_declared_open(model_dir: Path) -> None:
    app = _keyed_app(model_dir, admin_token="a" * 24)
    client = app.test_client()
    routes = _every_route(app)
    assert {endpoint for endpoint, _, _ in routes} >= OPEN_ENDPOINTS | ADMIN_ENDPOINTS
    for endpoint, method, path in routes:
        with client.open(path, method=method, json=ROW) as response:  # closes files it sent
            status = response.status_code
        if endpoint in OPEN_ENDPOINTS:
            assert status != 401, f"{endpoint} ({path}) is declared open but asks for a key"
        else:  # the repository API asks for its admin token instead
            assert status == 401, f"{endpoint} ({path}) answered {status} without a key"


@pytest.mark.parametrize("path", ["/model", "/model/iris", "/model/iris/stats", "/ui/iris", "/"])
def test_model_pages_open_with_a_key(model_dir: Path, path: str) -> None:
    client = _keyed_app(model_dir).test_client()
    assert client.get(path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
