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

from flaskserve.artifact import Feature, ModelManifest

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

#: the iris model's manifest, as the codec tests make it (no model fitted)
IRIS = ModelManifest(
    name="iris",
    version=1,
    task="classification",
    estimator="x",
    features=tuple(
        Feature(n, "float64", 0.1, 7.9)
        for n in ("sepal_length", "sepal_width", "petal_length", "petal_width")
    ),
    sha256="0" * 64,
    created="now",
    labels=(0, 1, 2),
    class_names=("setosa", "versicolor", "virginica"),
)
#: a typed (``frame``) model: integer, text (one refusing unknown categories), number, boolean
_FEATURES = (
    Feature("age", "int64", 17.0, 90.0),
    Feature("city", "str", categories=("Lyon", "Paris"), unknown_categories="refused"),
    Feature("street", "str", nullable=True, unknown_categories="ignored"),
    Feature("income", "float64", 0.0, 1e6, nullable=True),
    Feature("member", "bool"),
)
FRAME = ModelManifest(
    name="people",
    version=1,
    task="classification",
    estimator="Pipeline",
    features=_FEATURES,
    sha256="0" * 64,
    created="now",
    labels=("no", "yes"),
    class_names=("no", "yes"),
    input="frame",
)
#: a model of numbers whose second feature may be missing: a matrix, but decoded cell by cell
NULLABLE_MATRIX = ModelManifest(
    name="gaps",
    version=1,
    task="regression",
    estimator="HistGradientBoostingRegressor",
    features=(Feature("a", "float64", 0.0, 1.0), Feature("b", "float64", 0.0, 1.0, nullable=True)),
    sha256="0" * 64,
    created="now",
)
