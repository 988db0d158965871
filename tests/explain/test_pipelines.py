"""Pipelines: contributions of the columns a step derived from one input are summed back to it,
and a model or step with no exact explanation is refused, saying why."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.decomposition import PCA
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler

from census import FEATURES, as_categories, booster, hist_gradient_boosting
from components import require_module
from flaskserve import save_model
from flaskserve.artifact import read_manifest
from flaskserve.explain import NotExplainable, build_explainer
from flaskserve.explain.columns import column_map
from flaskserve.schema import rows_input

shap = require_module("shap", "the reference explanations are checked against")

TEXT = ["workclass", "education", "sex"]
NUMBERS = ["age", "hours_per_week", "capital_gain"]
IRIS_X, IRIS_Y = load_iris(return_X_y=True)


def _forest_pipeline(frame: Any, target: Any) -> Any:
    text = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="(missing)"),
        OneHotEncoder(handle_unknown="ignore", drop="if_binary"),
    )
    numbers = SimpleImputer(strategy="median", add_indicator=True)
    columns = ColumnTransformer([("text", text, TEXT), ("numbers", numbers, NUMBERS)])
    forest = RandomForestClassifier(n_estimators=40, random_state=0)
    return make_pipeline(columns, forest).fit(frame, target)


def _summed_back(values: np.ndarray, pipeline: Any) -> np.ndarray:
    """shap's values over the one-hot and indicator columns, summed by their names' input."""
    names = pipeline[:-1].get_feature_names_out()
    out = np.zeros((values.shape[0], len(FEATURES), values.shape[2]))
    for position, name in enumerate(names):
        _, rest = name.split("__", 1)
        if rest.startswith("missingindicator_"):
            column = rest.removeprefix("missingindicator_")
        else:
            column = next(c for c in FEATURES if rest == c or rest.startswith(c + "_"))
        out[:, FEATURES.index(column)] += values[:, position]
    return out


def _explainer(model: Any, sample: Any, tmp_path: Path) -> Any:
    save_model(model, tmp_path / "m", sample=sample, compile=False)
    return build_explainer(tmp_path / "m", read_manifest(tmp_path / "m"))


def _table(frame: Any, path: Path) -> Any:
    """The rows as the server decodes them: a Table with the manifest's typing."""
    manifest = read_manifest(path)
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    cells = [[r[f.name] for f in manifest.features] for r in records]
    return rows_input(manifest, cells, "row {}: ".format)


def test_a_forest_pipeline_is_explained_per_input_column(census: Any, tmp_path: Path) -> None:
    frame, target = census
    pipeline = _forest_pipeline(frame, target)
    explainer = _explainer(pipeline, frame, tmp_path)
    rows = frame.iloc[:200]
    explanation = explainer.explain(_table(rows, tmp_path / "m"))
    assert explanation.columns == FEATURES and explanation.space == "probability"
    seen = pipeline[:-1].transform(rows).astype(np.float32).astype(np.float64)
    values = np.asarray(shap.TreeExplainer(pipeline[-1]).shap_values(seen))
    reference = _summed_back(values, pipeline)
    np.testing.assert_allclose(explanation.contributions, reference, rtol=0, atol=1e-9)
    np.testing.assert_allclose(explanation.outputs, pipeline.predict_proba(rows), atol=1e-6)


def test_a_linear_pipeline_sums_its_one_hot_columns(
    census: Any, census_pipeline: Any, census_dir: Path
) -> None:
    frame, _ = census
    explainer = build_explainer(census_dir, read_manifest(census_dir))
    rows = frame.iloc[:100]
    explanation = explainer.explain(_table(rows, census_dir))
    assert explanation.space == "log_odds" and explanation.classes == ("<=50K", ">50K")
    head, last = census_pipeline[:-1], census_pipeline[-1]
    masker = shap.maskers.Independent(head.transform(frame), max_samples=len(frame))
    values = shap.LinearExplainer(last, masker).shap_values(head.transform(rows))
    one = _summed_back(np.asarray(values)[:, :, None], census_pipeline)
    np.testing.assert_allclose(explanation.contributions[:, :, 1:], one, rtol=0, atol=1e-9)
    margin = census_pipeline.decision_function(rows)
    np.testing.assert_allclose(explanation.outputs[:, 1], margin, rtol=0, atol=1e-9)
    np.testing.assert_allclose(explanation.outputs[:, 0], -margin, rtol=0, atol=1e-9)


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_a_booster_on_category_columns_is_explained_by_its_library(
    census: Any, library: str, tmp_path: Path
) -> None:
    require_module(library, f"{library} models are explained")
    frame, target = census
    typed = as_categories(frame)
    model = booster(library, typed, target)
    explainer = _explainer(model, typed, tmp_path)
    explanation = explainer.explain(_table(frame.iloc[:150], tmp_path / "m"))
    assert explanation.space == "log_odds" and explanation.columns == FEATURES
    kind = "output_margin" if library == "xgboost" else "raw_score"
    margin = np.asarray(model.predict(typed.iloc[:150], **{kind: True}), dtype=np.float64)
    scale = np.maximum(1.0, np.abs(margin))
    assert np.max(np.abs(explanation.outputs[:, 1] - margin) / scale) <= 1e-6


# ---------------------------------------------------------------- refusals


def _refused(model: Any, sample: Any, tmp_path: Path) -> str:
    manifest = save_model(model, tmp_path / "m", sample=sample, compile=False)
    with pytest.raises(NotExplainable) as caught:
        build_explainer(tmp_path / "m", read_manifest(tmp_path / "m"))
    assert manifest.explanation == {"reason": caught.value.message}, "the card says why too"
    assert caught.value.status_code == 501
    return caught.value.message


def test_a_model_with_no_exact_method_is_refused(tmp_path: Path) -> None:
    message = _refused(KNeighborsClassifier().fit(IRIS_X, IRIS_Y), IRIS_X, tmp_path)
    assert message.startswith("KNeighborsClassifier has no exact explanation")
    assert "never by approximation" in message


def test_a_multiclass_gradient_boosting_classifier_is_refused(tmp_path: Path) -> None:
    model = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(IRIS_X, IRIS_Y)
    assert "multiclass GradientBoostingClassifier" in _refused(model, IRIS_X, tmp_path)


def test_native_categorical_splits_are_refused(census: Any, tmp_path: Path) -> None:
    frame, target = census
    model = hist_gradient_boosting(frame, target)
    assert "categorical splits" in _refused(model, as_categories(frame), tmp_path)


@pytest.mark.parametrize(
    "step", [PolynomialFeatures(degree=2), PCA(n_components=2)], ids=["polynomial", "pca"]
)
def test_a_step_that_mixes_columns_is_refused(step: Any, tmp_path: Path) -> None:
    model = make_pipeline(step, LogisticRegression(max_iter=500)).fit(IRIS_X, IRIS_Y)
    message = _refused(model, IRIS_X, tmp_path)
    assert f"the pipeline step {type(step).__name__} is not one whose columns" in message


def test_a_linear_model_saved_without_training_rows_is_refused(tmp_path: Path) -> None:
    model = LogisticRegression(max_iter=500).fit(IRIS_X, IRIS_Y)
    save_model(model, tmp_path / "m", compile=False)
    record = read_manifest(tmp_path / "m").explanation
    assert record["reason"].endswith("save it with sample=<training rows>")
    with pytest.raises(NotExplainable, match="training rows' mean"):
        build_explainer(tmp_path / "m", read_manifest(tmp_path / "m"))


def test_without_shap_a_tree_model_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(IRIS_X, IRIS_Y)
    save_model(model, tmp_path / "m", sample=IRIS_X, compile=False)
    monkeypatch.setitem(__import__("sys").modules, "shap", None)  # as if not installed
    with pytest.raises(NotExplainable, match=r"pip install 'flaskserve\[explain\]'"):
        build_explainer(tmp_path / "m", read_manifest(tmp_path / "m"))


# ---------------------------------------------------------------- the column map


def test_the_column_map_of_encoders_and_imputers(census: Any) -> None:
    frame, target = census
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = _forest_pipeline(frame, target)
    mapped = column_map(pipeline[:-1], len(FEATURES))
    names = pipeline[:-1].get_feature_names_out()
    assert mapped.shape == (len(names), len(FEATURES))
    assert (mapped.sum(axis=1) == 1).all(), "each produced column has exactly one input"
    sex = mapped[:, FEATURES.index("sex")]
    assert [n for n, m in zip(names, sex, strict=True) if m] == ["text__sex_Male"]  # if_binary
    hours = mapped[:, FEATURES.index("hours_per_week")]
    chosen = [n for n, m in zip(names, hours, strict=True) if m]
    assert chosen == ["numbers__hours_per_week", "numbers__missingindicator_hours_per_week"]


def test_infrequent_categories_and_remainder_columns_are_mapped(census: Any) -> None:
    frame, _ = census
    encoder = OneHotEncoder(min_frequency=100, handle_unknown="infrequent_if_exist")
    columns = ColumnTransformer(
        [("text", encoder, ["education", "sex"])], remainder=StandardScaler()
    ).fit(frame[["education", "age", "sex", "capital_gain"]])
    mapped = column_map(columns, 4)
    names = list(columns.get_feature_names_out())
    assert mapped.shape == (len(names), 4) and (mapped.sum(axis=1) == 1).all()
    owner = {
        n: ["education", "age", "sex", "capital_gain"][int(np.argmax(r))]
        for n, r in zip(names, mapped, strict=True)
    }
    assert owner["remainder__age"] == "age" and owner["remainder__capital_gain"] == "capital_gain"
    assert all(owner[n] == "education" for n in names if n.startswith("text__education_"))
