"""v2 inference on a model with text, category and missing cells, in JSON and in binary.

The census pipeline (tests/census.py) answers through ``/v2/models/census/infer``
exactly as it answers in scikit-learn; a stricter pipeline (no imputer, unknown
categories refused) shows the refusals.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient

from assertions import assert_error, json_body
from census import FEATURES, V2_DATATYPES
from flaskserve import save_model
from flaskserve.app import create_app
from flaskserve.settings import Settings
from v2_examples import ROWS

INFER = "/v2/models/census/infer"
BINARY_HEADER = "Inference-Header-Content-Length"


def _cells(column: Any) -> list[Any]:
    return [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in column]


def _inputs(frame: Any, shape: list[int] | None = None) -> list[dict[str, Any]]:
    """One input per column, as MLServer's pandas codec sends a DataFrame."""
    return [
        {
            "name": name,
            "shape": shape or [len(frame)],
            "datatype": datatype,
            "data": _cells(frame[name]),
        }
        for name, datatype in V2_DATATYPES.items()
    ]


def _outputs(body: dict[str, Any]) -> dict[str, Any]:
    return {output["name"]: output for output in body["outputs"]}


def test_answers_equal_the_pipelines_own(
    census_app: Flask, census_pipeline: Any, census: Any
) -> None:
    frame = census[0].iloc[:60]  # with missing text and numbers
    payload = {
        "parameters": {"content_type": "pd"},
        "inputs": _inputs(frame),
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}, {"name": "label"}],
    }
    response = census_app.test_client().post(INFER, json=payload)
    outputs = _outputs(json_body(response))
    assert response.status_code == 200
    assert outputs["predict"]["datatype"] == "BYTES"
    assert outputs["predict"]["data"] == census_pipeline.predict(frame).tolist()
    assert outputs["label"]["data"] == outputs["predict"]["data"]
    assert outputs["predict_proba"]["shape"] == [60, 2]
    np.testing.assert_allclose(
        np.reshape(outputs["predict_proba"]["data"], (60, 2)),
        census_pipeline.predict_proba(frame),
        rtol=0,
        atol=1e-9,
    )


def test_column_shaped_inputs(census_app: Flask, census_pipeline: Any, census: Any) -> None:
    frame = census[0].iloc[60:63]
    response = census_app.test_client().post(INFER, json={"inputs": _inputs(frame, [3, 1])})
    assert (
        _outputs(json_body(response))["predict"]["data"] == census_pipeline.predict(frame).tolist()
    )


def test_metadata_lists_one_input_per_feature(census_app: Flask) -> None:
    body = json_body(census_app.test_client().get("/v2/models/census"))
    assert body["inputs"] == [
        {"name": n, "datatype": t, "shape": [-1]} for n, t in V2_DATATYPES.items()
    ]
    features = {f["name"]: f for f in body["parameters"]["features"]}
    assert list(features) == list(FEATURES)
    assert features["workclass"]["nullable"] is True
    assert "Private" in features["workclass"]["categories"]
    assert "combined_input" not in body["parameters"]


def _changed(frame: Any, input_name: str, **changes: Any) -> dict[str, Any]:
    inputs = _inputs(frame)
    for tensor in inputs:
        if tensor["name"] == input_name:
            tensor.update(changes)
    return {"inputs": inputs}


BAD: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "bytes-for-a-number": (
        "capital_gain",
        {"datatype": "BYTES", "data": ["1", "2"]},
        ("input 'capital_gain': datatype BYTES does not fit", "expected FP64"),
    ),
    "fp64-for-text": (
        "sex",
        {"datatype": "FP64", "data": [1.0, 0.0]},
        ("input 'sex': datatype FP64 does not fit feature 'sex'", "expected BYTES"),
    ),
    "number-in-text": ("education", {"data": ["Masters", 3]}, ("row 1: feature 'education'",)),
    "unknown-input": ("age", {"name": "AGE"}, ("missing feature input(s) 'age'", "'AGE'")),
    "wrong-shape": ("sex", {"shape": [1, 2]}, ("input 'sex': expected shape [-1] or [-1, 1]",)),
    "lengths-differ": (
        "capital_gain",
        {"shape": [1], "data": [0.0]},
        ("input 'capital_gain': expected 2 rows like input 'age'",),
    ),
}


@pytest.mark.parametrize(("name", "changes", "says"), BAD.values(), ids=BAD)
def test_bad_inputs_are_400(
    census_app: Flask, census: Any, name: str, changes: dict[str, Any], says: tuple[str, ...]
) -> None:
    client = census_app.test_client()
    response = client.post(INFER, json=_changed(census[0].iloc[:2], name, **changes))
    assert_error(response, 400, *says)


@pytest.fixture(scope="module")
def strict_client(tmp_path_factory: pytest.TempPathFactory, census: Any) -> FlaskClient:
    """A pipeline with no imputer that refuses unknown categories: nothing may be missing."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, target = census
    complete = frame.notna().all(axis=1).to_numpy()
    columns = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="error"), ["workclass", "education", "sex"]),
            ("numbers", StandardScaler(), ["age", "hours_per_week", "capital_gain"]),
        ]
    )
    pipeline = make_pipeline(columns, LogisticRegression(max_iter=500))
    pipeline.fit(frame[complete], target[complete])
    out = tmp_path_factory.mktemp("models") / "strict"
    save_model(pipeline, out, sample=frame[complete])
    return create_app(Settings(model_dir=out)).test_client()


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("hours_per_week", [40.0, None], "row 1: feature 'hours_per_week': may not be missing"),
        ("workclass", [None, "Private"], "row 0: feature 'workclass': may not be missing"),
        (
            "sex",
            ["Male", "Other"],
            "row 1: feature 'sex': string 'Other' is not a category the model knows"
            " (one of 'Female', 'Male')",
        ),
    ],
    ids=["null-number", "null-text", "unknown-category"],
)
def test_strict_model_refuses(
    strict_client: FlaskClient, census: Any, name: str, data: list[Any], says: str
) -> None:
    frame = census[0].dropna().iloc[:2]
    url = "/v2/models/strict/infer"
    assert strict_client.post(url, json={"inputs": _inputs(frame)}).status_code == 200
    response = strict_client.post(url, json=_changed(frame, name, data=data))
    assert_error(response, 400, says)


# --- the binary tensor data extension, over HTTP ---


def _binary_body(frame: Any, **request: Any) -> tuple[bytes, dict[str, str]]:
    """The body tritonclient sends: JSON, then each tensor's raw bytes; no Content-Type."""
    inputs, tensors = [], []
    for name, datatype in V2_DATATYPES.items():
        if datatype == "BYTES":
            raw = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in frame[name])
        else:
            raw = frame[name].to_numpy(dtype="<i8" if datatype == "INT64" else "<f8").tobytes()
        tensor = {"name": name, "shape": [len(frame)], "datatype": datatype}
        inputs.append({**tensor, "parameters": {"binary_data_size": len(raw)}})
        tensors.append(raw)
    header = json.dumps({"inputs": inputs, **request}).encode()
    return header + b"".join(tensors), {BINARY_HEADER: str(len(header))}


def test_binary_request_and_response(census_app: Flask, census_pipeline: Any, census: Any) -> None:
    frame = census[0].iloc[:40].copy()
    frame["workclass"] = frame["workclass"].fillna("Private")  # binary text has no null
    outputs = [{"name": "predict_proba", "parameters": {"binary_data": True}}, {"name": "label"}]
    body, headers = _binary_body(frame, outputs=outputs)
    response = census_app.test_client().post(INFER, data=body, headers=headers)
    assert response.status_code == 200, response.data[:300]
    assert response.content_type == "application/octet-stream"
    length = int(response.headers[BINARY_HEADER])
    header = json.loads(response.data[:length])
    proba, label = header["outputs"]
    assert proba["parameters"] == {"binary_data_size": 40 * 2 * 8} and "data" not in proba
    assert label["data"] == census_pipeline.predict(frame).tolist()
    np.testing.assert_allclose(
        np.frombuffer(response.data[length:], "<f8").reshape(40, 2),
        census_pipeline.predict_proba(frame),
        rtol=0,
        atol=1e-9,
    )


def test_binary_request_with_a_json_answer(
    census_app: Flask, census_pipeline: Any, census: Any
) -> None:
    frame = census[0].dropna().iloc[:3]
    body, headers = _binary_body(frame)
    response = census_app.test_client().post(INFER, data=body, headers=headers)
    assert response.content_type == "application/json"
    assert BINARY_HEADER not in response.headers
    assert (
        _outputs(json_body(response))["predict"]["data"] == census_pipeline.predict(frame).tolist()
    )


def test_binary_iris_request_answers_in_binary(client: FlaskClient) -> None:
    raw = np.array(ROWS, dtype="<f8").tobytes()
    tensor = {"name": "input-0", "shape": [2, 4], "datatype": "FP64"}
    request = {
        "inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
        "parameters": {"binary_data_output": True},
    }
    header = json.dumps(request).encode()
    response = client.post(
        "/v2/models/iris/infer", data=header + raw, headers={BINARY_HEADER: str(len(header))}
    )
    assert response.status_code == 200, response.data[:300]
    length = int(response.headers[BINARY_HEADER])
    assert json.loads(response.data[:length])["outputs"] == [
        {
            "name": "predict",
            "shape": [2],
            "datatype": "INT64",
            "parameters": {"binary_data_size": 16},
        }
    ]
    assert np.frombuffer(response.data[length:], "<i8").tolist() == [2, 0]


@pytest.mark.parametrize(
    ("header", "tail", "says"),
    [
        ("-5", b"", "Inference-Header-Content-Length: expected a number of bytes, got '-5'"),
        ("100000", b"", "Inference-Header-Content-Length: 100000 is past the end"),
        (None, b"", "binary_data_size 16 is past the end of the body: 0 byte(s)"),
        (None, b"\x00" * 24, "the body has 24 byte(s) of binary data after the JSON header"),
        (None, b"\x00" * 12, "binary_data_size 16 is past the end of the body: 12 byte(s)"),
    ],
    ids=["negative-header", "header-past-the-end", "no-tensor", "sizes-too-small", "cut-short"],
)
def test_bad_binary_requests_are_400(
    client: FlaskClient, header: str | None, tail: bytes, says: str
) -> None:
    tensor = {"name": "input-0", "shape": [1, 4], "datatype": "FP32"}
    request = {"inputs": [{**tensor, "parameters": {"binary_data_size": 16}}]}
    json_header = json.dumps(request).encode()
    headers = {BINARY_HEADER: header or str(len(json_header))}
    response = client.post("/v2/models/iris/infer", data=json_header + tail, headers=headers)
    assert_error(response, 400, says)


def test_the_body_limit_still_applies(model_dir: Path) -> None:
    client = create_app(Settings(model_dir=model_dir, max_body_bytes=1000)).test_client()
    raw = np.zeros((40, 4), dtype="<f8").tobytes()
    tensor = {"name": "input-0", "shape": [40, 4], "datatype": "FP64"}
    header = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": 1280}}]})
    response = client.post(
        "/v2/models/iris/infer",
        data=header.encode() + raw,
        headers={BINARY_HEADER: str(len(header))},
    )
    assert_error(response, 413, "limit of 1000 bytes")
