"""The Open Inference Protocol (KServe v2) REST bodies.

A request carries tensors: ``{"name", "shape", "datatype", "data"}``. Two
layouts are read: one input of shape ``[n, n_features]`` (any name; the
metadata advertises ``input-0``), or one input per feature, named like the
manifest's features, each of shape ``[n]`` or ``[n, 1]``. ``data`` is flat
row-major or nested exactly like ``shape``, or sent as raw bytes after the
JSON (:mod:`.v2_binary`).

The declared datatype is checked, not applied: every value must be valid for
it (an ``INT8`` 300 or an ``FP32`` 1e300 is refused), and the model then sees
the values as float64, unrounded. Like :mod:`.records`, nothing is coerced:
``true`` is not 1 for FP64. A model of numbers refuses ``BYTES``; a model with
text, boolean or missing cells (a ``frame`` model) takes one input per feature,
text as ``BYTES`` and ``null`` where the feature may be missing, each cell
checked against its feature (MLServer's pandas codec sends such requests).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..artifact import Feature, ModelManifest
from ..errors import InvalidInput
from ..runtime.base import Prediction
from ..schema import Table, describe, kind_of
from .dtypes import NUMERIC_DATATYPES, datatype_of
from .records import class_names_of
from .v2_binary import read_binary
from .v2_tensors import Tensor, quoted, shown, tensor_input

#: The outputs a request may ask for; the default is ``predict`` alone.
OUTPUT_NAMES = ("predict", "predict_proba", "label")
#: The name the metadata gives the single ``[n, n_features]`` input.
COMBINED_INPUT = "input-0"

_REQUEST_KEYS = ("id", "parameters", "inputs", "outputs")
_INPUT_KEYS = ("name", "shape", "datatype", "parameters", "data")
_INPUT_REQUIRED = ("name", "shape", "datatype", "data")
_BINARY_INPUT_REQUIRED = ("name", "shape", "datatype")  # its data follows the JSON
_OUTPUT_KEYS = ("name", "parameters")
_CLASSIFIER_OUTPUTS = ("predict_proba", "label")
_MAX_PARAMETER_NESTING = 16
#: the datatype the metadata advertises for each kind of feature
_KIND_DATATYPES = {"number": "FP64", "integer": "INT64", "boolean": "BOOL", "text": "BYTES"}


@dataclass(frozen=True)
class InferRequest:
    """A decoded inference request.

    ``rows`` is what the model takes: ``(n, n_features)`` float64 with columns in
    ``manifest.feature_names`` order, or a :class:`~flaskserve.schema.Table` for a
    ``frame`` model; ``outputs`` are the requested output names, in the order the
    response lists them; ``binary_outputs`` those to answer as raw bytes.
    """

    rows: np.ndarray | Table
    outputs: tuple[str, ...] = ("predict",)
    id: str | None = None
    parameters: dict[str, Any] | None = None
    binary_outputs: frozenset[str] = frozenset()


def decode_infer_request(
    payload: Any, manifest: ModelManifest, max_rows: int, *, binary: bytes = b""
) -> InferRequest:
    """Turn a parsed v2 inference request into rows for the model.

    :param payload: the parsed body: ``{"id"?, "parameters"?, "inputs", "outputs"?}``.
    :param manifest: the model's manifest: its features and task.
    :param max_rows: the batch limit.
    :param binary: the body's bytes after the JSON (:func:`.v2_binary.split_body`),
        which the inputs with ``binary_data_size`` share.
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
    text = manifest.input == "frame"
    tensors = read_binary(_decode_inputs(payload["inputs"], text), binary)
    all_binary = _flag(parameters or {}, "binary_data_output", "request") or False
    outputs, binary_outputs = _decode_outputs(payload, manifest, all_binary)
    rows = tensor_input(tensors, manifest, max_rows)
    return InferRequest(rows, outputs, request_id, parameters, binary_outputs)


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

    ``inputs`` lists one ``[-1]`` tensor per feature (FP64 for a number, BYTES
    for text, INT64, BOOL); ``parameters`` carries the task, the features'
    ranges (and for a ``frame`` model their dtypes, whether they may be
    missing, their categories) and for a model of numbers the single-input
    alternative.

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
    frame = manifest.input == "frame"
    parameters: dict[str, Any] = {
        "task": manifest.task,
        "features": [_feature_parameters(f, frame) for f in features],
    }
    if not frame:
        parameters["combined_input"] = {
            "name": COMBINED_INPUT,
            "datatype": "FP64",
            "shape": [-1, len(features)],
        }
    return {
        "name": name,
        "versions": list(versions),
        "platform": "sklearn",
        "inputs": [
            {"name": f.name, "datatype": _input_datatype(f, frame), "shape": [-1]} for f in features
        ],
        "outputs": outputs,
        "parameters": parameters,
    }


def _input_datatype(feature: Feature, frame: bool) -> str:
    return _KIND_DATATYPES[kind_of(feature)] if frame else "FP64"


def _feature_parameters(feature: Feature, frame: bool) -> dict[str, Any]:
    """What the metadata says of a feature: a model of numbers' reads as it always has."""
    described: dict[str, Any] = {"name": feature.name, "min": feature.min, "max": feature.max}
    if frame:
        described["dtype"] = feature.dtype
    if feature.nullable:
        described["nullable"] = True
    if frame and feature.categories is not None:
        described["categories"] = list(feature.categories)
    if frame and feature.unknown_categories is not None:
        described["unknown_categories"] = feature.unknown_categories
    return described


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


def _decode_inputs(value: Any, text: bool) -> list[Tensor]:
    if not isinstance(value, list) or not value:
        got = "an empty array" if value == [] else describe(value)
        raise InvalidInput(f"'inputs': expected a non-empty array of input tensors, got {got}")
    tensors = [_decode_input(item, index, text) for index, item in enumerate(value)]
    counts = Counter(t.name for t in tensors)
    duplicates = [name for name, count in counts.items() if count > 1]
    if duplicates:
        raise InvalidInput(f"inputs: duplicate input name(s) {quoted(duplicates)}")
    return tensors


def _decode_input(item: Any, index: int, text: bool) -> Tensor:
    where = f"inputs[{index}]"
    if not isinstance(item, dict):
        raise InvalidInput(f"{where}: expected an input tensor object, got {describe(item)}")
    name = item.get("name")
    if isinstance(name, str) and name:
        where = f"input {name!r}"
    parameters = item.get("parameters")
    in_binary = isinstance(parameters, dict) and "binary_data_size" in parameters
    required = _BINARY_INPUT_REQUIRED if in_binary else _INPUT_REQUIRED
    _check_keys(item, _INPUT_KEYS, required, where)
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{where}: 'name' must be a non-empty string, got {describe(name)}")
    shape = item["shape"]
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidInput(
            f"{where}: 'shape' must be an array of non-negative integers, got {shown(shape)}"
        )
    datatype = _check_datatype(item["datatype"], where, text)
    _optional_object(item, "parameters", where)
    if in_binary:
        return Tensor(name, tuple(shape), datatype, [], _binary_size(item, where))
    if not isinstance(item["data"], list):
        raise InvalidInput(f"{where}: 'data' must be an array, got {describe(item['data'])}")
    return Tensor(name, tuple(shape), datatype, item["data"])


def _binary_size(item: dict[str, Any], where: str) -> int:
    if "data" in item:
        raise InvalidInput(f"{where}: give 'data' or parameters.binary_data_size, not both")
    size = item["parameters"]["binary_data_size"]
    if type(size) is not int or size < 0:
        raise InvalidInput(
            f"{where}: parameters.binary_data_size must be a non-negative integer of bytes,"
            f" got {describe(size)}"
        )
    return size


def _check_datatype(datatype: Any, where: str, text: bool) -> str:
    if not isinstance(datatype, str):
        raise InvalidInput(f"{where}: 'datatype' must be a string, got {describe(datatype)}")
    if datatype == "BYTES":
        if text:  # each input is checked against its feature's kind
            return datatype
        raise InvalidInput(
            f"{where}: datatype BYTES is not supported for numeric features; use FP64"
        )
    if datatype not in NUMERIC_DATATYPES:
        expected = ", ".join([*NUMERIC_DATATYPES, "BYTES"] if text else NUMERIC_DATATYPES)
        raise InvalidInput(
            f"{where}: unknown datatype {datatype[:40]!r} (expected one of {expected})"
        )
    return datatype


def _flag(parameters: dict[str, Any], key: str, where: str) -> bool | None:
    """A boolean parameter, or ``None`` where it is not given."""
    value = parameters.get(key)
    if value is None or type(value) is bool:
        return value
    raise InvalidInput(f"{where}: parameters.{key} must be true or false, got {describe(value)}")


# --- request: outputs ---


def _decode_outputs(
    payload: dict[str, Any], manifest: ModelManifest, all_binary: bool
) -> tuple[tuple[str, ...], frozenset[str]]:
    """The outputs' names, in order, and those to send as raw bytes."""
    if "outputs" not in payload:
        return ("predict",), frozenset(("predict",) if all_binary else ())
    value = payload["outputs"]
    if not isinstance(value, list) or not value:
        got = "an empty array" if value == [] else describe(value)
        raise InvalidInput(
            f"'outputs': expected a non-empty array of {{\"name\": ...}} objects, got {got}"
            " (omit 'outputs' for predict alone)"
        )
    decoded = [_decode_output(item, index, manifest) for index, item in enumerate(value)]
    names = tuple(name for name, _ in decoded)
    duplicates = [name for name, count in Counter(names).items() if count > 1]
    if duplicates:
        raise InvalidInput(f"outputs: duplicate output(s) {quoted(duplicates)}")
    # an output's own binary_data wins over the request's binary_data_output
    in_binary = [name for name, own in decoded if (all_binary if own is None else own)]
    return names, frozenset(in_binary)


def _decode_output(item: Any, index: int, manifest: ModelManifest) -> tuple[str, bool | None]:
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
    parameters = _optional_object(item, "parameters", where) or {}
    return name, _flag(parameters, "binary_data", f"output {name!r}")


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
