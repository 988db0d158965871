"""Hypothesis properties of the request decoders (reliability plan R1), no server.

Whatever a client sends, every decoder answers with a finite float64 matrix of
shape ``(n, 4)`` with ``1 <= n <= max_rows`` for the iris model, or raises the
project's own :class:`InvalidInput` (400) or :class:`PayloadTooLarge` (413)
with a message. Any other exception would reach Flask as a 500.

Each property runs 2,000 derandomized examples, so a run is reproducible.
Inputs come three ways: arbitrary values (bytes, JSON trees with NaN, infinities,
huge ints, wrong types), nearly valid requests with a few random mutations, and
valid matrices that must come back bit for bit.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flaskserve.artifact import Feature, ModelManifest
from flaskserve.codecs.dtypes import FLOAT_LIMITS, INT_RANGES, NUMERIC_DATATYPES
from flaskserve.codecs.jsonbody import parse_json
from flaskserve.codecs.mlflow import FORMATS, decode_csv, decode_json
from flaskserve.codecs.records import decode_rows
from flaskserve.codecs.v2 import OUTPUT_NAMES, decode_infer_request
from flaskserve.errors import InvalidInput, PayloadTooLarge

NAMES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
IRIS = ModelManifest(
    name="iris",
    version=1,
    task="classification",
    estimator="x",
    features=tuple(Feature(n, "float64", 0.1, 7.9) for n in NAMES),
    sha256="0" * 64,
    created="now",
    labels=(0, 1, 2),
    class_names=("setosa", "versicolor", "virginica"),
)
MAX_ROWS = 8  # small, so that PayloadTooLarge is reached as often as success

# Coverage's tracer on Hypothesis' own code doubled these tests' time; the decoders'
# lines are measured by their example tests.
pytestmark = pytest.mark.no_cover

PROPERTY = settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    database=None,  # derandomized: nothing to replay, and no .hypothesis/ left in the tree
    # the recursive JSON strategies are large on purpose; their size is the point
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- the property ---


def _check(decode: Callable[[], np.ndarray]) -> np.ndarray | None:
    """Run *decode*: a finite (n, 4) float64 matrix, or the project's 400/413 with a message."""
    try:
        rows = decode()
    except (InvalidInput, PayloadTooLarge) as error:
        assert isinstance(error.message, str)
        assert error.message.strip()
        _event(type(error).__name__)
        return None
    assert isinstance(rows, np.ndarray)
    assert rows.dtype == np.float64
    assert rows.ndim == 2
    assert rows.shape[1] == len(NAMES)
    assert 1 <= rows.shape[0] <= MAX_ROWS
    assert np.isfinite(rows).all()
    _event("decoded")
    return rows


def _event(name: str) -> None:
    """Count outcomes: ``pytest --hypothesis-show-statistics`` shows the mix."""
    if currently_in_test_context():
        event(name)


def _v2_rows(payload: Any) -> np.ndarray:
    rows = decode_infer_request(payload, IRIS, MAX_ROWS).rows
    assert isinstance(rows, np.ndarray)  # a model of numbers takes a matrix
    return rows


def _check_every_json_decoder(payload: Any) -> None:
    """The property for each decoder that takes a parsed JSON body."""
    _check(lambda: decode_rows(payload, NAMES, MAX_ROWS))
    _check(partial(_v2_rows, payload))
    _check(lambda: decode_json(payload, NAMES, MAX_ROWS))


def _check_parsed(body: bytes) -> None:
    """parse_json gives a JSON value or InvalidInput; a value then goes through every decoder."""
    try:
        payload = parse_json(body)
    except InvalidInput as error:
        assert error.message.strip()
        return
    assert _is_json_value(payload)
    _check_every_json_decoder(payload)


def _is_json_value(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            if math.isnan(item):  # NaN is refused; 1e999 may parse as inf, the decoders refuse it
                return False
        elif item is not None and not isinstance(item, (bool, int, str)):
            return False
    return True


# --- strategies: arbitrary JSON values ---

# The largest ints json.loads reads have 4,300 digits; past float64 range from 10**309.
HUGE_INTS = st.sampled_from(
    [2**53 + 1, 2**63, -(2**63) - 1, 2**64, 10**308, 10**309, -(10**309), 10**4299]
)
INTS = st.integers() | st.integers(min_value=-(10**400), max_value=10**400) | HUGE_INTS
FLOATS = st.floats() | st.sampled_from(
    [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]
)
STRINGS = st.text(max_size=12) | st.sampled_from(["", "nan", "1.5", "Infinity", "true", *NAMES])
SCALARS = st.none() | st.booleans() | INTS | FLOATS | STRINGS
FEATURE_KEYS = st.sampled_from(NAMES) | st.text(max_size=8)


def _json(keys: st.SearchStrategy[str], max_leaves: int = 12) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda kids: st.lists(kids, max_size=6) | st.dictionaries(keys, kids, max_size=6),
        max_leaves=max_leaves,
    )


JSON_ROWS = _json(FEATURE_KEYS)
V2_KEYS = st.sampled_from(
    ["id", "parameters", "inputs", "outputs", "name", "shape", "datatype", "data", *NAMES]
)
JSON_V2 = _json(V2_KEYS | FEATURE_KEYS)
MLFLOW_KEYS = st.sampled_from([*FORMATS, "params", "columns", "data", "index", *NAMES])
JSON_MLFLOW = _json(MLFLOW_KEYS | FEATURE_KEYS)
SMALL_JSON = _json(FEATURE_KEYS, max_leaves=4)

GOOD_CELLS = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**6), 10**6)
ROW_COUNTS = st.integers(0, MAX_ROWS + 2)
# Most nearly valid requests get no mutation, or no bad cell, so that some decode.
MUTATIONS = st.sampled_from([0, 0, 0, 1, 1, 2, 3])


def _cells(
    draw: st.DrawFn,
    good: st.SearchStrategy[Any] = GOOD_CELLS,
    bad: st.SearchStrategy[Any] = SCALARS,
) -> st.SearchStrategy[Any]:
    """Good cells only for half the requests; one bad cell in eight for the rest."""
    if draw(st.booleans()):
        return good
    return st.one_of(*[good] * 7, bad)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[Any]) -> Any:
    """A draw of *base* with up to three nodes replaced, deleted or given a sibling."""
    value = copy.deepcopy(draw(base))
    for _ in range(draw(MUTATIONS)):
        path = draw(st.sampled_from(_paths(value)))
        replacement = draw(SMALL_JSON)
        if not path:
            value = replacement
            continue
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = replacement
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(V2_KEYS | MLFLOW_KEYS | FEATURE_KEYS)] = replacement
        else:
            parent.insert(path[-1], replacement)
    return value


# --- strategies: nearly valid requests ---


@st.composite
def _rows(draw: st.DrawFn) -> list[Any] | dict[str, Any]:
    """0 to max_rows + 2 rows, all objects of features or all arrays of 4; or one object."""
    n = draw(ROW_COUNTS)
    cells = _cells(draw)
    if n == 0 and draw(st.booleans()):
        return {name: draw(cells) for name in NAMES}
    if draw(st.booleans()):
        return [{name: draw(cells) for name in NAMES} for _ in range(n)]
    return [[draw(cells) for _ in NAMES] for _ in range(n)]


def _cells_for(datatype: str) -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    """Values valid for *datatype*, and values just outside it (or of another type)."""
    if datatype in INT_RANGES:
        low, high = INT_RANGES[datatype]
        good = st.integers(low, high) | st.sampled_from([low, high])
        return good, st.sampled_from([low - 1, high + 1, 1.0]) | SCALARS
    if datatype == "BOOL":
        return st.booleans(), st.sampled_from([0, 1, "true"]) | SCALARS
    limit = FLOAT_LIMITS.get(datatype, math.inf)
    if math.isinf(limit):
        return GOOD_CELLS, SCALARS
    good = st.floats(-limit, limit) | st.integers(-int(limit), int(limit))
    return good, st.sampled_from([limit * 1.001, -limit * 1.001, int(limit) + 1]) | SCALARS


@st.composite
def _v2_requests(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(ROW_COUNTS)
    datatype = draw(st.sampled_from([*NUMERIC_DATATYPES, "BYTES", "FP128", "fp64", ""]))
    cells = _cells(draw, *_cells_for(datatype))
    if draw(st.booleans()):  # one [n, 4] input, flat or nested
        data: list[Any] = [[draw(cells) for _ in NAMES] for _ in range(n)]
        if draw(st.booleans()):
            data = [value for row in data for value in row]
        name = draw(st.sampled_from(["input-0", "x", *NAMES]))
        inputs = [{"name": name, "shape": [n, len(NAMES)], "datatype": datatype, "data": data}]
    else:  # one [n] or [n, 1] input per feature, in any order
        column = draw(st.booleans())
        inputs = []
        for name in draw(st.permutations(NAMES)):
            values = [draw(cells) for _ in range(n)]
            tensor = {"name": name, "datatype": datatype, "shape": [n, 1] if column else [n]}
            tensor["data"] = [[v] for v in values] if column and draw(st.booleans()) else values
            inputs.append(tensor)
    request: dict[str, Any] = {"inputs": inputs}
    if draw(st.booleans()):
        outputs = st.sampled_from([*OUTPUT_NAMES, "x"]).map(lambda name: {"name": name})
        request["outputs"] = draw(st.lists(outputs, max_size=3))
    if draw(st.booleans()):
        request["id"] = draw(st.text(max_size=5))
    if draw(st.booleans()):
        request["parameters"] = draw(st.dictionaries(st.text(max_size=5), SCALARS, max_size=2))
    return request


@st.composite
def _mlflow_requests(draw: st.DrawFn) -> dict[str, Any]:
    fmt = draw(st.sampled_from(FORMATS))
    drawn = draw(_rows())
    rows = drawn if isinstance(drawn, list) else [drawn]
    arrays_of = [[row[name] for name in NAMES] if isinstance(row, dict) else row for row in rows]
    if fmt == "dataframe_split":
        order = draw(st.permutations(NAMES))
        data = [[row[NAMES.index(name)] for name in order] for row in arrays_of]
        split: dict[str, Any] = {"columns": list(order), "data": data}
        if draw(st.booleans()):
            split["index"] = list(range(len(data)))
        body: dict[str, Any] = {fmt: split}
    elif fmt == "dataframe_records":
        body = {fmt: [dict(zip(NAMES, row, strict=True)) for row in arrays_of]}
    elif draw(st.booleans()):  # TF Serving's columnar form
        body = {fmt: {name: [row[i] for row in arrays_of] for i, name in enumerate(NAMES)}}
    else:
        body = {fmt: rows}
    if draw(st.booleans()):
        body["params"] = draw(st.just({}) | st.dictionaries(st.text(max_size=4), SCALARS))
    return body


GOOD_CSV_CELLS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers().map(str),
    st.sampled_from(
        ["-0", "+1.5", ".5", "5.", "1E-3", " 2.5 ", "5e-324", "1.7976931348623157e308"]
    ),
)
BAD_CSV_CELLS = st.one_of(
    st.sampled_from(
        [
            "1e999",
            "-1e400",
            "nan",
            "-inf",
            "Infinity",
            "",
            " ",
            "1_000",
            "0x10",
            "1,5",
            '"1"',
            '"1,2"',
            '""',
            '"',
            "True",
            "null",
            "\x00",
            "\u0661\u0662",  # Arabic-Indic digits
        ]
    ),
    st.text(max_size=6),
)
CSV_HEADER_NAMES = st.sampled_from([*NAMES, " sepal_length ", "x", '"petal_width"', ""])


@st.composite
def _csv_bodies(draw: st.DrawFn) -> bytes:
    header = list(draw(st.permutations(NAMES)))
    if draw(st.integers(0, 3)) == 0:  # a header with a missing, extra, repeated or odd name
        header = draw(st.lists(CSV_HEADER_NAMES, max_size=6))
    widths = st.one_of(*[st.just(len(header))] * 7, st.integers(0, 6))
    cells = _cells(draw, GOOD_CSV_CELLS, BAD_CSV_CELLS)
    lines = [header]
    for _ in range(draw(ROW_COUNTS)):
        lines.append([draw(cells) for _ in range(draw(widths))])
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(",".join(line) for line in lines)
    if draw(st.booleans()):
        text += newline
    if draw(st.booleans()):
        text = newline + text + newline * 2  # blank lines are skipped
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16"]))
    return text.encode(encoding, errors="replace")


# --- strategies: JSON text, including what json.dumps never writes ---

_JSON_ATOMS = st.one_of(
    st.sampled_from(
        [
            "null",
            "true",
            "false",
            "NaN",
            "Infinity",
            "-Infinity",
            "-0",
            "0.0",
            "1e999",
            "-1e999",
            "5e-324",
            "1" * 4300,
            "1" * 4301,
            "01",
            "+1",
            ".5",
            "1.",
            "'x'",
            '"\\ud800"',
            '"\\u0000"',
            '"\\x"',
            "[",
            "}",
            "",
            "nul",
        ]
    ),
    st.integers().map(str),
    st.floats().map(lambda x: json.dumps(x)),
    st.text(max_size=8).map(json.dumps),
    st.sampled_from(NAMES).map(json.dumps),
)
_JSON_KEYS = st.one_of(
    st.sampled_from([*NAMES, *FORMATS, "inputs", "shape", "data", "name", "datatype"]).map(
        json.dumps
    ),
    st.text(max_size=5).map(json.dumps),
    st.just("1"),
)


def _json_text_containers(kids: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    arrays_ = st.lists(kids, max_size=5).map(lambda items: "[" + ",".join(items) + "]")
    objects = st.lists(st.tuples(_JSON_KEYS, kids), max_size=5).map(
        lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"
    )
    # nesting around and past the parser's recursion limit (about 1,000 in CPython)
    deep = st.tuples(st.integers(0, 1200), kids).map(lambda t: "[" * t[0] + t[1] + "]" * t[0])
    return arrays_ | objects | deep


JSON_TEXT = st.recursive(_JSON_ATOMS, _json_text_containers, max_leaves=25)


@st.composite
def _json_bodies(draw: st.DrawFn) -> bytes:
    text = draw(JSON_TEXT)
    space = st.sampled_from(["", " ", "\n", "\t", "\r\n", "\x0c"])
    text = draw(space) + text + draw(space)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-32"]))
    return text.encode(encoding, errors="surrogatepass")


# --- parse_json ---


@PROPERTY
@given(st.binary(max_size=512))
def test_parse_json_over_arbitrary_bytes(body: bytes) -> None:
    _check_parsed(body)


@PROPERTY
@given(_json_bodies())
def test_parse_json_over_json_ish_text(body: bytes) -> None:
    _check_parsed(body)


# --- records.decode_rows ---


@PROPERTY
@given(JSON_ROWS)
def test_decode_rows_over_arbitrary_json(payload: Any) -> None:
    _check(lambda: decode_rows(payload, NAMES, MAX_ROWS))


@PROPERTY
@given(_mutated(_rows()))
def test_decode_rows_over_nearly_valid_rows(payload: Any) -> None:
    _check(lambda: decode_rows(payload, NAMES, MAX_ROWS))


# --- v2.decode_infer_request ---


@PROPERTY
@given(JSON_V2 | st.fixed_dictionaries({"inputs": st.lists(JSON_V2, max_size=4)}))
def test_v2_decode_over_arbitrary_json(payload: Any) -> None:
    _check(partial(_v2_rows, payload))


@PROPERTY
@given(_mutated(_v2_requests()))
def test_v2_decode_over_nearly_valid_requests(payload: Any) -> None:
    _check(partial(_v2_rows, payload))


# --- mlflow.decode_json and decode_csv ---


@PROPERTY
@given(st.dictionaries(MLFLOW_KEYS | st.text(max_size=4), JSON_MLFLOW, max_size=2) | JSON_MLFLOW)
def test_mlflow_decode_json_over_arbitrary_json(payload: Any) -> None:
    _check(lambda: decode_json(payload, NAMES, MAX_ROWS))


@PROPERTY
@given(_mutated(_mlflow_requests()))
def test_mlflow_decode_json_over_nearly_valid_requests(payload: Any) -> None:
    _check(lambda: decode_json(payload, NAMES, MAX_ROWS))


@PROPERTY
@given(st.binary(max_size=512))
def test_mlflow_decode_csv_over_arbitrary_bytes(body: bytes) -> None:
    _check(lambda: decode_csv(body, NAMES, MAX_ROWS))


@PROPERTY
@given(_csv_bodies())
def test_mlflow_decode_csv_over_csv_ish_text(body: bytes) -> None:
    _check(lambda: decode_csv(body, NAMES, MAX_ROWS))


# --- valid matrices come back bit for bit, through every decoder ---

MATRICES = arrays(
    np.float64,
    st.tuples(st.integers(1, MAX_ROWS), st.just(len(NAMES))),
    elements=st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([-0.0, 5e-324, -5e-324, 1.7976931348623157e308, -1.7976931348623157e308]),
)


def _same_bits(got: np.ndarray | None, expected: np.ndarray) -> None:
    assert got is not None
    assert got.shape == expected.shape
    assert np.array_equal(got.view(np.int64), expected.view(np.int64))  # -0.0 is not 0.0


@PROPERTY
@given(MATRICES, st.permutations(range(len(NAMES))))
def test_valid_matrices_round_trip_through_every_decoder(
    matrix: np.ndarray, order: Sequence[int]
) -> None:
    rows = matrix.tolist()
    records = [dict(zip(NAMES, row, strict=True)) for row in rows]
    columns = [NAMES[i] for i in order]
    shuffled = [[row[i] for i in order] for row in rows]
    by_column = {name: [row[i] for row in rows] for i, name in enumerate(NAMES)}
    n = len(rows)
    for payload in (rows, records):
        _same_bits(_check(partial(decode_rows, payload, NAMES, MAX_ROWS)), matrix)
    for body in (
        {"dataframe_split": {"columns": columns, "data": shuffled}},
        {"dataframe_records": records},
        {"instances": rows},
        {"inputs": records},
        {"inputs": by_column},
    ):
        _same_bits(_check(partial(decode_json, body, NAMES, MAX_ROWS)), matrix)
    csv = "\n".join([",".join(columns), *(",".join(map(repr, row)) for row in shuffled)])
    _same_bits(_check(lambda: decode_csv(csv.encode(), NAMES, MAX_ROWS)), matrix)
    flat = [value for row in rows for value in row]
    combined = {"name": "input-0", "shape": [n, len(NAMES)], "datatype": "FP64"}
    per_feature = [
        {"name": name, "shape": [n], "datatype": "FP64", "data": by_column[name]}
        for name in columns
    ]
    for request in (
        {"inputs": [{**combined, "data": flat}]},
        {"inputs": [{**combined, "data": rows}]},
        {"inputs": per_feature},
    ):
        _same_bits(_check(partial(_v2_rows, request)), matrix)
    # and through the JSON text a client would send
    text = json.dumps({"inputs": [{**combined, "data": rows}]}).encode()
    _same_bits(_check(lambda: _v2_rows(parse_json(text))), matrix)


# --- found by hand around the properties: the edges a random draw seldom reaches ---

_TENSOR = '"name":"input-0","shape":[1,4],"datatype":"FP64","data":[1,2,3,4]'
# "@" marks where a value nested as deeply as parse_json allows goes.
UNLIMITED = 10**9
DEEP_TEMPLATES = {
    "body": "@",
    "row": "[@]",
    "cell": '{"sepal_length":@,"sepal_width":2,"petal_length":3,"petal_width":4}',
    "array-cell": "[[1,2,3,@]]",
    "v2-inputs": '{"inputs":@}',
    "v2-shape": '{"inputs":[{"name":"input-0","shape":@,"datatype":"FP64","data":[]}]}',
    "v2-data": '{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","data":@}]}',
    "v2-datatype": '{"inputs":[{"name":"input-0","shape":[1,4],"datatype":@,"data":[]}]}',
    "v2-name": '{"inputs":[{"name":@,"shape":[1,4],"datatype":"FP64","data":[]}]}',
    "v2-input-parameters": '{"inputs":[{' + _TENSOR + ',"parameters":{"x":@}}]}',
    "v2-parameters": '{"inputs":[{' + _TENSOR + '}],"parameters":{"x":@}}',
    "v2-id": '{"id":@,"inputs":[{' + _TENSOR + "}]}",
    "v2-outputs": '{"inputs":[{' + _TENSOR + '}],"outputs":@}',
    "v2-output-name": '{"inputs":[{' + _TENSOR + '}],"outputs":[{"name":@}]}',
    "mlflow-inputs": '{"inputs":@}',
    "mlflow-instances-row": '{"instances":[@]}',
    "mlflow-columnar": '{"inputs":{"sepal_length":@,"sepal_width":[],"petal_length":[],'
    '"petal_width":[]}}',
    "mlflow-split-columns": '{"dataframe_split":{"columns":@,"data":[]}}',
    "mlflow-split-index": '{"dataframe_split":{"index":@,"data":[[1,2,3,4]]}}',
    "mlflow-split-data": '{"dataframe_split":{"data":@}}',
    "mlflow-records": '{"dataframe_records":[@]}',
    "mlflow-params": '{"params":@,"inputs":[[1,2,3,4]]}',
    "mlflow-params-value": '{"params":{"x":@},"inputs":[[1,2,3,4]]}',
}


def _deep(template: str, depth: int) -> bytes:
    return template.replace("@", "[" * depth + "]" * depth).encode()


def _deepest(template: str) -> int:
    """The deepest nesting at "@" that parse_json accepts at this point of the stack,
    with the depth setting raised out of the way (an operator may raise it)."""
    low, high = 1, 100_000  # parse_json refuses 100,000 with "nested too deeply"
    while high - low > 1:
        middle = (low + high) // 2
        try:
            parse_json(_deep(template, middle), max_depth=UNLIMITED)
            low = middle
        except InvalidInput:
            high = middle
    return low


@pytest.mark.parametrize(
    "template",
    [
        pytest.param(
            DEEP_TEMPLATES[name],
            id=name,
        )
        for name in DEEP_TEMPLATES
    ],
)
def test_values_nested_as_deeply_as_parse_json_allows(template: str) -> None:
    deepest = _deepest(template)
    assert deepest > 100
    for depth in range(deepest, deepest - 8, -1):
        _check_every_json_decoder(parse_json(_deep(template, depth), max_depth=UNLIMITED))


def test_csv_cell_check_is_linear_in_the_cell_length() -> None:
    header = ",".join(NAMES).encode()
    body = header + b"\n" + b"1" * 10_000 + b"x,1,1,1\n"
    started = time.perf_counter()
    with pytest.raises(InvalidInput, match="expected a finite number"):
        decode_csv(body, NAMES, MAX_ROWS)
    assert time.perf_counter() - started < 0.5  # linear: about a millisecond
