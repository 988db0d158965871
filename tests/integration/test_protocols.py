"""The three protocols over real HTTP: ``flaskserve serve`` under gunicorn, two workers.

The v2 request adapts the Open Inference Protocol's "Inference Request
Examples" (kserve/open-inference-protocol, specification/protocol/inference_rest.md);
the MLflow requests adapt "Deploy MLflow Model as a Local Inference Server"
and MLflow 2.x's "Deploy MLflow models" examples (see tests/api/test_v2.py and
tests/api/test_mlflow.py for the same examples through the test client). The
agreement test checks that the tutorial's ``/predict``, v2 ``infer`` and
MLflow ``/invocations`` give one model's answers, whatever the wire format.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import requests
from sklearn.datasets import load_iris

from flaskserve import __version__
from liveserver import LiveServer, on_both_servers
from v2_examples import ROWS, SPEC_REQUEST, SPEC_RESPONSE

pytestmark = pytest.mark.integration

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
JSON = {"Content-Type": "application/json"}
TIMEOUT = 10


def _get(server: LiveServer, path: str) -> requests.Response:
    return requests.get(server.url + path, timeout=TIMEOUT)


def _post(server: LiveServer, path: str, **kwargs: Any) -> requests.Response:
    return requests.post(server.url + path, timeout=TIMEOUT, **kwargs)


def test_v2_spec_example(live_server: LiveServer) -> None:
    response = _post(live_server, "/v2/models/iris/infer", json=SPEC_REQUEST)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Model-Name"] == "iris"
    assert response.headers["X-Model-Version"] == "1"
    assert response.json() == SPEC_RESPONSE
    versioned = _post(live_server, "/v2/models/iris/versions/1/infer", json=SPEC_REQUEST)
    assert versioned.json() == SPEC_RESPONSE


def test_v2_health_and_metadata(live_server: LiveServer) -> None:
    assert _get(live_server, "/v2").json() == {
        "name": "flaskserve",
        "version": __version__,
        "extensions": ["model_repository", "binary_tensor_data"],
    }
    assert _get(live_server, "/v2/health/live").json() == {"live": True}
    assert _get(live_server, "/v2/health/ready").json() == {"ready": True}
    ready = _get(live_server, "/v2/models/iris/ready")
    assert ready.json() == {"name": "iris", "version": "1", "ready": True}
    metadata = _get(live_server, "/v2/models/iris").json()
    assert [tensor["name"] for tensor in metadata["inputs"]] == FEATURES
    assert metadata["versions"] == ["1"]
    assert [tensor["name"] for tensor in metadata["outputs"]] == [
        "predict",
        "predict_proba",
        "label",
    ]


MLFLOW_REQUESTS: dict[str, tuple[bytes | dict[str, Any], str]] = {
    # the local-server page's curl: --data '{"inputs": [[1, 2], [3, 4], [5, 6]]}'
    "inputs": ({"inputs": ROWS}, "application/json"),
    # `mlflow models serve --help`: {"dataframe_split": {"columns": [...], "index": [...],
    # "data": [...]}}
    "dataframe_split": (
        {"dataframe_split": {"columns": FEATURES, "index": [0, 1], "data": ROWS}},
        "application/json",
    ),
    # {"dataframe_records": [{"a": 1, "b": 2}, ...]}
    "dataframe_records": (
        {"dataframe_records": [dict(zip(FEATURES, row, strict=True)) for row in ROWS]},
        "application/json; charset=utf-8",
    ),
    # models.rst: {"inputs": {"a": [...], "b": [...], ...}}
    "inputs-columnar": (
        {"inputs": {name: [row[i] for row in ROWS] for i, name in enumerate(FEATURES)}},
        "application/json",
    ),
    # pandas_df.to_csv(index=False), as text/csv
    "csv": (
        b"sepal_length,sepal_width,petal_length,petal_width\n5.9,3.0,5.1,1.8\n5.0,3.5,1.4,0.2\n",
        "text/csv",
    ),
}


@pytest.mark.parametrize(("body", "content_type"), MLFLOW_REQUESTS.values(), ids=MLFLOW_REQUESTS)
def test_mlflow_documented_requests(
    live_server: LiveServer, body: bytes | dict[str, Any], content_type: str
) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = _post(live_server, "/invocations", data=data, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [2, 0]}
    assert response.headers["X-Model-Version"] == "1"


def test_mlflow_ping_health_version(live_server: LiveServer) -> None:
    assert _get(live_server, "/ping").status_code == 200
    assert _get(live_server, "/health").status_code == 200
    version = _get(live_server, "/version")
    assert (version.status_code, version.text) == (200, __version__)


def test_kserve_v1_and_explain_from_the_same_server(live_server: LiveServer) -> None:
    """A KServe V1 client's :predict and :explain, and /explain, over real HTTP."""
    row = [5.9, 3.0, 5.1, 1.8]
    assert _get(live_server, "/v1/models/iris").json() == {"name": "iris", "ready": True}
    predicted = _post(live_server, "/v1/models/iris:predict", json={"instances": [row]})
    assert predicted.status_code == 200 and predicted.json() == {"predictions": [2]}
    assert predicted.headers["X-Model-Name"] == "iris"
    explained = _post(live_server, "/v1/models/iris:explain", json={"instances": [row]}).json()
    assert explained["predictions"] == [2]
    (why,) = explained["explanations"]
    total = why["base_value"] + sum(why["contributions"].values())
    assert abs(total - why["output"]) <= 1e-6 and round(why["output"], 3) == 0.953
    direct = _post(live_server, "/explain", json=dict(zip(FEATURES, row, strict=True))).json()
    assert direct["explanations"] == explained["explanations"]
    assert direct["space"] == "probability"


def test_protocols_agree(live_server: LiveServer) -> None:
    """30 iris rows through all three protocols: the same classes and probabilities."""
    iris = load_iris()
    matrix = np.asarray(iris.data, dtype=np.float64)[::5]
    rows: list[list[float]] = matrix.tolist()
    assert len(rows) == 30
    n = len(rows)

    tutorial = _post(live_server, "/predict?proba=true", json=rows).json()
    v2_combined = _post(
        live_server,
        "/v2/models/iris/infer",
        json={
            "id": "agreement",
            "inputs": [{"name": "input-0", "shape": [n, 4], "datatype": "FP64", "data": rows}],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}, {"name": "label"}],
        },
    ).json()
    v2_per_feature = _post(
        live_server,
        "/v2/models/iris/infer",
        json={
            "inputs": [
                {"name": name, "shape": [n], "datatype": "FP64", "data": matrix[:, i].tolist()}
                for i, name in enumerate(FEATURES)
            ]
        },
    ).json()
    mlflow_split = _post(
        live_server,
        "/invocations",
        json={"dataframe_split": {"columns": FEATURES, "data": rows}},
    ).json()
    mlflow_records = _post(
        live_server,
        "/invocations",
        json={"dataframe_records": [dict(zip(FEATURES, row, strict=True)) for row in rows]},
    ).json()
    labels = _post(live_server, "/predict?labels=true", json=rows).json()["labels"]

    outputs = {output["name"]: output for output in v2_combined["outputs"]}
    predicted = tutorial["result"]
    assert len(predicted) == n
    assert set(predicted) == {0, 1, 2}, "the rows cover every class"
    assert outputs["predict"]["data"] == predicted
    assert v2_per_feature["outputs"][0]["data"] == predicted
    assert mlflow_split["predictions"] == predicted
    assert mlflow_records["predictions"] == predicted
    assert outputs["label"]["data"] == labels

    proba = outputs["predict_proba"]
    assert proba["shape"] == [n, 3]
    reshaped = np.asarray(proba["data"]).reshape(proba["shape"]).tolist()
    assert reshaped == tutorial["probabilities"]  # exact: same model, same float64 path
    assert np.argmax(reshaped, axis=1).tolist() == predicted


ERRORS: dict[str, tuple[str, str, bytes, dict[str, str], int, str]] = {
    "v2-unknown-model": (
        "POST",
        "/v2/models/nope/infer",
        json.dumps(SPEC_REQUEST).encode(),
        JSON,
        404,
        "no model named 'nope'",
    ),
    "v2-unknown-version": ("GET", "/v2/models/iris/versions/3", b"", {}, 404, "no version 3"),
    "v2-malformed-version": (
        "GET",
        "/v2/models/iris/versions/latest/ready",
        b"",
        {},
        400,
        "model version 'latest'",
    ),
    "v2-bad-request": ("POST", "/v2/models/iris/infer", b'{"inputs": []}', JSON, 400, "inputs"),
    "v2-invalid-json": ("POST", "/v2/models/iris/infer", b'{"inputs": [', JSON, 400, "JSON"),
    "v2-no-such-endpoint": ("GET", "/v2/nowhere", b"", {}, 404, "no such endpoint"),
    "v2-get-infer": ("GET", "/v2/models/iris/infer", b"", {}, 405, "use POST"),
    "mlflow-unknown-column": (
        "POST",
        "/invocations",
        b'{"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length",'
        b' "petal_width", "colour"], "data": [[5.9, 3.0, 5.1, 1.8, 1]]}}',
        JSON,
        400,
        "'colour'",
    ),
    "explain-missing-feature": (
        "POST",
        "/explain",
        b'{"sepal_length": 5.9}',
        JSON,
        400,
        "missing feature(s) 'sepal_width'",
    ),
    "v1-no-instances": (
        "POST",
        "/v1/models/iris:predict",
        b'{"rows": [[5.9, 3.0, 5.1, 1.8]]}',
        JSON,
        400,
        "'instances'",
    ),
    "v1-unknown-model": ("GET", "/v1/models/nope", b"", {}, 404, "'nope'"),
    "mlflow-no-content-type": (
        "POST",
        "/invocations",
        b'{"inputs": [[5.9, 3.0, 5.1, 1.8]]}',
        {},
        415,
        "application/json or text/csv",
    ),
    "mlflow-text-plain": (
        "POST",
        "/invocations",
        b"5.9,3.0,5.1,1.8\n",
        {"Content-Type": "text/plain"},
        415,
        "text/csv",
    ),
}


@on_both_servers()
@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "says"), ERRORS.values(), ids=ERRORS
)
def test_error_shapes(
    live_server: LiveServer,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    says: str,
) -> None:
    response = requests.request(
        method, live_server.url + path, data=body, headers=headers, timeout=TIMEOUT
    )
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body_json = response.json()
    assert list(body_json) == ["error"]
    assert says in body_json["error"]
    assert "Traceback" not in body_json["error"]
    assert _post(live_server, "/v2/models/iris/infer", json=SPEC_REQUEST).json() == SPEC_RESPONSE
