"""Tests for flaskserve.training: reading CSV data sets and training on them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import flaskserve
from flaskserve.errors import DatasetError
from flaskserve.training import IRIS_FEATURES, load_iris_dataset, read_csv_dataset, train


def _csv(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _rows(n: int, target: str = "{i}") -> str:
    """*n* data rows of two features, then a target computed from the row number *i*."""
    return "".join(f"{i * 0.5},{10 - i},{target.format(i=i, c=i % 3)}\n" for i in range(n))


GOOD_HEADER = "a,b,y\n"


def test_iris_dataset() -> None:
    dataset = load_iris_dataset()
    assert dataset.feature_names == IRIS_FEATURES
    assert dataset.features.shape == (150, 4)
    assert dataset.task == "classification"
    assert dataset.class_names == ("setosa", "versicolor", "virginica")


def test_numeric_target_with_few_integers_is_a_classification(tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD_HEADER + _rows(12, "{c}"))
    dataset = read_csv_dataset(path, "y")
    assert dataset.task == "classification"
    assert dataset.target.dtype == np.int64
    np.testing.assert_array_equal(dataset.target, [i % 3 for i in range(12)])
    assert dataset.feature_names == ("a", "b")
    assert dataset.features.dtype == np.float64
    np.testing.assert_array_equal(dataset.features[3], [1.5, 7.0])
    assert dataset.class_names is None


def test_integer_target_written_as_floats_is_a_classification(tmp_path: Path) -> None:
    dataset = read_csv_dataset(_csv(tmp_path, GOOD_HEADER + _rows(12, "{c}.0")), "y")
    assert dataset.task == "classification"
    assert dataset.target.dtype == np.int64


def test_text_target_is_a_classification(tmp_path: Path) -> None:
    text = GOOD_HEADER + _rows(12, "kind-{c}")
    dataset = read_csv_dataset(_csv(tmp_path, text), "y")
    assert dataset.task == "classification"
    assert dataset.target.dtype.kind == "U"
    assert list(dataset.target[:4]) == ["kind-0", "kind-1", "kind-2", "kind-0"]


def test_float_target_is_a_regression(tmp_path: Path) -> None:
    dataset = read_csv_dataset(_csv(tmp_path, GOOD_HEADER + _rows(12, "{i}.25")), "y")
    assert dataset.task == "regression"
    assert dataset.target.dtype == np.float64
    assert dataset.target[1] == 1.25


def test_many_distinct_integers_are_a_regression(tmp_path: Path) -> None:
    dataset = read_csv_dataset(_csv(tmp_path, GOOD_HEADER + _rows(30, "{i}")), "y")
    assert dataset.task == "regression"


def test_target_column_may_be_anywhere(tmp_path: Path) -> None:
    text = "y,a,b\n" + "".join(f"{i % 2},{i},{i * 2}\n" for i in range(10))
    dataset = read_csv_dataset(_csv(tmp_path, text), "y")
    assert dataset.feature_names == ("a", "b")
    np.testing.assert_array_equal(dataset.features[4], [4.0, 8.0])
    np.testing.assert_array_equal(dataset.target[:3], [0, 1, 0])


def test_whitespace_bom_and_blank_lines_are_tolerated(tmp_path: Path) -> None:
    text = "\ufeff a , b , y \n" + "".join(f" {i} , {i + 1} , {i % 2} \n" for i in range(10)) + "\n"
    dataset = read_csv_dataset(_csv(tmp_path, text), "y")
    assert dataset.feature_names == ("a", "b")
    assert dataset.features.shape == (10, 2)


def test_header_only_counts_rows(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="0 data rows; at least 10 are needed"):
        read_csv_dataset(_csv(tmp_path, GOOD_HEADER), "y")


@pytest.mark.parametrize(
    ("text", "target", "message"),
    [
        ("", "y", "empty file; expected a header row and data rows"),
        ("\n\n  \n", "y", "empty file"),
        (GOOD_HEADER + _rows(9), "y", "9 data rows; at least 10 are needed"),
        ("a,a,y\n" + _rows(12), "y", "the header row must name every column once"),
        ("a,,y\n" + _rows(12), "y", "the header row must name every column once"),
        (
            GOOD_HEADER + _rows(4) + "1,2\n" + _rows(8),
            "y",
            "line 6: expected 3 fields, got 2",
        ),
        (
            GOOD_HEADER + _rows(12) + "1,2,3,4\n",
            "y",
            "line 14: expected 3 fields, got 4",
        ),
        (
            GOOD_HEADER + _rows(12),
            "label",
            "no column 'label'; the columns are: a, b, y",
        ),
        ("y\n" + "1\n" * 12, "y", "no feature columns besides the target 'y'"),
        (GOOD_HEADER.replace("a,", "a,e,") + "1,,2,3\n" * 12, "y", "column 'e' is empty"),
        (
            GOOD_HEADER + _rows(10) + "nan,3,1\n",
            "y",
            "line 12, column 'a': 'nan' is not a finite number",
        ),
        (
            GOOD_HEADER + "1,inf,1\n" + _rows(10),
            "y",
            "line 2, column 'b': 'inf' is not a finite number",
        ),
        (
            GOOD_HEADER + "1,-Infinity,1\n" + _rows(10),
            "y",
            "line 2, column 'b': '-Infinity' is not a finite number",
        ),
        (GOOD_HEADER + _rows(10) + "1,2, \n", "y", "column 'y' has empty values"),
    ],
    ids=[
        "empty-file",
        "blank-lines-only",
        "too-few-rows",
        "duplicate-header",
        "empty-header-name",
        "ragged-short-row",
        "ragged-long-row",
        "missing-target",
        "target-only",
        "all-empty-feature",
        "nan-feature",
        "inf-feature",
        "minus-infinity-feature",
        "empty-target",
    ],
)
def test_bad_csv(text: str, target: str, message: str, tmp_path: Path) -> None:
    path = _csv(tmp_path, text)
    with pytest.raises(DatasetError, match=re.escape(message)) as caught:
        read_csv_dataset(path, target)
    assert caught.value.message.startswith(str(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        read_csv_dataset(tmp_path / "absent.csv", "y")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((GOOD_HEADER + _rows(10) + "1,2,caf\xe9\n").encode("latin-1"))
    with pytest.raises(DatasetError, match="not a readable CSV file"):
        read_csv_dataset(path, "y")


def test_non_finite_target_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="non-finite"):
        read_csv_dataset(_csv(tmp_path, GOOD_HEADER + _rows(10) + "1,2,nan\n"), "y")


def test_non_finite_target_names_the_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD_HEADER + _rows(10) + "1,2,inf\n")
    with pytest.raises(DatasetError, match=re.escape(f"{path}: column 'y'")):
        read_csv_dataset(path, "y")


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    text = GOOD_HEADER + _rows(3) + "\n" + "1,inf,1\n" + _rows(8)
    with pytest.raises(DatasetError, match=re.escape("line 6, column 'b'")):
        read_csv_dataset(_csv(tmp_path, text), "y")


def test_train_regression_csv(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 10, 40)
    b = rng.uniform(0, 5, 40)
    y = 3 * a - 2 * b + rng.normal(0, 0.1, 40)
    lines = [f"{a_:.4f},{b_:.4f},{y_:.4f}" for a_, b_, y_ in zip(a, b, y, strict=True)]
    path = _csv(tmp_path, "a,b,y\n" + "\n".join(lines) + "\n")

    result = train(read_csv_dataset(path, "y"), tmp_path / "reg", name="linear")

    manifest = result.manifest
    assert manifest.task == "regression"
    assert manifest.name == "linear"
    assert manifest.labels == ()
    assert manifest.class_names == ()
    assert manifest.feature_names == ("a", "b")
    assert set(manifest.metrics) == {"r2", "mae", "rmse", "train_rows", "test_rows"}
    assert manifest.metrics["train_rows"] == 28
    assert manifest.metrics["test_rows"] == 12
    assert 0.5 < manifest.metrics["r2"] <= 1.0
    assert 0 < manifest.metrics["mae"] <= manifest.metrics["rmse"]
    assert result.report.startswith(f"R2 :  {manifest.metrics['r2']}\nMAE :  ")
    assert "RMSE :  " in result.report

    loaded = flaskserve.load_model(tmp_path / "reg")
    assert loaded.manifest == manifest
    assert type(loaded.estimator).__name__ == "RandomForestRegressor"
    prediction = loaded.estimator.predict(np.array([[5.0, 2.5]]))
    assert abs(prediction[0] - 10.0) < 3.0
