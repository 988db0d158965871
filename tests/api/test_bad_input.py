"""Every bad input gets a clear 4xx JSON error, and the server stays healthy.

The same corpus runs through Flask's test client and through a real gunicorn
server (``integration``), so nothing depends on the test client's shortcuts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
from flask.testing import FlaskClient

from flaskserve.app import create_app
from flaskserve.settings import Settings
from liveserver import LiveServer

ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}


def _row(**changes: object) -> bytes:
    return json.dumps({**ROW, **changes}).encode()


def _raw_row(field_name: str, literal: str) -> bytes:
    """A row whose *field_name* holds a JSON literal that json.dumps would not write."""
    parts = [f'"{k}": {literal if k == field_name else v}' for k, v in ROW.items()]
    return ("{" + ", ".join(parts) + "}").encode()


@dataclass(frozen=True)
class Bad:
    body: bytes
    status: int
    says: tuple[str, ...]  # every one of these must be in the error message
    method: str = "POST"
    path: str = "/predict"
    headers: dict[str, str] = field(default_factory=dict)


MISSING = {k: v for k, v in ROW.items() if k != "petal_width"}

CASES: dict[str, Bad] = {
    "invalid-json": Bad(b'{"sepal_length": 5.9,', 400, ("invalid JSON",)),
    "not-json-at-all": Bad(b"sepal_length=5.9", 400, ("invalid JSON",)),
    "empty-body": Bad(b"", 400, ("empty body",)),
    "whitespace-body": Bad(b"  \n ", 400, ("empty body",)),
    "json-number": Bad(b"42", 400, ("expected a JSON object", "number 42")),
    "json-string": Bad(b'"hello"', 400, ("expected a JSON object", "string 'hello'")),
    "json-null": Bad(b"null", 400, ("expected a JSON object", "null")),
    "json-true": Bad(b"true", 400, ("boolean true",)),
    "empty-list": Bad(b"[]", 400, ("at least one row",)),
    "missing-feature": Bad(json.dumps(MISSING).encode(), 400, ("missing", "'petal_width'")),
    "unknown-feature": Bad(_row(colour=1), 400, ("unknown", "'colour'")),
    "null-value": Bad(_row(sepal_width=None), 400, ("'sepal_width'", "null")),
    "string-value": Bad(_row(sepal_width="3.0"), 400, ("'sepal_width'", "string '3.0'")),
    "boolean-value": Bad(_row(petal_length=True), 400, ("'petal_length'", "boolean true")),
    "nan": Bad(_raw_row("sepal_length", "NaN"), 400, ("NaN",)),
    "infinity": Bad(_raw_row("sepal_length", "Infinity"), 400, ("Infinity",)),
    "minus-infinity": Bad(_raw_row("sepal_length", "-Infinity"), 400, ("-Infinity",)),
    "overflow-float": Bad(_raw_row("petal_width", "1e999"), 400, ("'petal_width'", "finite")),
    "huge-int": Bad(_raw_row("petal_width", "1" + "0" * 400), 400, ("'petal_width'", "float64")),
    "int-over-digit-limit": Bad(_raw_row("petal_width", "9" * 5000), 400, ("invalid JSON",)),
    "nested-object": Bad(_row(sepal_width={"value": 3.0}), 400, ("'sepal_width'", "object")),
    "nested-array-value": Bad(_row(sepal_width=[3.0]), 400, ("'sepal_width'", "array")),
    "deeply-nested": Bad(b"[" * 100_000 + b"]" * 100_000, 400, ("nested too deeply",)),
    "nested-past-the-limit": Bad(b"[" * 33 + b"]" * 33, 400, ("nested deeper than 32 levels",)),
    "deeply-nested-unclosed": Bad(b'{"a":' * 50_000, 400, ("invalid JSON",)),
    "mixed-row-kinds": Bad(
        json.dumps([ROW, [5.9, 3.0, 5.1, 1.8]]).encode(), 400, ("row 1", "object")
    ),
    "short-positional-row": Bad(
        json.dumps([[5.9, 3.0, 5.1, 1.8], [5.9, 3.0]]).encode(), 400, ("row 1", "got 2")
    ),
    "row-missing-in-batch": Bad(json.dumps([ROW, MISSING]).encode(), 400, ("row 1", "missing")),
    "scalar-row-in-batch": Bad(json.dumps([ROW, 7]).encode(), 400, ("row 1", "number 7")),
    "duplicate-key": Bad(
        b'{"sepal_length": 5.9, "sepal_length": 6, "sepal_width": 3.0, "petal_length": 5.1,'
        b' "petal_width": 1.8}',
        400,
        ("'sepal_length'", "more than once"),
    ),
    "invalid-utf8": Bad(b'{"sepal_length": "\xff\xfe"}', 400, ("invalid JSON",)),
    "bad-proba-flag": Bad(_row(), 400, ("'proba'", "maybe"), path="/predict?proba=maybe"),
    "compressed-body": Bad(_row(), 415, ("gzip",), headers={"Content-Encoding": "gzip"}),
    "too-many-rows": Bad(json.dumps([ROW] * 10_001).encode(), 413, ("10001 rows", "10000")),
    "body-over-limit": Bad(
        b"[" + b" " * (10 * 1024 * 1024) + b"]", 413, ("over the limit of 10485760 bytes",)
    ),
    "unknown-path": Bad(b"", 404, ("/nowhere",), method="GET", path="/nowhere"),
    "get-predict": Bad(b"", 405, ("GET", "POST"), method="GET"),
    "delete-predict": Bad(b"", 405, ("DELETE",), method="DELETE"),
}


def _check(status: int, content_type: str, body: bytes, case: Bad) -> None:
    assert status == case.status, body[:300]
    assert content_type.startswith("application/json")
    error = json.loads(body)["error"]
    assert isinstance(error, str) and error
    for fragment in case.says:
        assert fragment in error, error
    assert "Traceback" not in error and 'File "' not in error


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_test_client(client: FlaskClient, case: Bad) -> None:
    response = client.open(case.path, method=case.method, data=case.body, headers=case.headers)
    _check(response.status_code, response.content_type, response.data, case)
    assert client.post("/predict", json=ROW).json == {"result": [2]}


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_real_server(live_server: LiveServer, case: Bad) -> None:
    url = live_server.url
    response = requests.request(
        case.method, url + case.path, data=case.body, headers=case.headers, timeout=30
    )
    _check(response.status_code, response.headers["Content-Type"], response.content, case)
    assert requests.post(url + "/predict", json=ROW, timeout=10).json() == {"result": [2]}
    assert requests.get(url + "/ready", timeout=10).status_code == 200


@pytest.mark.integration
def test_real_server_chunked_body_over_limit(live_server: LiveServer) -> None:
    """A body without Content-Length (chunked) is cut off at the limit too."""
    url = live_server.url

    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(11):
            yield b" " * (1024 * 1024)
        yield b"]"

    response = requests.post(url + "/predict", data=chunks(), timeout=30)
    assert response.status_code == 413
    assert response.json() == {"error": "the body is over the limit of 10485760 bytes"}
    assert requests.post(url + "/predict", json=ROW, timeout=10).json() == {"result": [2]}


def test_regression_model_has_no_labels(tmp_path: object) -> None:
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    from flaskserve import save_model

    x = np.arange(40, dtype=float).reshape(20, 2)
    model = RandomForestRegressor(n_estimators=3, random_state=0).fit(x, x[:, 0] * 2)
    path = tmp_path / "reg"  # type: ignore[operator]
    save_model(model, path, sample=x, feature_names=["a", "b"])
    client = create_app(Settings(model_dir=path)).test_client()
    assert client.post("/predict", json={"a": 1, "b": 2}).status_code == 200
    refusals = {
        "labels=true": "model 'reg' is a regression model: it has no class labels",
        "proba=true": "model 'reg' does not give probabilities",
    }
    for query, message in refusals.items():
        response = client.post(f"/predict?{query}", json={"a": 1, "b": 2})
        assert response.status_code == 400, query
        assert response.json == {"error": message}
