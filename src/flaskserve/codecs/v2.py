"""The Open Inference Protocol (KServe v2) REST bodies.

A request carries tensors: ``{"name", "shape", "datatype", "data"}``. Two
layouts are read: one input of shape ``[n, n_features]`` (any name; the
metadata advertises ``input-0``), or one input per feature, named like the
manifest's features, each of shape ``[n]`` or ``[n, 1]``. ``data`` is flat
row-major or nested exactly like ``shape``.

The declared datatype is checked, not applied: every value must be valid for
it (an ``INT8`` 300 or an ``FP32`` 1e300 is refused), and the model then sees
the values as float64, unrounded. ``BYTES`` is refused, since every feature is
numeric. Like :mod:`.records`, nothing is coerced: ``true`` is not 1 for FP64.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..artifact import ModelManifest
from ..errors import InvalidInput
from ..runtime.base import Prediction
from .dtypes import NUMERIC_DATATYPES, datatype_of
from .records import class_names_of, describe
from .v2_tensors import Tensor, quoted, shown, tensor_rows

#: The outputs a request may ask for; the default is ``predict`` alone.
OUTPUT_NAMES = ("predict", "predict_proba", "label")
#: The name the metadata gives the single ``[n, n_features]`` input.
COMBINED_INPUT = "input-0"

_REQUEST_KEYS = ("id", "parameters", "inputs", "outputs")
_INPUT_KEYS = ("name", "shape", "datatype", "parameters", "data")
_INPUT_REQUIRED = ("name", "shape", "datatype", "data")
_OUTPUT_KEYS = ("name", "parameters")
_CLASSIFIER_OUTPUTS = ("predict_proba", "label")
_MAX_PARAMETER_NESTING = 16


@dataclass(frozen=True)
class InferRequest:
    """A decoded inference request.

    ``rows`` is ``(n, n_features)`` float64 with columns in
    ``manifest.feature_names`` order; ``outputs`` are the requested output
    names, in the order the response lists them.
    """

    rows: np.ndarray
    outputs: tuple[str, ...] = ("predict",)
    id: str | None = None
    parameters: dict[str, Any] | None = None


def decode_infer_request(payload: Any, manifest: ModelManifest, max_rows: int) -> InferRequest:
    """Turn a parsed v2 inference request into rows for the model.

    :param payload: the parsed body: ``{"id"?, "parameters"?, "inputs", "outputs"?}``.
    :param manifest: the model's manifest: its features and task.
    :param max_rows: the batch limit.
    :raises InvalidInput: any key, input, shape, datatype, value or output does
        not fit; the message names it and says what was expected.
    :raises PayloadTooLarge: more rows than *max_rows*.
    """
    if not isinstance(payload, dict):
        raise InvalidInput(f"expected a JSON object with 'inputs', got {describe(payload)}")
    _check_keys(payload, _REQUEST_KEYS, ("inputs",), "request")
    request_id = payload.get("id")
    if "id" in payload and not isinstance(request_id, str):
        raise InvalidInput(f"request: 'id' must be a string, got {describe(request_id)}")
    parameters = _optional_object(payload, "parameters", "request")
    tensors = _decode_inputs(payload["inputs"])
    outputs = _decode_outputs(payload, manifest)
    rows = tensor_rows(tensors, manifest.feature_names, max_rows)
    return InferRequest(rows=rows, outputs=outputs, id=request_id, parameters=parameters)


def encode_infer_response(
    prediction: Prediction,
    request: InferRequest,
    manifest: ModelManifest,
    *,
    model_name: str,
    model_version: str,
) -> dict[str, Any]:
    """Build the v2 response: one output tensor per requested output, in order.

    ``id`` and ``parameters`` are echoed only when the request had them.

    :param prediction: the runtime's answer; it must carry ``probabilities``
        when ``predict_proba`` was requested.
    :param request: the decoded request.
    :param manifest: the model's manifest, for class names.
    :raises ValueError: ``predict_proba`` was requested but *prediction* has no
        probabilities, an output name is unknown, or the predictions' dtype has
        no v2 datatype.
    :raises InvalidInput: ``label`` was requested from a regression model.
    """
    body: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        body["id"] = request.id
    if request.parameters is not None:
        body["parameters"] = request.parameters
    body["outputs"] = [_encode_output(name, prediction, manifest) for name in request.outputs]
    return body


def encode_model_metadata(
    manifest: ModelManifest, *, name: str, versions: Sequence[str]
) -> dict[str, Any]:
    """Describe the model's inputs and outputs as v2 model metadata.

    ``inputs`` lists one ``[-1]`` FP64 tensor per feature; ``parameters``
    carries the task, the features' ranges and the single-input alternative.

    :param name: the model name the server uses.
    :param versions: the versions served.
    :raises TypeError: *versions* is a string rather than a sequence of them.
    """
    if isinstance(versions, str):
        raise TypeError(f"versions: expected a sequence of strings, got the string {versions!r}")
    outputs: list[dict[str, Any]] = [
        {"name": "predict", "datatype": _predict_datatype(manifest), "shape": [-1]}
    ]
    if manifest.task == "classification":
        n_classes = len(manifest.labels)
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, n_classes]})
        outputs.append({"name": "label", "datatype": "BYTES", "shape": [-1]})
    features = manifest.features
    return {
        "name": name,
        "versions": list(versions),
        "platform": "sklearn",
        "inputs": [{"name": f.name, "datatype": "FP64", "shape": [-1]} for f in features],
        "outputs": outputs,
        "parameters": {
            "task": manifest.task,
            "features": [{"name": f.name, "min": f.min, "max": f.max} for f in features],
            "combined_input": {
                "name": COMBINED_INPUT,
                "datatype": "FP64",
                "shape": [-1, len(features)],
            },
        },
    }


# --- request: keys and headers ---


def _check_keys(
    value: dict[str, Any], allowed: Sequence[str], required: Sequence[str], where: str
) -> None:
    unknown = [k for k in value if k not in allowed]
    if unknown:
        raise InvalidInput(
            f"{where}: unknown key(s) {quoted(unknown)} (allowed: {', '.join(allowed)})"
        )
    missing = [k for k in required if k not in value]
    if missing:
        raise InvalidInput(f"{where}: missing key(s) {quoted(missing)}")


def _optional_object(value: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
    if key not in value:
        return None
    found = value[key]
    if not isinstance(found, dict):
        raise InvalidInput(f"{where}: {key!r} must be an object, got {describe(found)}")
    # echoed in the response, so it must be JSON we can write back from any stack depth
    if _nesting(found) > _MAX_PARAMETER_NESTING:
        raise InvalidInput(
            f"{where}: {key!r} is nested deeper than {_MAX_PARAMETER_NESTING} levels"
        )
    try:
        json.dumps(found, allow_nan=False)
    except ValueError:
        raise InvalidInput(f"{where}: {key!r} holds a non-finite number") from None
    return found


def _nesting(value: Any) -> int:
    """How deeply *value* nests, found without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest


def _decode_inputs(value: Any) -> list[Tensor]:
    if not isinstance(value, list) or not value:
        got = "an empty array" if value == [] else describe(value)
        raise InvalidInput(f"'inputs': expected a non-empty array of input tensors, got {got}")
    tensors = [_decode_input(item, index) for index, item in enumerate(value)]
    counts = Counter(t.name for t in tensors)
    duplicates = [name for name, count in counts.items() if count > 1]
    if duplicates:
        raise InvalidInput(f"inputs: duplicate input name(s) {quoted(duplicates)}")
    return tensors


def _decode_input(item: Any, index: int) -> Tensor:
    where = f"inputs[{index}]"
    if not isinstance(item, dict):
        raise InvalidInput(f"{where}: expected an input tensor object, got {describe(item)}")
    name = item.get("name")
    if isinstance(name, str) and name:
        where = f"input {name!r}"
    _check_keys(item, _INPUT_KEYS, _INPUT_REQUIRED, where)
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{where}: 'name' must be a non-empty string, got {describe(name)}")
    shape = item["shape"]
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidInput(
            f"{where}: 'shape' must be an array of non-negative integers, got {shown(shape)}"
        )
    datatype = _check_datatype(item["datatype"], where)
    if not isinstance(item["data"], list):
        raise InvalidInput(f"{where}: 'data' must be an array, got {describe(item['data'])}")
    _optional_object(item, "parameters", where)
    return Tensor(name, tuple(shape), datatype, item["data"])


def _check_datatype(datatype: Any, where: str) -> str:
    if not isinstance(datatype, str):
        raise InvalidInput(f"{where}: 'datatype' must be a string, got {describe(datatype)}")
    if datatype == "BYTES":
        raise InvalidInput(
            f"{where}: datatype BYTES is not supported for numeric features; use FP64"
        )
    if datatype not in NUMERIC_DATATYPES:
        raise InvalidInput(
            f"{where}: unknown datatype {datatype[:40]!r}"
            f" (expected one of {', '.join(NUMERIC_DATATYPES)})"
        )
    return datatype


# --- request: outputs ---


def _decode_outputs(payload: dict[str, Any], manifest: ModelManifest) -> tuple[str, ...]:
    if "outputs" not in payload:
        return ("predict",)
    value = payload["outputs"]
    if not isinstance(value, list) or not value:
        got = "an empty array" if value == [] else describe(value)
        raise InvalidInput(
            f"'outputs': expected a non-empty array of {{\"name\": ...}} objects, got {got}"
            " (omit 'outputs' for predict alone)"
        )
    names = tuple(_decode_output(item, index, manifest) for index, item in enumerate(value))
    duplicates = [name for name, count in Counter(names).items() if count > 1]
    if duplicates:
        raise InvalidInput(f"outputs: duplicate output(s) {quoted(duplicates)}")
    return names


def _decode_output(item: Any, index: int, manifest: ModelManifest) -> str:
    where = f"outputs[{index}]"
    if not isinstance(item, dict):
        raise InvalidInput(
            f'{where}: expected an object like {{"name": ...}}, got {describe(item)}'
        )
    _check_keys(item, _OUTPUT_KEYS, ("name",), where)
    name = item["name"]
    if not isinstance(name, str):
        raise InvalidInput(f"{where}: 'name' must be a string, got {describe(name)}")
    if name not in OUTPUT_NAMES:
        raise InvalidInput(f"{where}: unknown output {name!r} (allowed: {', '.join(OUTPUT_NAMES)})")
    if name in _CLASSIFIER_OUTPUTS and manifest.task != "classification":
        raise InvalidInput(
            f"output {name!r} is only for classifiers;"
            f" model {manifest.name!r} is a regression model"
        )
    _optional_object(item, "parameters", where)
    return name


# --- response ---


def _encode_output(name: str, prediction: Prediction, manifest: ModelManifest) -> dict[str, Any]:
    if name == "predict":
        return _tensor(name, np.asarray(prediction.predictions))
    if name == "predict_proba":
        if prediction.probabilities is None:
            raise ValueError("output 'predict_proba' was requested but the prediction has none")
        return _tensor(name, np.asarray(prediction.probabilities, dtype=np.float64))
    if name == "label":
        labels = class_names_of(np.asarray(prediction.predictions).tolist(), manifest)
        return {"name": name, "shape": [len(labels)], "datatype": "BYTES", "data": labels}
    raise ValueError(f"unknown output {name!r} (allowed: {', '.join(OUTPUT_NAMES)})")


def _tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    datatype = datatype_of(array.dtype)
    data = array.ravel().tolist()
    if datatype == "BYTES":
        data = [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in data]
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}


def _predict_datatype(manifest: ModelManifest) -> str:
    if manifest.task != "classification":
        return "FP64"
    return datatype_of(np.asarray(manifest.labels).dtype)
