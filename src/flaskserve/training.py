"""The tutorial's training, on iris or on a user's CSV file.

Same recipe as the tutorial's ``train.py``: a 70/30 split and a 300-tree random
forest, both seeded with 1234, so iris gives ``Accuracy :  0.9555555555555556``.

A CSV with text columns or empty cells gets the same forest behind a
``ColumnTransformer``: text columns one-hot encoded (a missing cell is a category
of its own, an unseen value is ignored), empty number cells imputed with the
column's median. A CSV of numbers only trains exactly as before.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import ModelManifest
from .errors import DatasetError
from .packaging import save_model

RANDOM_SEED = 1234
N_TREES = 300
TEST_SIZE = 0.3
MAX_CLASSES_FOR_NUMERIC_TARGET = 20
#: the category a missing text cell becomes in a trained pipeline (never listed as one)
MISSING_TEXT = "(missing)"
IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


@dataclass(frozen=True)
class Dataset:
    """Features, a target, and the names that go into the manifest.

    ``features`` is a float64 matrix for numbers only, else a pandas DataFrame
    (text columns, missing cells).
    """

    features: Any
    target: np.ndarray
    feature_names: tuple[str, ...]
    task: str
    class_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TrainingResult:
    """The saved manifest and the text report the CLI prints."""

    manifest: ModelManifest
    report: str


def load_iris_dataset() -> Dataset:
    """scikit-learn's bundled iris (no download), with the tutorial's feature names."""
    from sklearn.datasets import load_iris

    data = load_iris()
    return Dataset(
        data["data"],
        data["target"],
        IRIS_FEATURES,
        "classification",
        tuple(str(n) for n in data["target_names"]),
    )


def read_csv_dataset(path: str | os.PathLike[str], target: str) -> Dataset:
    """Read a CSV with a header row: numeric features and a *target* column.

    A target of text, or of few distinct integers, is a classification; any
    other numeric target is a regression.

    :raises DatasetError: the file, a column or a cell is unusable; the message says where.
    """
    header, rows = _read_csv_rows(Path(path))
    if target not in header:
        raise DatasetError(f"{path}: no column {target!r}; the columns are: {', '.join(header)}")
    target_index = header.index(target)
    feature_names = tuple(h for i, h in enumerate(header) if i != target_index)
    if not feature_names:
        raise DatasetError(f"{path}: no feature columns besides the target {target!r}")
    columns = {
        name: _column([row[i] for _, row in rows], [line for line, _ in rows], f"{path}", name)
        for i, name in enumerate(header)
        if i != target_index
    }
    labels = [row[target_index].strip() for _, row in rows]
    if any(not label for label in labels):
        raise DatasetError(f"{path}: column {target!r} has empty values")
    y, task = _target_values(labels, f"{path}: column {target!r}")
    if all(c.dtype == np.float64 and not np.isnan(c).any() for c in columns.values()):
        return Dataset(np.column_stack(list(columns.values())), y, feature_names, task)
    import pandas as pd

    return Dataset(pd.DataFrame(columns), y, feature_names, task)


def _column(cells: list[str], lines: list[int], path: str, name: str) -> np.ndarray:
    """A float64 column (NaN for an empty cell) if every filled cell is a number, else text."""
    values = [c.strip() for c in cells]
    try:
        numbers = [float(v) if v else math.nan for v in values]
    except ValueError:  # a text column: an empty cell is a missing one
        return np.array([v if v else math.nan for v in values], dtype=object)
    for line, value, number in zip(lines, values, numbers, strict=True):
        if value and not math.isfinite(number):
            raise DatasetError(
                f"{path}, line {line}, column {name!r}: {value!r} is not a finite number"
            )
    if all(math.isnan(n) for n in numbers):
        raise DatasetError(f"{path}: column {name!r} is empty")
    return np.array(numbers, dtype=np.float64)


def train(dataset: Dataset, out: str | os.PathLike[str], *, name: str) -> TrainingResult:
    """Fit the tutorial's forest on a 70/30 split and save it as an artifact at *out*."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        dataset.features, dataset.target, test_size=TEST_SIZE, random_state=RANDOM_SEED
    )
    if dataset.task == "classification":
        model: Any = RandomForestClassifier(n_estimators=N_TREES, random_state=RANDOM_SEED)
    else:
        model = RandomForestRegressor(n_estimators=N_TREES, random_state=RANDOM_SEED)
    if not isinstance(dataset.features, np.ndarray):
        model = _typed_pipeline(dataset.features, model)
    model.fit(x_train, y_train)
    predicted = model.predict(x_test)
    metrics, report = _evaluate(dataset.task, y_test, predicted)
    if dataset.task == "classification":
        names = dataset.class_names or tuple(str(c) for c in model.classes_)
        metrics.update(_per_class(y_test, predicted, model.classes_, names))
    metrics.update(train_rows=len(y_train), test_rows=len(y_test))
    manifest = save_model(
        model,
        out,
        sample=x_train,
        feature_names=dataset.feature_names,
        class_names=dataset.class_names,
        name=name,
        metrics=metrics,
        holdout=x_test,
    )
    return TrainingResult(manifest, report)


def _typed_pipeline(frame: Any, forest: Any) -> Any:
    """The forest behind one-hot text columns and median-imputed number columns."""
    from pandas.api.types import is_numeric_dtype
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    text = [str(c) for c in frame.columns if not is_numeric_dtype(frame[c].dtype)]
    numbers = [str(c) for c in frame.columns if is_numeric_dtype(frame[c].dtype)]
    columns = ColumnTransformer(
        [
            ("text", _one_hot(), text),
            ("numbers", SimpleImputer(strategy="median"), numbers),
        ]
    )
    return Pipeline([("columns", columns), ("forest", forest)])


def _one_hot() -> Any:
    """One-hot text where a missing cell is a category of its own, an unseen value ignored.

    The gap is filled with a category before encoding, rather than left for the encoder
    to take NaN as one: the same answers, and a pipeline the compiled runtime can take.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    return make_pipeline(
        SimpleImputer(strategy="constant", fill_value=MISSING_TEXT),
        OneHotEncoder(handle_unknown="ignore"),
    )


def _per_class(
    expected: np.ndarray, predicted: np.ndarray, labels: np.ndarray, names: tuple[str, ...]
) -> dict[str, Any]:
    """The classification report per class and the confusion matrix, for the model card.

    ``confusion_matrix[i][j]`` counts held-out rows of class ``i`` predicted as ``j``,
    both in the order of the manifest's classes.
    """
    from sklearn import metrics as m

    precision, recall, f1, support = m.precision_recall_fscore_support(
        expected, predicted, labels=labels, zero_division=0
    )
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
        for name, p, r, f, n in zip(names, precision, recall, f1, support, strict=True)
    }
    matrix = m.confusion_matrix(expected, predicted, labels=labels)
    return {"per_class": per_class, "confusion_matrix": matrix.tolist()}


def _evaluate(task: str, expected: np.ndarray, predicted: np.ndarray) -> tuple[dict[str, Any], str]:
    from sklearn import metrics as m

    if task == "classification":
        accuracy = m.accuracy_score(expected, predicted)
        report = m.classification_report(expected, predicted, zero_division=0)
        f1 = m.f1_score(expected, predicted, average="macro", zero_division=0)
        return {
            "accuracy": float(accuracy),
            "f1_macro": float(f1),
        }, f"Accuracy :  {accuracy}\n{report}"
    r2 = float(m.r2_score(expected, predicted)) if len(expected) > 1 else float("nan")
    mae = float(m.mean_absolute_error(expected, predicted))
    rmse = math.sqrt(float(m.mean_squared_error(expected, predicted)))
    scores = {"r2": r2 if math.isfinite(r2) else None, "mae": mae, "rmse": rmse}
    return scores, f"R2 :  {r2}\nMAE :  {mae}\nRMSE :  {rmse}\n"


def _read_csv_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the non-blank rows, each with the line it ends on (for messages)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            table = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path}: not a readable CSV file ({e})") from None
    if not table:
        raise DatasetError(f"{path}: empty file; expected a header row and data rows")
    header = [h.strip() for h in table[0][1]]
    if any(not h for h in header) or len(set(header)) != len(header):
        raise DatasetError(f"{path}: the header row must name every column once: {table[0][1]}")
    rows = table[1:]
    for line, row in rows:
        if len(row) != len(header):
            raise DatasetError(
                f"{path}, line {line}: expected {len(header)} fields, got {len(row)}"
            )
    if len(rows) < 10:
        raise DatasetError(
            f"{path}: {len(rows)} data rows; at least 10 are needed to train and test"
        )
    return header, rows


def _target_values(labels: list[str], where: str) -> tuple[np.ndarray, str]:
    try:
        numbers = np.array([float(label) for label in labels])
    except ValueError:
        return np.array(labels), "classification"
    if not np.isfinite(numbers).all():
        raise DatasetError(f"{where} has non-finite values (nan or inf)")
    distinct = np.unique(numbers)
    if np.all(distinct == np.round(distinct)) and len(distinct) <= MAX_CLASSES_FOR_NUMERIC_TARGET:
        return numbers.astype(np.int64), "classification"
    return numbers, "regression"
