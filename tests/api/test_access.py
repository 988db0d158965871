"""API keys, request ids, the structured access log, and Retry-After on 503."""

from __future__ import annotations

import gc
import json
import logging
import weakref
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import create_environ

from flaskserve.app import create_app
from flaskserve.dataplane import CALL
from flaskserve.errors import SettingsError
from flaskserve.settings import Settings

ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
KEY, OTHER = "k" * 24, "o" * 24
V2 = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.9, 3.0, 5.1, 1.8]}
    ]
}
MLFLOW = {"inputs": [[5.9, 3.0, 5.1, 1.8]]}


@pytest.fixture(scope="module")
def keyed(model_dir: Path) -> FlaskClient:
    settings = Settings(model_dir=model_dir, poll_seconds=0, api_keys=f"{KEY}, {OTHER}")
    return create_app(settings).test_client()


PROTECTED = [
    ("POST", "/predict", ROW),
    ("PUT", "/predict/iris", ROW),
    ("POST", "/v2/models/iris/infer", V2),
    ("GET", "/v2/models/iris", None),
    ("POST", "/invocations", MLFLOW),
    ("GET", "/model", None),
    ("GET", "/openapi.json", None),
]
IDS = ["predict", "predict-name", "v2-infer", "v2-metadata", "invocations", "model", "openapi"]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=IDS)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key-wrong-key"},
        {"X-API-Key": KEY[:-1]},
        {"Authorization": KEY},
    ],
    ids=["none", "wrong-bearer", "truncated", "no-scheme"],
)
def test_protected_without_a_valid_key(
    keyed: FlaskClient, method: str, path: str, body: object, headers: dict[str, str]
) -> None:
    response = keyed.open(path, method=method, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "API key" in response.json["error"]  # type: ignore[index]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=IDS)
@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {KEY}"}, {"X-API-Key": OTHER}],
    ids=["bearer", "x-api-key"],
)
def test_protected_with_a_key(
    keyed: FlaskClient, method: str, path: str, body: object, headers: dict[str, str]
) -> None:
    assert keyed.open(path, method=method, json=body, headers=headers).status_code == 200


@pytest.mark.parametrize(
    "path", ["/health", "/ready", "/v2/health/ready", "/v2/health/live", "/ping", "/metrics"]
)
def test_probes_stay_open(keyed: FlaskClient, path: str) -> None:
    assert keyed.get(path).status_code == 200


def test_keys_too_short_are_refused(model_dir: Path) -> None:
    refused = r"^api_keys: expected comma-separated keys of at least 16 characters$"
    with pytest.raises(SettingsError, match=refused):
        Settings(model_dir=model_dir, api_keys="short")


def test_request_id_is_echoed_or_generated(client: FlaskClient) -> None:
    given = client.post("/predict", json=ROW, headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    generated = client.post("/predict", json=ROW).headers["X-Request-ID"]
    assert len(generated) == 32
    hostile = client.get("/health", headers={"X-Request-ID": "a\u00e9" + "x" * 200}).headers[
        "X-Request-ID"
    ]
    assert hostile != "x" * 200 and len(hostile) == 32  # not echoed: generated instead


def test_access_log_is_one_json_line_without_the_payload(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = create_app(
        Settings(model_dir=model_dir, poll_seconds=0, access_log=True)
    ).test_client()
    with caplog.at_level(logging.INFO, logger="flaskserve.access"):
        client.post(
            "/predict", json=ROW, headers={"X-Request-ID": "req-1", "X-API-Key": "secret-value"}
        )
        client.post("/predict", data=b"{bad")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "flaskserve.access"]
    assert [line["status"] for line in lines] == [200, 400]
    first = lines[0]
    assert first["request_id"] == "req-1"
    assert (first["model"], first["version"], first["path"]) == ("iris", "1", "/predict")
    assert first["ms"] > 0
    text = caplog.text
    assert "5.9" not in text and "secret-value" not in text and "{bad" not in text


def test_not_ready_says_when_to_retry(tmp_path: Path) -> None:
    client = create_app(Settings(model_dir=tmp_path / "missing", poll_seconds=0)).test_client()
    for response in (
        client.post("/predict", json=ROW),
        client.get("/ready"),
        client.post("/invocations", json=MLFLOW),
    ):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"


def test_every_answer_says_its_request_id_and_only_an_answer_names_its_model(
    client: FlaskClient,
) -> None:
    missing = client.get("/no/such/page", headers={"X-Request-ID": "r-404"})
    assert (missing.status_code, missing.headers["X-Request-ID"]) == (404, "r-404")
    assert "X-Model-Name" not in missing.headers  # no model was involved
    refused = client.post("/predict", json={"sepal_length": "x"})
    assert refused.status_code == 400
    assert len(refused.headers["X-Request-ID"]) == 32
    assert "X-Model-Version" not in refused.headers  # no model version answered
    answered = client.post("/predict", json=ROW)
    assert (answered.headers["X-Model-Name"], answered.headers["X-Model-Version"]) == ("iris", "1")


def test_an_answered_request_leaves_no_cycle_for_the_collector(model_dir: Path) -> None:
    """The request's Call and Werkzeug's Request hold the WSGI environ: once the answer is
    out, the environ lets go of both, so reference counting frees them at once."""
    app = create_app(Settings(model_dir=model_dir, poll_seconds=0))
    environ = create_environ("/predict", method="POST", json=ROW)
    held: list[weakref.ref[Any]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        assert status == "200 OK"
        held.extend(weakref.ref(environ[key]) for key in (CALL, "werkzeug.request"))
        return lambda data: None  # the WSGI write(), unused

    gc.disable()  # only reference counting may free them
    try:
        answer = app.wsgi_app(environ, start_response)
        assert b"".join(answer) == b'{"result":[2]}\n'
        getattr(answer, "close", lambda: None)()
        del answer
        assert len(held) == 2 and [ref() for ref in held] == [None, None]
    finally:
        gc.enable()
