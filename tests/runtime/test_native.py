"""Native batches: a forest's library built here from its Treelite checkpoint, parity-gated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require_component
from sklearn.datasets import load_iris
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)

from components import require_module
from flaskserve.admission import load_runtime
from flaskserve.artifact import MANIFEST_NAME
from flaskserve.errors import ArtifactError, ModelError
from flaskserve.packaging import save_model
from flaskserve.runtime import native
from flaskserve.runtime.compiled import CompiledRuntime

ROWS = 2_500  # above the default parallel_rows (1,000): a large batch


@pytest.fixture(autouse=True)
def _native_parts() -> None:
    require_module("tl2cgen", "pip install 'flaskserve[native]'")
    require_module("treelite", "pip install 'flaskserve[native]'")
    require_component("gcc", "native batches compile the trees to a shared library")


def _data(classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 5))
    score = x @ np.array([1.0, -2.0, 0.5, 0.0, 1.5])
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))
    return x, (y if classes else score)


def _native_runtime(directory: Path) -> CompiledRuntime:
    runtime = load_runtime(directory)
    assert isinstance(runtime, CompiledRuntime) and runtime.native is not None
    assert runtime.native.wait(120), "the library did not build"
    return runtime


def _batch(x: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(9)
    return x[rng.integers(0, len(x), ROWS)] + rng.normal(scale=0.5, size=(ROWS, x.shape[1]))


def _only_native(runtime: CompiledRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime refuses from now on: what still answers is the native library."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("ONNX Runtime ran a large batch")

    monkeypatch.setattr(runtime._session, "run", refuse)


@pytest.mark.parametrize(
    ("estimator", "classes"),
    [
        (RandomForestClassifier(n_estimators=21, random_state=1), 3),
        (RandomForestClassifier(n_estimators=21, random_state=2), 2),
        (ExtraTreesClassifier(n_estimators=21, random_state=3), 4),
        (RandomForestRegressor(n_estimators=21, random_state=4), 0),
    ],
    ids=["forest-3-classes", "forest-binary", "extra-trees", "forest-regressor"],
)
def test_native_batches_equal_the_model(  # odd tree counts: no exact ties for ONNX's gate
    estimator: Any, classes: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _check_native_batches(estimator, classes, tmp_path, monkeypatch)


@pytest.mark.parametrize("classes", [3, 2, 0], ids=["3-classes", "binary", "regressor"])
def test_xgboost_batches_run_on_native_code(
    classes: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """XGBoost's trees compiled to C ran 6x ONNX Runtime's graph of them on 10,000 rows
    (benchmarks/booster_compilers.py); they answer within the gate's 1e-6 of XGBoost's."""
    xgb = require_module("xgboost", "pip install 'flaskserve[xgboost]'")
    kind = xgb.XGBClassifier if classes else xgb.XGBRegressor
    _check_native_batches(
        kind(n_estimators=21, max_depth=3, n_jobs=1), classes, tmp_path, monkeypatch
    )


def test_lightgbm_says_why_its_batches_stay_on_onnx_runtime(tmp_path: Path) -> None:
    lgb = require_module("lightgbm", "pip install 'flaskserve[lightgbm]'")
    x, y = load_iris(return_X_y=True)
    options = {"n_estimators": 30, "verbose": -1, "n_jobs": 1, "min_child_samples": 5}
    manifest = save_model(lgb.LGBMClassifier(**options).fit(x, y), tmp_path / "m", sample=x)
    assert manifest.compiled["status"] == "passed"
    assert manifest.compiled["native"] == {
        "status": "unsupported",
        "reason": "LightGBM's trees measured no faster on native code than on ONNX Runtime",
    }


def _check_native_batches(
    estimator: Any, classes: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = _data(classes)
    estimator.fit(x, y)
    manifest = save_model(estimator, tmp_path / "m", sample=x)
    record = manifest.compiled["native"]
    assert record["status"] == "passed" and record["parity"]["mismatches"] == 0
    assert record["parity"]["rows"] > 100_000 and record["parity"]["max_difference"] <= 1e-6
    assert (tmp_path / "m" / native.CHECKPOINT_FILE).is_file()

    runtime = _native_runtime(tmp_path / "m")
    _only_native(runtime, monkeypatch)
    batch = _batch(x)
    got = runtime.predict(batch, proba=bool(classes))
    assert np.array_equal(got.predictions, estimator.predict(batch)) if classes else True
    if classes:
        assert got.probabilities is not None
        assert np.abs(got.probabilities - estimator.predict_proba(batch)).max() <= 1e-6
        assert runtime.predict(batch).probabilities is None  # not asked for: not given
    else:
        expected = estimator.predict(batch)
        assert np.abs(got.predictions - expected).max() <= 1e-6 * max(1, np.abs(expected).max())
    with pytest.raises(ModelError, match="failed to predict"):
        runtime.predict(batch[:10])  # a small batch is ONNX Runtime's, which now refuses


def test_the_tutorial_forest_has_native_batches(model_dir: Path) -> None:
    record = json.loads((model_dir / MANIFEST_NAME).read_text())["compiled"]["native"]
    assert record["status"] == "passed"
    assert (record["parity"]["mismatches"], record["parity"]["max_difference"]) == (0, 0.0)


def test_a_model_that_is_not_a_forest_says_so(tmp_path: Path) -> None:
    x, y = _data(3)
    model = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(x, y)
    manifest = save_model(model, tmp_path / "gb", sample=x)
    assert manifest.compiled["native"] == {
        "status": "unsupported",
        "reason": "GradientBoostingClassifier is not a forest",
    }
    assert not (tmp_path / "gb" / native.CHECKPOINT_FILE).exists()
    runtime = load_runtime(tmp_path / "gb")
    assert isinstance(runtime, CompiledRuntime) and runtime.native is None


def test_without_a_compiler_large_batches_stay_on_onnx_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(native, "_compiler", lambda: None)
    x, y = _data(3)
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    manifest = save_model(model, tmp_path / "m", sample=x)
    assert manifest.compiled["status"] == "passed"
    assert manifest.compiled["native"] == {
        "status": "unavailable",
        "reason": "no C compiler (gcc or clang) on PATH",
    }


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda m: m.setattr(native, "_compiler", lambda: None), "no C compiler"),
        (lambda m: m.setenv("FLASKSERVE_NATIVE_BATCHES", "0"), "turned off"),
    ],
    ids=["no-compiler", "turned-off"],
)
def test_large_batches_stay_on_onnx_runtime_where_native_cannot_run(
    setup: Any,
    reason: str,
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    setup(monkeypatch)
    with caplog.at_level("INFO", logger="flaskserve.runtime.compiled"):
        runtime = load_runtime(model_dir)
    assert isinstance(runtime, CompiledRuntime) and runtime.native is None
    assert f"large batches on ONNX Runtime: {reason}" in caplog.text
    rows = np.tile([[5.9, 3.0, 5.1, 1.8]], (ROWS, 1))
    assert set(runtime.predict(rows).predictions.tolist()) == {2}


def test_a_changed_checkpoint_is_refused(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "iris"
    shutil.copytree(model_dir, copy)
    checkpoint = copy / native.CHECKPOINT_FILE
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ArtifactError, match=r"native\.tl"):
        load_runtime(copy)


def test_a_library_is_built_once_per_machine(model_dir: Path, tmp_path: Path) -> None:
    checkpoint = (model_dir / native.CHECKPOINT_FILE).read_bytes()
    first = native.build(checkpoint, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert native.build(checkpoint, tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.glob("*.so")] == [first.name]


def test_a_failed_build_says_why_and_leaves_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(RuntimeError, match=r"^building the native library failed: \S"):
        native.build(b"not a treelite checkpoint", tmp_path)
    assert list(tmp_path.glob("*.so")) == [] and list(tmp_path.glob("tmp*")) == []
    assert capfd.readouterr() == ("", "")  # the child's notes go to the debug log only


def test_a_build_prints_nothing(
    model_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """TL2cgen's core notes a checkpoint from a newer Treelite on stderr: kept in the child."""
    native.build((model_dir / native.CHECKPOINT_FILE).read_bytes(), tmp_path)
    assert capfd.readouterr() == ("", "")
