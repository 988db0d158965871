"""NVIDIA's own client, ``tritonclient.http``, against ``flaskserve serve``, with its defaults.

Its defaults send every tensor in binary (Triton's binary tensor data extension) and
ask for binary outputs; BYTES inputs come from object arrays. One server serves both
the census pipeline (text, integers, missing numbers) and iris (numbers).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FLASKSERVE, ServerStarter

from census import V2_DATATYPES
from components import require_module

http = require_module("tritonclient.http", "pip install 'tritonclient[http]'")
pytestmark = pytest.mark.integration


@pytest.fixture()
def triton(start: ServerStarter, model_dir: Path, census_dir: Path, tmp_path: Path) -> Any:
    root = tmp_path / "models"
    shutil.copytree(model_dir, root / "iris" / "1")
    shutil.copytree(census_dir, root / "census" / "1")
    # scikit-learn answers: this checks the wire to 1e-9, not a compiled model's float32
    args = [FLASKSERVE, "serve", str(root), "--port", "{port}", "--workers", "1"]
    server = start([*args, "--runtime", "sklearn"])
    client = http.InferenceServerClient(server.url.removeprefix("http://"))
    yield client
    client.close()


def _census_inputs(frame: Any) -> list[Any]:
    inputs = []
    for name, datatype in V2_DATATYPES.items():
        column = frame[name].to_numpy(dtype=object if datatype == "BYTES" else None)
        tensor = http.InferInput(name, [len(frame)], datatype)
        tensor.set_data_from_numpy(column)  # binary_data=True, the default
        inputs.append(tensor)
    return inputs


def test_tritonclient_with_its_defaults(triton: Any, census_pipeline: Any, census: Any) -> None:
    # binary text has no null: rows with a missing number (NaN) but no missing text
    frame = census[0][census[0]["workclass"].notna()].iloc[:50]
    assert frame["hours_per_week"].isna().any()
    assert triton.is_server_ready()
    metadata = triton.get_model_metadata("census")
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == V2_DATATYPES

    result = triton.infer("census", _census_inputs(frame))  # no outputs: binary_data_output
    labels = result.as_numpy("predict")
    assert [v.decode() for v in labels] == census_pipeline.predict(frame).tolist()

    outputs = [http.InferRequestedOutput("predict_proba"), http.InferRequestedOutput("label")]
    result = triton.infer("census", _census_inputs(frame), outputs=outputs)
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), census_pipeline.predict_proba(frame), rtol=0, atol=1e-9
    )
    assert [v.decode() for v in result.as_numpy("label")] == labels.astype(str).tolist()

    iris = np.array([[5.9, 3.0, 5.1, 1.8], [5.0, 3.5, 1.4, 0.2]])
    tensor = http.InferInput("input-0", list(iris.shape), "FP64")
    tensor.set_data_from_numpy(iris)
    answer = triton.infer("iris", [tensor], outputs=[http.InferRequestedOutput("predict")])
    assert answer.as_numpy("predict").tolist() == [2, 0]

    # a 400 reaches the client as its own exception, with the message
    wrong = http.InferInput("age", [len(frame)], "BYTES")
    wrong.set_data_from_numpy(frame["age"].astype(str).to_numpy(dtype=object))
    with pytest.raises(http.InferenceServerException, match="datatype BYTES does not fit"):
        triton.infer("census", [wrong, *_census_inputs(frame)[1:]])
