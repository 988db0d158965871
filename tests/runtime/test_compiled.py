"""The compiled runtime: ONNX answers like scikit-learn, and a changed artifact is refused."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import NodeProto, TensorProto, ValueInfoProto, helper
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from flaskserve import load_model, save_model
from flaskserve.admission import load_runtime
from flaskserve.artifact import MANIFEST_NAME, MODEL_NAME, read_manifest
from flaskserve.compiler import COMPILED_FILE
from flaskserve.errors import ArtifactError, InvalidInput, ModelError
from flaskserve.parity import TOLERANCE, score_parallel
from flaskserve.runtime import Prediction, compiled
from flaskserve.runtime.compiled import CompiledRuntime, parallel_threads

IRIS = load_iris()
X_IRIS: np.ndarray = IRIS["data"]
Y_IRIS: np.ndarray = IRIS["target"]
ROW = np.array([[5.9, 3.0, 5.1, 1.8]])


def _random_rows(model_dir: Path, count: int, seed: int) -> np.ndarray:
    """Rows spread over the manifest's ranges widened by 10% on each side."""
    features = read_manifest(model_dir).features
    low = np.array([f.min for f in features], dtype=np.float64)
    high = np.array([f.max for f in features], dtype=np.float64)
    margin = (high - low) * 0.1
    return np.random.default_rng(seed).uniform(low - margin, high + margin, (count, len(low)))


def _edit_manifest(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    manifest_file = path / MANIFEST_NAME
    data = json.loads(manifest_file.read_text(encoding="utf-8"))
    change(data)
    manifest_file.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture()
def iris_copy(model_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "iris"
    shutil.copytree(model_dir, path)
    return path


@pytest.fixture(scope="module")
def uncompiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compiled") / "plain"
    model = LogisticRegression(max_iter=1000).fit(X_IRIS, Y_IRIS)
    save_model(model, path, sample=X_IRIS, compile=False)
    return path


# ---------------------------------------------------------------- answers


def test_iris_compiled_runtime_agrees_with_sklearn(model_dir: Path) -> None:
    runtime = load_runtime(model_dir)
    assert isinstance(runtime, CompiledRuntime)
    assert runtime.kind == "onnx"
    estimator = load_model(model_dir).estimator
    rows = _random_rows(model_dir, 5_000, seed=7)
    result = runtime.predict(rows, proba=True)
    np.testing.assert_array_equal(result.predictions, estimator.predict(rows))
    assert result.probabilities is not None
    assert result.probabilities.shape == (5_000, 3)
    np.testing.assert_allclose(result.probabilities, estimator.predict_proba(rows), atol=1e-6)
    assert set(result.predictions.tolist()) == {0, 1, 2}, "the rows reach every class"


def test_iris_predict_without_proba(model_dir: Path) -> None:
    result = load_runtime(model_dir, "compiled").predict(ROW)
    assert result.probabilities is None
    assert result.predictions.dtype == np.int64
    assert result.predictions.tolist() == [2]
    assert type(result.predictions.tolist()[0]) is int


def test_scores_are_the_probabilities_of_the_same_answer(model_dir: Path) -> None:
    """For a shadow: the answer as without probabilities, the probabilities kept aside."""
    runtime = load_runtime(model_dir, "compiled")
    assert isinstance(runtime, CompiledRuntime)
    rows = _random_rows(model_dir, 500, seed=11)
    scored = runtime.predict_with_scores(rows)
    asked = runtime.predict(rows, proba=True)
    plain = runtime.predict(rows)
    assert scored.probabilities is None and plain.scores is None and asked.scores is None
    np.testing.assert_array_equal(scored.predictions, plain.predictions)
    assert scored.predictions.dtype == plain.predictions.dtype
    assert scored.scores is not None and asked.probabilities is not None
    np.testing.assert_array_equal(scored.scores, asked.probabilities)


# ---------------------------------------------------------------- large batches


def test_the_gate_checked_the_large_batch_session(model_dir: Path) -> None:
    parallel = read_manifest(model_dir).compiled["parity"]["parallel"]
    assert parallel["passed"] is True and parallel["threads"] == parallel_threads()
    assert parallel["mismatches"] == 0 and parallel["max_difference"] <= TOLERANCE


def test_a_large_batch_on_every_core_answers_as_one_thread_does(model_dir: Path) -> None:
    one = load_runtime(model_dir, "compiled", parallel_rows=0)
    many = load_runtime(model_dir, "compiled", parallel_rows=1_000)
    assert isinstance(one, CompiledRuntime) and isinstance(many, CompiledRuntime)
    assert (one.parallel_rows, many.parallel_rows) == (0, 1_000)
    rows = _random_rows(model_dir, 20_000, seed=3)
    alone, split = one.predict(rows, proba=True), many.predict(rows, proba=True)
    estimator = load_model(model_dir).estimator
    np.testing.assert_array_equal(split.predictions, alone.predictions)
    np.testing.assert_array_equal(split.predictions, estimator.predict(rows))
    assert split.probabilities is not None
    np.testing.assert_allclose(split.probabilities, estimator.predict_proba(rows), atol=TOLERANCE)


@pytest.mark.parametrize(
    "record", [None, {"threads": 2, "passed": False}], ids=["not-gated", "gate-failed"]
)
def test_one_thread_unless_the_gate_proved_the_large_batch_session(
    iris_copy: Path, record: dict[str, Any] | None
) -> None:
    def change(data: dict[str, Any]) -> None:
        parity = data["compiled"]["parity"]
        parity.pop("parallel")
        if record is not None:
            parity["parallel"] = record

    _edit_manifest(iris_copy, change)
    runtime = load_runtime(iris_copy, "compiled", parallel_rows=1_000)
    assert isinstance(runtime, CompiledRuntime) and runtime.parallel_rows == 0


def test_one_usable_core_means_one_thread(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "usable_cores", lambda: 1)
    runtime = load_runtime(model_dir, "compiled", parallel_rows=1_000)
    assert isinstance(runtime, CompiledRuntime) and runtime.parallel_rows == 0


def test_the_large_batch_session_fails_the_gate_on_one_label_or_one_difference() -> None:
    expected = {"predict": np.array([0, 1]), "proba": np.array([[0.6, 0.4], [0.1, 0.9]])}
    good = Prediction(np.array([0, 1]), expected["proba"] + 1e-9)
    flipped = Prediction(np.array([0, 0]), expected["proba"])
    drifted = Prediction(np.array([0, 1]), expected["proba"] + 1e-5)
    assert score_parallel("classification", [good, good], expected)["passed"] is True
    for bad in (flipped, drifted):
        figures = score_parallel("classification", [good, bad], expected)
        assert figures["passed"] is False, "the worst run decides"
    assert score_parallel("classification", [good, flipped], expected)["mismatches"] == 1


def test_labels_alone_are_the_labels_with_probabilities(model_dir: Path) -> None:
    """Without ``proba`` only the label output is fetched; the labels are the same."""
    runtime = load_runtime(model_dir, "compiled")
    rows = _random_rows(model_dir, 2_000, seed=11)
    alone = runtime.predict(rows)
    both = runtime.predict(rows, proba=True)
    assert alone.probabilities is None and both.probabilities is not None
    np.testing.assert_array_equal(alone.predictions, both.predictions)
    np.testing.assert_array_equal(alone.predictions, load_model(model_dir).estimator.predict(rows))


def test_string_labels_stay_strings(tmp_path: Path) -> None:
    labels = np.array(["setosa", "versicolor", "virginica"])[Y_IRIS]
    model = Pipeline(
        [("scale", StandardScaler()), ("model", LogisticRegression(max_iter=1000))]
    ).fit(X_IRIS, labels)
    save_model(model, tmp_path / "named", sample=X_IRIS)
    runtime = load_runtime(tmp_path / "named")
    assert runtime.kind == "onnx"
    result = runtime.predict(X_IRIS, proba=True)
    assert result.predictions.dtype.kind == "U"
    assert result.predictions.tolist() == model.predict(X_IRIS).tolist()
    assert all(type(label) is str for label in result.predictions.tolist())
    assert result.probabilities is not None
    np.testing.assert_allclose(result.probabilities, model.predict_proba(X_IRIS), atol=1e-6)


def test_regression_predicts_floats(tmp_path: Path) -> None:
    x, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(x, y)
    save_model(model, tmp_path / "linear", sample=x)
    runtime = load_runtime(tmp_path / "linear")
    assert runtime.kind == "onnx"
    result = runtime.predict(x)
    assert result.predictions.dtype.kind == "f"
    assert result.predictions.shape == (len(x),)
    assert result.probabilities is None
    np.testing.assert_allclose(result.predictions, model.predict(x), rtol=1e-6)
    with pytest.raises(InvalidInput, match="does not give probabilities"):
        runtime.predict(x, proba=True)


@pytest.fixture(scope="module")
def ridge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier without predict_proba, compiled: skl2onnx still gives a scores output."""
    path = tmp_path_factory.mktemp("compiled") / "ridge"
    save_model(RidgeClassifier().fit(X_IRIS, Y_IRIS), path, sample=X_IRIS)
    return path


def test_classifier_without_probabilities_is_compiled(ridge: Path) -> None:
    runtime = load_runtime(ridge)
    assert runtime.kind == "onnx"
    assert runtime.manifest.compiled["status"] == "passed"
    sklearn_runtime = load_runtime(ridge, "sklearn")
    np.testing.assert_array_equal(
        runtime.predict(X_IRIS).predictions, sklearn_runtime.predict(X_IRIS).predictions
    )
    with pytest.raises(InvalidInput, match="does not give probabilities"):
        sklearn_runtime.predict(ROW, proba=True)


def test_classifier_without_probabilities_refuses_proba(ridge: Path) -> None:
    with pytest.raises(InvalidInput, match="does not give probabilities"):
        load_runtime(ridge).predict(ROW, proba=True)


# ---------------------------------------------------------------- refusals


def test_tampered_onnx_is_refused(iris_copy: Path) -> None:
    onnx_file = iris_copy / COMPILED_FILE
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    for runtime in ("auto", "compiled"):
        with pytest.raises(ArtifactError, match=r"model\.onnx: SHA-256 mismatch"):
            load_runtime(iris_copy, runtime)
    assert load_runtime(iris_copy, "sklearn").kind == "sklearn"  # scikit-learn's file is intact


@pytest.mark.parametrize("runtime", ["auto", "compiled"])
def test_tampered_skops_is_refused_even_when_only_onnx_is_used(
    iris_copy: Path, runtime: str
) -> None:
    model_file = iris_copy / MODEL_NAME
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"model\.skops: SHA-256 mismatch"):
        load_runtime(iris_copy, runtime)


def test_compiled_runtime_of_an_artifact_without_one(uncompiled: Path) -> None:
    with pytest.raises(ArtifactError, match=r"no compiled model \(run `flaskserve compile "):
        load_runtime(uncompiled, "compiled")
    assert load_runtime(uncompiled).kind == "sklearn"


def test_unknown_runtime_name(model_dir: Path) -> None:
    with pytest.raises(ArtifactError, match=r"runtime 'tensorrt': expected one of auto, sklearn"):
        load_runtime(model_dir, "tensorrt")


BAD_FILES: dict[str, tuple[object, str]] = {
    "parent": ("../x.onnx", "no compiled model"),
    "absolute": ("/tmp/x.onnx", "no compiled model"),
    "subdirectory": ("sub/x.onnx", "no compiled model"),
    "empty": ("", "no compiled model"),
    "not-a-string": (7, "no compiled model"),
    # Path("..").name is "..": it passes the name check and fails as a directory instead
    "dot-dot": ("..", "no compiled model"),
}


@pytest.mark.parametrize(("name", "says"), BAD_FILES.values(), ids=BAD_FILES)
def test_compiled_file_outside_the_artifact_is_refused(
    iris_copy: Path, name: object, says: str
) -> None:
    # A real ONNX file with the recorded hash waits at ../x.onnx: only the name refuses it.
    shutil.copy(iris_copy / COMPILED_FILE, iris_copy.parent / "x.onnx")
    (iris_copy / COMPILED_FILE).unlink()

    def point_elsewhere(data: dict[str, Any]) -> None:
        data["compiled"]["file"] = name

    _edit_manifest(iris_copy, point_elsewhere)
    for runtime in ("auto", "compiled"):
        with pytest.raises(ArtifactError, match=says):
            load_runtime(iris_copy, runtime)


def test_width_mismatch_is_refused(iris_copy: Path) -> None:
    def drop_feature(data: dict[str, Any]) -> None:
        data["features"] = data["features"][:3]

    _edit_manifest(iris_copy, drop_feature)
    with pytest.raises(ArtifactError, match="the compiled model expects 4"):
        load_runtime(iris_copy)


def test_corrupt_onnx_with_a_matching_hash_is_refused(iris_copy: Path) -> None:
    garbage = b"not an onnx graph"
    (iris_copy / COMPILED_FILE).write_bytes(garbage)

    def rehash(data: dict[str, Any]) -> None:
        data["compiled"]["sha256"] = hashlib.sha256(garbage).hexdigest()

    _edit_manifest(iris_copy, rehash)
    with pytest.raises(ArtifactError, match="not a loadable ONNX model"):
        load_runtime(iris_copy)


# ---------------------------------------------------------------- failures at predict time
# Graphs built here with onnx.helper, named as skl2onnx names them (input X; outputs label
# and probabilities, or variable), over the manifest of a real artifact of the same width.


def _graph(nodes: list[NodeProto], outputs: list[ValueInfoProto]) -> bytes:
    """A float64 [N, 4] input ``X`` and *nodes* computing *outputs*, as ONNX bytes."""
    x = helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, 4])
    graph = helper.make_graph(nodes, "failing", [x], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # any ONNX Runtime of the last years reads it
    onnx.checker.check_model(model, full_check=True)
    payload: bytes = model.SerializeToString()
    return payload


def _ints(name: str, values: list[int], shape: list[int] | None = None) -> NodeProto:
    """A constant int64 tensor called *name*: a vector unless *shape* says otherwise."""
    tensor = helper.make_tensor(
        name, TensorProto.INT64, [len(values)] if shape is None else shape, values
    )
    return helper.make_node("Constant", [], [name], value=tensor)


def _column(j: int, name: str) -> list[NodeProto]:
    """*name* = X[:, j], shape [N] (a scalar index drops the axis)."""
    at = f"{name}_at"
    return [_ints(at, [j], shape=[]), helper.make_node("Gather", ["X", at], [name], axis=1)]


def _ratio(name: str) -> list[NodeProto]:
    """*name* = X[:, 0] / X[:, 1]: infinite or NaN where X[:, 1] is 0."""
    return [*_column(0, "x0"), *_column(1, "x1"), helper.make_node("Div", ["x0", "x1"], [name])]


def _compiled(payload: bytes, plain: Path, *, probabilities: bool) -> CompiledRuntime:
    record = {"input_dtype": "float64", "input_cast": "none", "probabilities": probabilities}
    return CompiledRuntime(payload, replace(read_manifest(plain), compiled=record))


@pytest.fixture(scope="module")
def plain_regression(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regression artifact over iris's four features, for its manifest."""
    path = tmp_path_factory.mktemp("compiled") / "petal-width"
    save_model(LinearRegression().fit(X_IRIS, X_IRIS[:, 3]), path, sample=X_IRIS, compile=False)
    return path


@pytest.fixture(scope="module")
def ratio_regression(plain_regression: Path) -> CompiledRuntime:
    output = helper.make_tensor_value_info("variable", TensorProto.DOUBLE, [None])
    return _compiled(_graph(_ratio("variable"), [output]), plain_regression, probabilities=False)


GOOD_ROWS = np.array([[6.0, 3.0, 0.0, 9.0], [1.0, 4.0, 9.0, 9.0]])


def test_the_ratio_graph_answers_finite_rows(ratio_regression: CompiledRuntime) -> None:
    assert ratio_regression.predict(GOOD_ROWS).predictions.tolist() == [2.0, 0.25]


@pytest.mark.parametrize("x0", [1.0, -1.0, 0.0], ids=["inf", "-inf", "nan"])
def test_non_finite_predictions_are_a_model_error(
    ratio_regression: CompiledRuntime, x0: float
) -> None:
    rows = np.vstack([GOOD_ROWS[:1], [[x0, 0.0, 1.0, 1.0]], GOOD_ROWS[1:]])  # one bad row of three
    with pytest.raises(ModelError, match="the model produced non-finite predictions"):
        ratio_regression.predict(rows)


def test_non_finite_probabilities_are_a_model_error(uncompiled: Path) -> None:
    """probabilities = X[:, :3] / their sum (NaN where all three are 0); label = argmax."""
    nodes = [
        _ints("starts", [0]),
        _ints("stops", [3]),
        _ints("axes", [1]),
        helper.make_node("Slice", ["X", "starts", "stops", "axes"], ["scores"]),
        helper.make_node("ReduceSum", ["scores", "axes"], ["total"], keepdims=1),
        helper.make_node("Div", ["scores", "total"], ["probabilities"]),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    outputs = [
        helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
        helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, [None, 3]),
    ]
    runtime = _compiled(_graph(nodes, outputs), uncompiled, probabilities=True)

    result = runtime.predict(GOOD_ROWS, proba=True)
    assert result.predictions.tolist() == [0, 2]
    assert result.probabilities is not None
    np.testing.assert_allclose(
        result.probabilities, [[2 / 3, 1 / 3, 0.0], [1 / 14, 4 / 14, 9 / 14]]
    )
    with pytest.raises(ModelError, match="the model produced non-finite probabilities"):
        runtime.predict(np.vstack([GOOD_ROWS, [[0.0, 0.0, 0.0, 9.0]]]), proba=True)


def test_a_non_finite_label_is_a_model_error(uncompiled: Path) -> None:
    """A float label output (X[:, 0] / X[:, 1]) for a model whose labels are integers."""
    output = helper.make_tensor_value_info("label", TensorProto.DOUBLE, [None])
    runtime = _compiled(_graph(_ratio("label"), [output]), uncompiled, probabilities=False)
    rows = np.array([[2.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])

    assert runtime.predict(rows[:1]).predictions.tolist() == [2]
    with pytest.raises(ModelError, match="the model produced non-finite predictions"):
        runtime.predict(rows)  # NaN must not become some integer label


def test_onnx_runtime_raising_is_a_model_error_and_logged(
    plain_regression: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """variable = [10, 20, 30][int(X[:, 0])]: ONNX Runtime refuses an index out of bounds."""
    table = helper.make_tensor("table", TensorProto.DOUBLE, [3], [10.0, 20.0, 30.0])
    nodes = [
        *_column(0, "x0"),
        helper.make_node("Cast", ["x0"], ["index"], to=TensorProto.INT64),
        helper.make_node("Constant", [], ["values"], value=table),
        helper.make_node("Gather", ["values", "index"], ["variable"], axis=0),
    ]
    output = helper.make_tensor_value_info("variable", TensorProto.DOUBLE, [None])
    runtime = _compiled(_graph(nodes, [output]), plain_regression, probabilities=False)
    in_bounds = np.array([[1.0, 0, 0, 0], [2.0, 0, 0, 0]])
    assert runtime.predict(in_bounds).predictions.tolist() == [20.0, 30.0]

    with pytest.raises(ModelError, match="model 'petal-width' failed to predict") as raised:
        runtime.predict(np.array([[1.0, 0, 0, 0], [7.0, 0, 0, 0]]))

    cause = raised.value.__cause__
    assert cause is not None and not isinstance(cause, ModelError)
    assert "out of" in str(cause) and "bounds" in str(cause), cause  # ONNX Runtime's own words
    logged = [r for r in caplog.records if r.name == "flaskserve.runtime.compiled"]
    assert [r.getMessage() for r in logged] == ["model 'petal-width' failed in ONNX Runtime"]
    assert logged[0].exc_info is not None and logged[0].exc_info[1] is cause


def test_a_float32_graph_refuses_values_beyond_float32(ridge: Path) -> None:
    """The compiled ridge computes in float32; scikit-learn, in float64, answers these rows."""
    runtime = load_runtime(ridge)
    assert runtime.kind == "onnx" and runtime.manifest.compiled["input_dtype"] == "float32"
    estimator = load_model(ridge).estimator
    rows = np.repeat(ROW, 8, axis=0)
    rows[np.arange(8), np.arange(8) // 2] = [1e39, -1e39] * 4  # each feature, each sign
    assert np.isfinite(estimator.decision_function(rows)).all()

    for row in rows:
        with pytest.raises(ModelError, match=r"beyond 3\.403e\+38, the float32 range"):
            runtime.predict(np.vstack([ROW, row]))
    edge = np.full((1, 4), float(np.finfo(np.float32).max))
    assert runtime.predict(edge).predictions.tolist() == estimator.predict(edge).tolist()
