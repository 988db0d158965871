"""Typed (DataFrame) pipelines compiled to ONNX, and the parity gate on typed rows."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import flaskserve.parity
from census import ROW, as_categories, census_frame, hist_gradient_boosting, onehot_pipeline
from flaskserve import save_model
from flaskserve.admission import admit, load_runtime
from flaskserve.artifact import read_manifest
from flaskserve.codecs.records import decode_records
from flaskserve.compiler import COMPILED_FILE, compile_artifact
from flaskserve.compiler_typed import (
    BLOCK_ROWS,
    MISSING_TEXT,
    TYPED_RANDOM_ROWS,
    parity_parts,
    random_rows,
)
from flaskserve.errors import ArtifactError
from flaskserve.parity import TOLERANCE
from flaskserve.runtime.base import Runtime
from flaskserve.schema import Table

TEXT = ["workclass", "education", "sex"]
NUMBERS = ["age", "hours_per_week", "capital_gain"]


def _assert_same(runtime: Runtime, estimator: Any, rows: Table) -> None:
    got = runtime.predict(rows, proba=True)
    frame = rows.to_frame()
    assert got.predictions.tolist() == estimator.predict(frame).tolist()
    assert got.probabilities is not None
    np.testing.assert_allclose(
        got.probabilities, estimator.predict_proba(frame), rtol=0, atol=TOLERANCE
    )


def _fresh_rows(census_dir: Path, count: int, seed: int) -> Table:
    """Random typed rows, drawn apart from the gate's: other seed, missing cells included."""
    features = read_manifest(census_dir).features
    return random_rows(features, None, count, np.random.default_rng(seed))


# ---------------------------------------------------------------- the census pipeline


def test_census_pipeline_compiles_and_passes(census_dir: Path) -> None:
    manifest = read_manifest(census_dir)
    record = manifest.compiled
    assert manifest.input == "frame"
    assert record["status"] == "passed", record
    assert record["file"] == COMPILED_FILE and (census_dir / COMPILED_FILE).is_file()
    assert record["missing_text"] == MISSING_TEXT
    parity = record["parity"]
    assert parity["mismatches"] == 0 and parity["max_difference"] <= TOLERANCE
    assert parity["parallel"]["passed"] is True  # a large batch may use every core
    parts = parity["parts"]
    assert parts["training"] == 600 and parts["random"] == TYPED_RANDOM_ROWS
    assert 0 < parts["complete"] < TYPED_RANDOM_ROWS
    for name in ("age", "workclass", "hours_per_week"):  # nullable, as the model answers
        assert parts[f"missing {name}"] == BLOCK_ROWS
    for name in TEXT:  # unseen categories are ignored (handle_unknown="ignore")
        assert parts[f"unseen {name}"] == 2 * BLOCK_ROWS
    assert parity["rows"] == sum(parts.values())


def test_compiled_census_answers_like_the_pipeline(census_dir: Path, census_pipeline: Any) -> None:
    runtime = admit(census_dir, "auto")
    assert runtime.kind == "onnx"
    rows = _fresh_rows(census_dir, 5_000, seed=99)
    assert any(np.isnan(v) for v in rows.columns[1] if isinstance(v, float))
    _assert_same(runtime, census_pipeline, rows)


def test_decoded_requests_with_missing_cells_and_unseen_text(
    census_dir: Path, census_pipeline: Any
) -> None:
    runtime = admit(census_dir, "auto")
    records = [
        ROW,
        {**ROW, "workclass": None, "education": None, "sex": None, "capital_gain": None},
        {**ROW, "age": None, "hours_per_week": None},
        {**ROW, "workclass": "Never-worked", "education": "", "sex": "Other"},
        {**ROW, "workclass": "flaskserve-missing", "age": 200, "capital_gain": 1e7},
    ]
    rows = decode_records(records, runtime.manifest, 100)
    assert isinstance(rows, Table)
    _assert_same(runtime, census_pipeline, rows)
    for record in records:  # one row a request, as most clients send them
        one = decode_records(record, runtime.manifest, 1)
        assert isinstance(one, Table)
        _assert_same(runtime, census_pipeline, one)


def test_category_columns_and_unknown_categories(tmp_path: Path) -> None:
    frame, target = census_frame(300, seed=3)
    typed = as_categories(frame)
    pipeline = onehot_pipeline(typed, target)
    manifest = save_model(pipeline, tmp_path / "categories", sample=typed)
    assert manifest.compiled["status"] == "passed", manifest.compiled
    runtime = admit(tmp_path / "categories")
    assert runtime.kind == "onnx"
    workclass = next(f for f in manifest.features if f.name == "workclass")
    assert (workclass.dtype, workclass.unknown_categories) == ("category", "ignored")
    records = [ROW, {**ROW, "workclass": "Never-worked"}, {**ROW, "workclass": None}]
    rows = decode_records(records, manifest, 10)
    assert isinstance(rows, Table)
    _assert_same(runtime, pipeline, rows)
    _assert_same(
        runtime, pipeline, random_rows(manifest.features, None, 2_000, np.random.default_rng(5))
    )


# ---------------------------------------------------------------- what is not compiled


def test_hist_gradient_boosting_on_categories_is_unsupported(tmp_path: Path) -> None:
    frame, target = census_frame(300, seed=3)
    model = hist_gradient_boosting(frame, target)
    manifest = save_model(model, tmp_path / "hgb", sample=as_categories(frame))
    record = manifest.compiled
    assert record["status"] == "unsupported"
    assert record["reason"].startswith("skl2onnx cannot convert this pipeline")
    assert "HistGradientBoosting" in record["reason"]
    assert not (tmp_path / "hgb" / COMPILED_FILE).exists()
    runtime = admit(tmp_path / "hgb", "auto")
    assert runtime.kind == "sklearn"
    with pytest.raises(ArtifactError, match="no compiled model"):
        load_runtime(tmp_path / "hgb", "compiled")


def test_an_encoder_that_knows_missing_text_is_not_served_compiled(tmp_path: Path) -> None:
    """No imputer: scikit-learn's one-hot encoder has a column for NaN, ONNX cannot have one."""
    frame, target = census_frame(300, seed=3)
    columns = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="ignore"), TEXT),
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), NUMBERS),
        ]
    )
    pipeline = make_pipeline(columns, LogisticRegression(max_iter=500)).fit(frame, target)
    manifest = save_model(pipeline, tmp_path / "nan-category", sample=frame)
    assert manifest.compiled["status"] in ("failed", "unsupported"), manifest.compiled
    if manifest.compiled["status"] == "failed":
        assert manifest.compiled["parity"]["mismatches"] > 0
    assert admit(tmp_path / "nan-category").kind == "sklearn"


def test_a_failed_typed_gate_is_recorded_and_not_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, census: Any, census_pipeline: Any
) -> None:
    monkeypatch.setattr(flaskserve.parity, "TOLERANCE", 0.0)
    manifest = save_model(census_pipeline, tmp_path / "strict", sample=census[0].iloc[:100])
    record = manifest.compiled
    assert record["status"] == "failed"
    assert record["parity"]["passed"] is False
    assert 0.0 < record["parity"]["max_difference"] < 1e-6  # float32 against float64
    assert (tmp_path / "strict" / COMPILED_FILE).is_file()
    assert admit(tmp_path / "strict").kind == "sklearn"
    assert admit(tmp_path / "strict", "compiled").kind == "onnx"


def test_compile_artifact_rebuilds_a_typed_model(tmp_path: Path, census_dir: Path) -> None:
    path = tmp_path / "census"
    shutil.copytree(census_dir, path)
    (path / COMPILED_FILE).unlink()
    manifest = compile_artifact(path)
    assert manifest.compiled["status"] == "passed"
    parts = manifest.compiled["parity"]["parts"]
    assert parts["training"] == len(manifest.sample["inputs"])  # the smoke rows
    assert admit(path).kind == "onnx"


# ---------------------------------------------------------------- the rows the gate checks


def test_parity_parts_cover_ranges_missing_cells_and_unseen_text(census_dir: Path) -> None:
    features = read_manifest(census_dir).features
    parts = dict(parity_parts(features, None, None))
    random = parts["random"]
    assert len(random) == TYPED_RANDOM_ROWS
    by_name = dict(zip(random.names, random.columns, strict=True))
    age = next(f for f in features if f.name == "age")
    assert age.min is not None and age.max is not None
    ages = by_name["age"][~np.isnan(by_name["age"])]
    margin = (age.max - age.min) * 0.1
    assert ages.min() >= age.min - margin and ages.max() <= age.max + margin
    assert ages.min() < age.min and ages.max() > age.max  # beyond the training range too
    share = np.mean([not isinstance(v, str) for v in by_name["workclass"]])
    assert 0.05 < share < 0.15
    education = next(f for f in features if f.name == "education")
    seen = {v for v in by_name["education"] if isinstance(v, str)}
    assert seen == set(education.categories or ())
    assert parts["complete"].columns[0].dtype == np.int64  # age: an integer column again
    assert set(parts["unseen sex"].columns[3]) == {""}  # the last block of a name is kept
    assert all(v != v for v in parts["missing sex"].columns[3])


def test_refused_text_gets_no_unseen_block(tmp_path: Path) -> None:
    frame, target = census_frame(300, seed=3)
    pipeline = onehot_pipeline(frame, target, unknown="error")
    manifest = save_model(pipeline, tmp_path / "refusing", sample=frame)
    assert manifest.compiled["status"] == "passed", manifest.compiled
    parts = manifest.compiled["parity"]["parts"]
    assert not [name for name in parts if name.startswith("unseen")]
    assert parts["missing workclass"] == BLOCK_ROWS
