"""The Open Inference Protocol spec's example request and response, adapted to iris.

From kserve/open-inference-protocol ``inference_rest.md``, "Inference Request Examples":

    POST /v2/models/mymodel/infer
    {"id" : "42",
     "inputs" : [{"name" : "input0", "shape" : [ 2, 2 ], "datatype" : "UINT32",
                  "data" : [ 1, 2, 3, 4 ]}, {"name" : "input1", ...}],
     "outputs" : [{"name" : "output0"}]}

and its response
    {"id" : "42",
     "outputs" : [{"name" : "output0", "shape" : [ 3, 2 ], "datatype" : "FP32",
                   "data" : [ 1.0, 1.1, 2.0, 2.1, 3.0, 3.1 ]}]}
plus ``model_name`` and ``model_version`` from ``$inference_response``. Iris takes one
[n, 4] input of decimals (so FP32, flat row-major as in the spec) and names its class
output ``predict``.
"""

from __future__ import annotations

from typing import Any

ROWS = [[5.9, 3.0, 5.1, 1.8], [5.0, 3.5, 1.4, 0.2]]  # the tutorial's virginica (2), a setosa (0)
FLAT = [value for row in ROWS for value in row]

SPEC_REQUEST: dict[str, Any] = {
    "id": "42",
    "inputs": [{"name": "input0", "shape": [2, 4], "datatype": "FP32", "data": FLAT}],
    "outputs": [{"name": "predict"}],
}
SPEC_RESPONSE: dict[str, Any] = {
    "model_name": "iris",
    "model_version": "1",
    "id": "42",
    "outputs": [{"name": "predict", "shape": [2], "datatype": "INT64", "data": [2, 0]}],
}
