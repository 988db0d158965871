"""XGBoost and LightGBM models: saved in their own formats, loaded without unpickling,
answering as the libraries themselves do; ``flaskserve import`` of their own files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.datasets import load_iris

from census import as_categories, census_frame
from components import require_module
from flaskserve.admission import admit
from flaskserve.artifact import read_manifest
from flaskserve.cli import main
from flaskserve.errors import ArtifactError
from flaskserve.packaging import save_model
from flaskserve.schema import rows_input

xgb = require_module("xgboost", "pip install 'flaskserve[xgboost]'")
lgb = require_module("lightgbm", "pip install 'flaskserve[lightgbm]'")
#: measured (2026-12, xgboost 3.2, lightgbm 4.7): 0.0, the runtime calls the same library
TOLERANCE = 1e-6


def _cells(frame: Any) -> list[list[Any]]:
    return [list(r.values()) for r in json.loads(frame.to_json(orient="records"))]


def _served(path: Path, frame: Any, proba: bool) -> Any:
    runtime = admit(path, "sklearn")  # the library itself (auto: ONNX where it compiled)
    rows = rows_input(runtime.manifest, _cells(frame), "row {}: ".format)
    return runtime, runtime.predict(rows, proba=proba)


def _models() -> dict[str, tuple[Any, Any]]:
    frame, target = census_frame(rows=300)
    typed = as_categories(frame)
    iris, species = load_iris(return_X_y=True, as_frame=True)
    iris = iris.copy()
    iris.iloc[::7, 1] = np.nan  # missing cells, taken natively
    numbers = typed.drop(columns="age")
    xgb_options: dict[str, Any] = {"n_estimators": 20, "max_depth": 3, "enable_categorical": True}
    lgb_options: dict[str, Any] = {"n_estimators": 20, "verbose": -1, "min_child_samples": 5}
    return {
        "xgb-census": (xgb.XGBClassifier(**xgb_options).fit(typed, target == ">50K"), typed),
        "lgb-census": (lgb.LGBMClassifier(**lgb_options).fit(typed, target), typed),
        "xgb-iris": (xgb.XGBClassifier(**xgb_options).fit(iris, species), iris),
        "lgb-iris": (lgb.LGBMClassifier(**lgb_options).fit(iris, species), iris),
        "xgb-age": (xgb.XGBRegressor(**xgb_options).fit(numbers, frame["age"]), numbers),
        "lgb-age": (lgb.LGBMRegressor(**lgb_options).fit(numbers, frame["age"]), numbers),
    }


MODELS = _models()


@pytest.mark.parametrize("case", sorted(MODELS))
def test_answers_equal_the_library_own(case: str, tmp_path: Path) -> None:
    model, frame = MODELS[case]
    manifest = save_model(model, tmp_path / case, sample=frame)
    library = case.split("-")[0].replace("xgb", "xgboost").replace("lgb", "lightgbm")
    record = manifest.booster
    assert record["library"] == library and record["format"] in ("xgboost-json", "lightgbm-text")
    assert (tmp_path / case / record["file"]).exists()
    assert manifest.compiled["status"] in ("passed", "unsupported")  # test_compiler_boosters.py
    assert read_manifest(tmp_path / case).booster == record
    classifier = manifest.task == "classification"
    runtime, answer = _served(tmp_path / case, frame, classifier)
    assert runtime.kind == library
    assert np.array_equal(answer.predictions, np.asarray(model.predict(frame)))
    if classifier:
        assert list(manifest.labels) == list(model.classes_)
        difference = np.abs(answer.probabilities - model.predict_proba(frame)).max()
        assert difference <= TOLERANCE


def test_a_pipeline_head_is_skops_and_the_booster_native(tmp_path: Path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame, target = census_frame(rows=300)
    columns = ColumnTransformer(
        [("text", OneHotEncoder(handle_unknown="ignore"), ["workclass", "education", "sex"])],
        remainder="passthrough",
    )
    model = lgb.LGBMClassifier(n_estimators=20, verbose=-1, min_child_samples=5)
    pipe = make_pipeline(columns, model).fit(frame, target)
    manifest = save_model(pipe, tmp_path / "pipe", sample=frame)
    assert manifest.input == "frame" and manifest.booster["file"] == "model.txt"
    skops_file = (tmp_path / "pipe" / "model.skops").read_bytes()
    assert b"LGBM" not in skops_file and b"ColumnTransformer" in skops_file
    _, answer = _served(tmp_path / "pipe", frame, True)
    assert np.array_equal(answer.predictions, pipe.predict(frame))
    assert np.abs(answer.probabilities - pipe.predict_proba(frame)).max() <= TOLERANCE


def test_restored_wrappers_and_bare_boosters_are_accepted(tmp_path: Path) -> None:
    model, frame = MODELS["xgb-iris"]
    model.save_model(tmp_path / "m.json")
    restored = xgb.XGBClassifier()
    restored.load_model(tmp_path / "m.json")  # as an MLflow import restores one
    save_model(restored, tmp_path / "xgb", sample=frame)
    _, answer = _served(tmp_path / "xgb", frame, True)
    assert np.array_equal(answer.predictions, model.predict(frame))
    lgbm, frame = MODELS["lgb-age"]
    booster = lgb.Booster(model_str=lgbm.booster_.model_to_string())  # only model.txt at hand
    manifest = save_model(booster, tmp_path / "lgb", sample=frame)
    assert manifest.estimator == "lightgbm.basic.Booster"
    _, answer = _served(tmp_path / "lgb", frame, False)
    assert np.array_equal(answer.predictions, lgbm.predict(frame))


def test_a_changed_booster_file_is_refused(tmp_path: Path) -> None:
    model, frame = MODELS["lgb-iris"]
    save_model(model, tmp_path / "m", sample=frame)
    file = tmp_path / "m" / "model.txt"
    file.write_text(file.read_text().replace("Tree=1", "Tree=7"))
    with pytest.raises(ArtifactError, match="SHA-256 mismatch"):
        admit(tmp_path / "m")


def test_without_the_library_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, frame = MODELS["xgb-iris"]
    save_model(model, tmp_path / "m", sample=frame)
    monkeypatch.setitem(sys.modules, "xgboost", None)  # as if not installed
    with pytest.raises(ArtifactError, match=r"pip install 'flaskserve\[xgboost\]'"):
        admit(tmp_path / "m")


@pytest.fixture(scope="module")
def native_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("native")
    x, y = load_iris(return_X_y=True)
    booster = xgb.train(
        {"objective": "multi:softprob", "num_class": 3}, xgb.DMatrix(x, label=y), 10
    )
    booster.save_model(out / "iris.json")
    booster.save_model(out / "iris.ubj")
    lgbm = lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(x, y)
    lgbm.booster_.save_model(out / "iris.txt")
    return {"json": out / "iris.json", "ubj": out / "iris.ubj", "txt": out / "iris.txt"}


@pytest.mark.parametrize("kind", ["json", "ubj", "txt"])
def test_import_a_native_file(kind: str, native_files: dict[str, Path], tmp_path: Path) -> None:
    file = tmp_path / "model.bin"  # recognised by content, not by name
    file.write_bytes(native_files[kind].read_bytes())
    out = tmp_path / "iris"
    args = ["import", str(file), "--out", str(out), "--class-names", "setosa,versicolor,virginica"]
    if kind != "txt":  # LightGBM names its columns; XGBoost trained on an array does not
        args += ["--features", "sepal_length,sepal_width,petal_length,petal_width"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest.class_names == ("setosa", "versicolor", "virginica")
    runtime = admit(out)
    x, y = load_iris(return_X_y=True)
    answer = runtime.predict(x, proba=True)
    assert (answer.predictions == y).mean() > 0.9


@pytest.mark.parametrize(
    ("kind", "cut", "message"),
    [
        ("json", 0.5, "not a complete XGBoost JSON model"),
        ("ubj", 0.5, "not a readable XGBoost model"),
        ("txt", 0.5, "truncated LightGBM model"),
        ("txt", 0.97, "its parameters end early"),
    ],
    ids=["json", "ubj", "txt", "txt-tail"],
)
def test_import_refuses_a_truncated_file(
    kind: str, cut: float, message: str, native_files: dict[str, Path], tmp_path: Path
) -> None:
    data = native_files[kind].read_bytes()
    file = tmp_path / f"model.{kind}"
    file.write_bytes(data[: int(len(data) * cut)])
    args = ["import", str(file), "--features", "a,b,c,d", "--out", str(tmp_path / "m")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1 and str(file) in lines[0] and message in lines[0], result.output
    assert not (tmp_path / "m").exists()
