"""The Open Inference Protocol (KServe v2) over REST, through Flask's test client.

The requests adapt the protocol's own examples, from kserve/open-inference-protocol
``specification/protocol/inference_rest.md`` (the REST spec KServe's docs
publish as ``required_api.md``), to the iris model. The codec's exhaustive
input checks live in ``tests/codecs/test_v2.py``; here each endpoint is driven
end to end: routing, status codes, headers, the registry and the admin token.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from assertions import assert_error, json_body
from flaskserve import __version__
from flaskserve.app import create_app
from flaskserve.settings import Settings
from v2_examples import FLAT, ROWS, SPEC_REQUEST, SPEC_RESPONSE

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASS_NAMES = ["setosa", "versicolor", "virginica"]
INFER = "/v2/models/iris/infer"
TOKEN = "x" * 32
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def _request(data: Any, *, shape: list[int], **extra: Any) -> dict[str, Any]:
    tensor = {"name": "input-0", "shape": shape, "datatype": "FP64", "data": data}
    return {"inputs": [tensor], **extra}


def _outputs(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {output["name"]: output for output in body["outputs"]}


@pytest.fixture(scope="module")
def admin_app(model_dir: Path) -> Flask:
    """An app of its own with the repository API on, so unloading never reaches ``app``."""
    return create_app(Settings(model_dir=model_dir, admin_token=TOKEN, poll_seconds=0))


@pytest.fixture()
def admin_client(admin_app: Flask) -> FlaskClient:
    """A client of ``admin_app``, with iris loaded whatever the last test left."""
    client = admin_app.test_client()
    assert client.post("/v2/repository/models/iris/load", headers=ADMIN).status_code == 200
    return client


# --- health and metadata ---


def test_server_metadata(client: FlaskClient) -> None:
    response = client.get("/v2")
    assert response.status_code == 200
    assert json_body(response) == {
        "name": "flaskserve",
        "version": __version__,
        "extensions": ["model_repository", "binary_tensor_data"],
    }


def test_server_live_and_ready(client: FlaskClient) -> None:
    live = client.get("/v2/health/live")
    assert (live.status_code, json_body(live)) == (200, {"live": True})
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, json_body(ready)) == (200, {"ready": True})


@pytest.mark.parametrize(
    "path", ["/v2/models/iris", "/v2/models/iris/versions/1"], ids=["latest", "version-1"]
)
def test_model_metadata(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["X-Model-Name"] == "iris"
    assert response.headers["X-Model-Version"] == "1"
    body = json_body(response)
    assert body["name"] == "iris"
    assert body["versions"] == ["1"]
    assert body["platform"] == "sklearn"
    assert body["inputs"], "a client builds its request from these: never empty"
    assert body["inputs"] == [{"name": f, "datatype": "FP64", "shape": [-1]} for f in FEATURES]
    assert body["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
    ]
    parameters = body["parameters"]
    assert parameters["task"] == "classification"
    assert [f["name"] for f in parameters["features"]] == FEATURES
    assert parameters["combined_input"] == {"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}
    assert "load_failures" not in parameters


def test_metadata_inputs_make_a_valid_request(client: FlaskClient) -> None:
    """The advertised inputs, filled in as named, are accepted as they are."""
    metadata = json_body(client.get("/v2/models/iris"))
    inputs = [
        {
            "name": tensor["name"],
            "shape": [len(ROWS)],
            "datatype": tensor["datatype"],
            "data": [row[column] for row in ROWS],
        }
        for column, tensor in enumerate(metadata["inputs"])
    ]
    combined = metadata["parameters"]["combined_input"]
    alternative = {**combined, "shape": [len(ROWS), 4], "data": ROWS}
    for request in ({"inputs": inputs}, {"inputs": [alternative]}):
        response = client.post(INFER, json=request)
        assert response.status_code == 200, response.data
        assert _outputs(json_body(response))["predict"]["data"] == [2, 0]


MODEL_ERRORS = {
    "unknown-model": ("/v2/models/nope", 404, ("no model named 'nope'",)),
    "unknown-version": ("/v2/models/iris/versions/2", 404, ("no version 2",)),
    "malformed-name": ("/v2/models/-iris", 400, ("model name '-iris'",)),
    "name-with-space": ("/v2/models/ir%20is", 400, ("model name 'ir is'",)),
    "malformed-version": ("/v2/models/iris/versions/one", 400, ("model version 'one'",)),
    "version-zero": ("/v2/models/iris/versions/0", 400, ("model version '0'", "positive")),
    "negative-version": ("/v2/models/iris/versions/-1", 400, ("model version '-1'",)),
}


@pytest.mark.parametrize(("path", "status", "says"), MODEL_ERRORS.values(), ids=MODEL_ERRORS)
@pytest.mark.parametrize("suffix", ["", "/ready"], ids=["metadata", "ready"])
def test_model_errors(
    client: FlaskClient, path: str, status: int, says: tuple[str, ...], suffix: str
) -> None:
    assert_error(client.get(path + suffix), status, *says)


@pytest.mark.parametrize(
    "path",
    ["/v2/models/iris/ready", "/v2/models/iris/versions/1/ready"],
    ids=["latest", "version-1"],
)
def test_model_ready(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert json_body(response) == {"name": "iris", "version": "1", "ready": True}


# --- inference ---


def test_spec_example_answers_like_the_spec(client: FlaskClient) -> None:
    response = client.post(INFER, json=SPEC_REQUEST)
    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert json_body(response) == SPEC_RESPONSE
    assert response.headers["X-Model-Name"] == "iris"
    assert response.headers["X-Model-Version"] == "1"


def test_spec_example_with_its_integer_datatype(client: FlaskClient) -> None:
    """The spec's UINT32 input, with whole-number iris rows."""
    rows = [[6, 3, 5, 2], [5, 4, 1, 0]]
    tensor = {"name": "input0", "shape": [2, 4], "datatype": "UINT32", "data": rows}
    response = client.post(INFER, json={**SPEC_REQUEST, "inputs": [tensor]})
    assert response.status_code == 200, response.data
    data = _outputs(json_body(response))["predict"]["data"]
    assert data == json_body(client.post("/predict", json=rows))["result"] == [2, 0]


def test_versioned_infer(client: FlaskClient) -> None:
    response = client.post("/v2/models/iris/versions/1/infer", json=SPEC_REQUEST)
    assert response.status_code == 200
    assert json_body(response) == SPEC_RESPONSE
    assert response.headers["X-Model-Version"] == "1"


def test_outputs_come_in_the_requested_order(client: FlaskClient) -> None:
    outputs = [{"name": "label"}, {"name": "predict_proba"}, {"name": "predict"}]
    response = client.post(INFER, json={**SPEC_REQUEST, "outputs": outputs})
    assert response.status_code == 200
    body = json_body(response)
    assert [o["name"] for o in body["outputs"]] == ["label", "predict_proba", "predict"]
    label, proba, predict = body["outputs"]
    assert predict == {"name": "predict", "shape": [2], "datatype": "INT64", "data": [2, 0]}
    assert label == {
        "name": "label",
        "shape": [2],
        "datatype": "BYTES",
        "data": ["virginica", "setosa"],
    }
    assert label["data"] == [CLASS_NAMES[p] for p in predict["data"]]
    assert proba["datatype"] == "FP64"
    assert proba["shape"] == [2, 3]
    assert len(proba["data"]) == 6
    rows = [proba["data"][i : i + 3] for i in range(0, 6, 3)]
    for row, predicted in zip(rows, predict["data"], strict=True):
        assert all(0.0 <= p <= 1.0 for p in row)
        assert sum(row) == pytest.approx(1.0)
        assert max(range(3), key=row.__getitem__) == predicted


def test_predict_is_the_default_output(client: FlaskClient) -> None:
    request = {key: value for key, value in SPEC_REQUEST.items() if key != "outputs"}
    assert json_body(client.post(INFER, json=request)) == SPEC_RESPONSE


def test_probabilities_agree_with_predict(client: FlaskClient) -> None:
    response = client.post(
        INFER, json=_request(ROWS, shape=[2, 4], outputs=[{"name": "predict_proba"}])
    )
    proba = _outputs(json_body(response))["predict_proba"]
    expected = json_body(client.post("/predict?proba=true", json=ROWS))["probabilities"]
    assert proba["data"] == [p for row in expected for p in row]


# The spec's "Tensor Data" section: the matrix [1 2; 4 5] may be sent as
# "data" : [ [ 1, 2 ], [ 4, 5 ] ] or flattened as "data" : [ 1, 2, 4, 5 ].
@pytest.mark.parametrize("data", [FLAT, ROWS], ids=["flat", "nested"])
def test_flat_and_nested_data(client: FlaskClient, data: list[Any]) -> None:
    response = client.post(INFER, json=_request(data, shape=[2, 4]))
    assert response.status_code == 200, response.data
    assert _outputs(json_body(response))["predict"]["data"] == [2, 0]


@pytest.mark.parametrize(
    ("shape", "nested", "order"),
    [
        ([2], False, FEATURES),
        ([2, 1], True, FEATURES),
        ([2, 1], False, FEATURES),
        ([2], False, list(reversed(FEATURES))),
    ],
    ids=["shape-n", "shape-n-1-nested", "shape-n-1-flat", "any-order"],
)
def test_one_input_per_feature(
    client: FlaskClient, shape: list[int], nested: bool, order: list[str]
) -> None:
    inputs = []
    for name in order:
        column = [row[FEATURES.index(name)] for row in ROWS]
        data = [[value] for value in column] if nested else column
        inputs.append({"name": name, "shape": shape, "datatype": "FP64", "data": data})
    response = client.post(INFER, json={"inputs": inputs, "outputs": [{"name": "label"}]})
    assert response.status_code == 200, response.data
    assert _outputs(json_body(response))["label"]["data"] == ["virginica", "setosa"]


def test_parameters_are_passed_through(client: FlaskClient) -> None:
    parameters = {"content_type": "np", "priority": 3, "trace": True, "ratio": 0.5}
    tensor = {**SPEC_REQUEST["inputs"][0], "parameters": {"content_type": "np"}}
    request = {
        **SPEC_REQUEST,
        "parameters": parameters,
        "inputs": [tensor],
        "outputs": [{"name": "predict", "parameters": {"binary_data": False}}],
    }
    body = json_body(client.post(INFER, json=request))
    assert body["parameters"] == parameters
    assert body["id"] == "42"
    assert body["outputs"] == SPEC_RESPONSE["outputs"]


def test_id_and_parameters_are_echoed_only_when_given(client: FlaskClient) -> None:
    body = json_body(client.post(INFER, json=_request(ROWS, shape=[2, 4])))
    assert list(body) == ["model_name", "model_version", "outputs"]


def test_any_content_type_is_read_as_json(client: FlaskClient) -> None:
    data = json.dumps(SPEC_REQUEST).encode()
    for headers in ({}, {"Content-Type": "text/plain"}, {"Content-Type": "application/json"}):
        response = client.post(INFER, data=data, headers=headers)
        assert json_body(response) == SPEC_RESPONSE, headers


# A few bad requests through the HTTP layer; tests/codecs/test_v2.py has them all.
BAD_REQUESTS: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "invalid-json": (b'{"inputs": [', ("invalid JSON",)),
    "empty-body": (b"", ("empty body",)),
    "no-inputs": (b'{"id": "42"}', ("missing key(s) 'inputs'",)),
    "empty-inputs": (b'{"inputs": []}', ("'inputs'", "empty array")),
    "numeric-id": (
        json.dumps({**SPEC_REQUEST, "id": 42}).encode(),
        ("'id' must be a string",),
    ),
    "bytes-datatype": (
        json.dumps(
            {"inputs": [{"name": "input0", "shape": [2, 4], "datatype": "BYTES", "data": FLAT}]}
        ).encode(),
        ("input 'input0'", "BYTES is not supported"),
    ),
    "shape-too-narrow": (json.dumps(_request(FLAT, shape=[2, 3])).encode(), ("[-1, 4]",)),
    "too-few-values": (
        json.dumps(_request(FLAT[:7], shape=[2, 4])).encode(),
        ("needs 8 values, got 7",),
    ),
    "string-value": (
        json.dumps(_request(["5.9", *FLAT[1:]], shape=[2, 4])).encode(),
        ("row 0", "'sepal_length'", "string '5.9'"),
    ),
    "spec-output-name": (
        json.dumps({**SPEC_REQUEST, "outputs": [{"name": "output0"}]}).encode(),
        ("unknown output 'output0'", "predict"),
    ),
    "missing-feature-input": (
        json.dumps(
            {"inputs": [{"name": "sepal_length", "shape": [1], "datatype": "FP64", "data": [5]}]}
        ).encode(),
        ("missing feature input(s)", "'petal_width'"),
    ),
}


@pytest.mark.parametrize(("data", "says"), BAD_REQUESTS.values(), ids=BAD_REQUESTS)
def test_bad_request_is_400(client: FlaskClient, data: bytes, says: tuple[str, ...]) -> None:
    response = client.post(INFER, data=data, headers={"Content-Type": "application/json"})
    assert_error(response, 400, *says)
    assert "X-Model-Version" not in response.headers
    assert json_body(client.post(INFER, json=SPEC_REQUEST)) == SPEC_RESPONSE


def test_too_many_rows_is_413(model_dir: Path) -> None:
    client = create_app(Settings(model_dir=model_dir, max_rows=1, poll_seconds=0)).test_client()
    assert_error(client.post(INFER, json=SPEC_REQUEST), 413, "2 rows", "limit of 1")


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/v2/models/nope/infer", "no model named 'nope'"),
        ("/v2/models/nope/versions/1/infer", "no model named 'nope'"),
        ("/v2/models/iris/versions/9/infer", "model 'iris' has no version 9"),
    ],
    ids=["unknown-model", "unknown-model-version", "unknown-version"],
)
def test_unknown_model_is_404(client: FlaskClient, path: str, says: str) -> None:
    response = client.post(path, json=SPEC_REQUEST)
    assert_error(response, 404, says)
    assert "X-Model-Version" not in response.headers


def test_get_infer_is_405(client: FlaskClient) -> None:
    response = client.get(INFER)
    assert_error(response, 405, "use POST")
    assert "POST" in response.headers["Allow"]


# --- models that are not ready ---


def test_model_that_failed_its_checks_is_503(model_dir: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "iris"
    shutil.copytree(model_dir, tampered)
    manifest = json.loads((tampered / "flaskserve.json").read_text())
    model_file = tampered / manifest["model_file"]
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    client = create_app(Settings(model_dir=tampered, poll_seconds=0)).test_client()

    assert client.get("/v2/health/live").status_code == 200
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, json_body(ready)) == (503, {"ready": False})
    for response in (
        client.post(INFER, json=SPEC_REQUEST),
        client.get("/v2/models/iris/ready"),
        client.get("/v2/models/iris"),
    ):
        assert_error(response, 503, "model 'iris' failed to load", "SHA-256")


def test_missing_repository_is_not_ready(tmp_path: Path) -> None:
    client = create_app(Settings(model_dir=tmp_path / "missing", poll_seconds=0)).test_client()
    assert client.get("/v2/health/live").status_code == 200
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, json_body(ready)) == (503, {"ready": False})
    # the default-model endpoints say why
    assert_error(client.post("/predict", json=ROWS), 503, "no model is ready", "missing")


def test_missing_repository_named_model_is_503(tmp_path: Path) -> None:
    client = create_app(Settings(model_dir=tmp_path / "missing", poll_seconds=0)).test_client()
    assert_error(client.post(INFER, json=SPEC_REQUEST), 503, "missing")


# --- the model repository extension ---

REPOSITORY_CALLS = {
    "index": "/v2/repository/index",
    "load": "/v2/repository/models/iris/load",
    "unload": "/v2/repository/models/iris/unload",
}


@pytest.mark.parametrize("path", REPOSITORY_CALLS.values(), ids=REPOSITORY_CALLS)
def test_repository_is_off_without_an_admin_token(client: FlaskClient, path: str) -> None:
    assert_error(client.post(path, headers=ADMIN), 403, "FLASKSERVE_ADMIN_TOKEN")
    assert json_body(client.post(INFER, json=SPEC_REQUEST)) == SPEC_RESPONSE


BAD_AUTH = {
    "missing": {},
    "wrong-token": {"Authorization": "Bearer " + "y" * 32},
    "token-prefix": {"Authorization": "Bearer " + TOKEN[:-1]},
    "basic-scheme": {"Authorization": f"Basic {TOKEN}"},
    "no-scheme": {"Authorization": TOKEN},
    "empty-bearer": {"Authorization": "Bearer "},
}


@pytest.mark.parametrize("path", REPOSITORY_CALLS.values(), ids=REPOSITORY_CALLS)
@pytest.mark.parametrize("headers", BAD_AUTH.values(), ids=BAD_AUTH)
def test_repository_needs_the_token(
    admin_client: FlaskClient, path: str, headers: dict[str, str]
) -> None:
    response = admin_client.post(path, headers=headers)
    assert_error(response, 401, "Authorization: Bearer")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert json_body(admin_client.post(INFER, json=SPEC_REQUEST)) == SPEC_RESPONSE  # still served


def test_repository_index(admin_client: FlaskClient) -> None:
    ready_row = {"name": "iris", "version": "1", "state": "READY", "reason": ""}
    response = admin_client.post("/v2/repository/index", headers=ADMIN)
    assert response.status_code == 200
    assert json_body(response) == [ready_row]
    filtered = {"ready": True}, {"ready": False}, {"repository_name": "default"}
    answers = [
        json_body(admin_client.post("/v2/repository/index", headers=ADMIN, json=options))
        for options in filtered
    ]
    assert answers == [[ready_row], [], [ready_row]]
    bad = admin_client.post("/v2/repository/index", headers=ADMIN, json={"ready": "yes"})
    assert_error(bad, 400, "'ready'")


def test_scheme_is_case_insensitive(admin_client: FlaskClient) -> None:
    response = admin_client.post(
        "/v2/repository/index", headers={"Authorization": f"bearer {TOKEN}"}
    )
    assert response.status_code == 200


def test_unload_then_load(admin_client: FlaskClient) -> None:
    unload = admin_client.post("/v2/repository/models/iris/unload", headers=ADMIN)
    assert (unload.status_code, json_body(unload)) == (200, {"name": "iris", "state": "UNLOADED"})

    assert_error(admin_client.post(INFER, json=SPEC_REQUEST), 503, "model 'iris' is unloaded")
    assert_error(admin_client.get("/v2/models/iris/ready"), 503, "unloaded")
    assert admin_client.post("/invocations", json={"inputs": ROWS}).status_code == 503
    assert admin_client.post("/predict", json=ROWS).status_code == 503
    assert admin_client.get("/v2/health/ready").status_code == 503
    index = json_body(admin_client.post("/v2/repository/index", headers=ADMIN))
    assert index == [{"name": "iris", "version": "", "state": "UNLOADED", "reason": ""}]

    load = admin_client.post("/v2/repository/models/iris/load", headers=ADMIN)
    assert (load.status_code, json_body(load)) == (
        200,
        {"name": "iris", "version": "1", "state": "READY"},
    )
    assert json_body(admin_client.post(INFER, json=SPEC_REQUEST)) == SPEC_RESPONSE
    assert admin_client.get("/v2/health/ready").status_code == 200
    index = json_body(admin_client.post("/v2/repository/index", headers=ADMIN))
    assert index == [{"name": "iris", "version": "1", "state": "READY", "reason": ""}]


def test_load_and_unload_are_idempotent(admin_client: FlaskClient) -> None:
    for action in ("load", "load", "unload", "unload", "load"):
        response = admin_client.post(f"/v2/repository/models/iris/{action}", headers=ADMIN)
        assert response.status_code == 200, (action, response.data)
    assert json_body(admin_client.post(INFER, json=SPEC_REQUEST)) == SPEC_RESPONSE


@pytest.mark.parametrize("action", ["load", "unload"])
def test_repository_unknown_model(admin_client: FlaskClient, action: str) -> None:
    response = admin_client.post(f"/v2/repository/models/nope/{action}", headers=ADMIN)
    assert_error(response, 404, "no model named 'nope'")
    bad_name = admin_client.post(f"/v2/repository/models/-nope/{action}", headers=ADMIN)
    assert_error(bad_name, 400, "model name '-nope'")
    assert json_body(admin_client.post(INFER, json=SPEC_REQUEST)) == SPEC_RESPONSE


@pytest.mark.parametrize("path", ["/predict", "/invocations"])
def test_unloading_the_default_model_does_not_switch_models(
    model_dir: Path, tmp_path: Path, path: str
) -> None:
    for name in ("a", "b"):  # two copies of iris: only X-Model-Name tells them apart
        shutil.copytree(model_dir, tmp_path / name / "1")
        manifest_path = tmp_path / name / "1" / "flaskserve.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["name"] = name
        manifest_path.write_text(json.dumps(manifest))
    settings = Settings(model_dir=tmp_path, admin_token=TOKEN, poll_seconds=0, default_model="a")
    client = create_app(settings).test_client()
    body = {"inputs": ROWS} if path == "/invocations" else ROWS
    assert client.post(path, json=body).headers["X-Model-Name"] == "a"

    assert client.post("/v2/repository/models/a/unload", headers=ADMIN).status_code == 200
    response = client.post(path, json=body)
    assert response.headers.get("X-Model-Name") != "b", "answered by another model"
    assert_error(response, 503, "model 'a' is unloaded")
