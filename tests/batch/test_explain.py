"""``flaskserve batch --explain``: each row's exact explanation, as ``/explain`` gives it.

Every scored row gets ``base_value``, one ``contrib_<column>`` per input column and
``explained_output``, toward its predicted class. They must add up, equal the
model's own output for that class (the forest's probability, the logistic
pipeline's log-odds, the regressor's value) and the in-process explainer's values.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import KNeighborsClassifier

from assertions import assert_refused
from flaskserve.artifact import read_manifest
from flaskserve.batch import engine
from flaskserve.batch.engine import _prepare
from flaskserve.batch.options import BatchOptions
from flaskserve.batch.scoring import score_piece
from flaskserve.cli import main
from flaskserve.explain import build_explainer
from flaskserve.packaging import save_model
from flaskserve.schema import rows_input

Invoke = Callable[..., Result]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CONTRIBUTIONS = [f"contrib_{name}" for name in FEATURES]


def iris_rows(model_dir: Path, rows: int, seed: int) -> np.ndarray:
    """*rows* rows within the manifest's ranges, two decimals each."""
    features = read_manifest(model_dir).features
    low = np.array([f.min for f in features], dtype=np.float64)
    high = np.array([f.max for f in features], dtype=np.float64)
    return np.round(np.random.default_rng(seed).uniform(low, high, size=(rows, 4)), 2)


def write_rows(path: Path, x: np.ndarray, ids: list[str] | None = None) -> Path:
    """*x* as CSV or Parquet (by the suffix), an ``id`` column first with *ids*."""
    columns = {"id": pa.array(ids)} if ids is not None else {}
    table = pa.table(columns | {name: x[:, j] for j, name in enumerate(FEATURES)})
    if path.suffix == ".csv":
        pcsv.write_csv(table, path)  # shortest round-trip text: read back, the same doubles
    else:
        pq.write_table(table, path, row_group_size=16)
    return path


def read_table(path: Path) -> pa.Table:
    return pq.read_table(path) if path.suffix == ".parquet" else pcsv.read_csv(path)


@pytest.fixture()
def invoke() -> Invoke:
    runner = CliRunner()
    return lambda *args: runner.invoke(main, ["batch", *map(str, args)])


@pytest.fixture(scope="module")
def knn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model with no exact explanation."""
    x, y = load_iris(return_X_y=True)
    out = tmp_path_factory.mktemp("models") / "knn"
    model = KNeighborsClassifier().fit(x, y)
    save_model(model, out, sample=x, feature_names=FEATURES, compile=False)
    return out


def explained(table: pa.Table, columns: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``base_value``, the contributions ``(rows, columns)`` and ``explained_output``."""
    contributions = np.column_stack([table.column(c).to_numpy() for c in columns])
    return (
        table.column("base_value").to_numpy(),
        contributions,
        table.column("explained_output").to_numpy(),
    )


def assert_adds_up(table: pa.Table, columns: list[str]) -> np.ndarray:
    base, contributions, output = explained(table, columns)
    np.testing.assert_allclose(base + contributions.sum(axis=1), output, rtol=0, atol=1e-9)
    return output


@pytest.mark.parametrize(
    ("source", "target"),
    [("in.csv", "out.csv"), ("in.parquet", "out.parquet")],
    ids=["csv", "parquet"],
)
def test_the_forest_explains_the_probability_of_each_predicted_class(
    invoke: Invoke, model_dir: Path, tmp_path: Path, source: str, target: str
) -> None:
    x = iris_rows(model_dir, 60, seed=11)
    path = write_rows(tmp_path / source, x, [f"r{i}" for i in range(60)])

    result = invoke(
        model_dir, path, "-o", tmp_path / target, "--id-column", "id", "--proba", "--explain"
    )

    assert result.exit_code == 0, result.output
    assert result.stderr.rstrip().endswith("; contributions in probability space")
    table = read_table(tmp_path / target)
    proba = [f"proba_{c}" for c in ("setosa", "versicolor", "virginica")]
    explanation = ["base_value", *CONTRIBUTIONS, "explained_output"]
    assert table.column_names == ["id", "prediction", *proba, *explanation]
    output = assert_adds_up(table, CONTRIBUTIONS)
    predicted = np.array(table.column("prediction").to_pylist())
    probabilities = np.column_stack([table.column(c).to_numpy() for c in proba])
    chosen = probabilities[np.arange(60), predicted]  # the labels are 0, 1, 2
    np.testing.assert_allclose(output, chosen, rtol=0, atol=1e-6)  # ONNX's float32 proba
    reference = build_explainer(model_dir, read_manifest(model_dir)).explain(x)
    base, contributions, _ = explained(table, CONTRIBUTIONS)
    np.testing.assert_array_equal(base, reference.base_values[predicted])
    np.testing.assert_array_equal(
        contributions, reference.contributions[np.arange(60), :, predicted]
    )


@pytest.mark.parametrize("target", ["out.csv", "out.parquet"])
def test_chunking_does_not_change_the_explanations(
    invoke: Invoke, model_dir: Path, tmp_path: Path, target: str
) -> None:
    path = write_rows(tmp_path / "in.csv", iris_rows(model_dir, 50, seed=12))
    whole, chunked = tmp_path / "whole", tmp_path / "chunked"
    whole.mkdir()
    chunked.mkdir()

    assert invoke(model_dir, path, "-o", whole / target, "--explain").exit_code == 0
    result = invoke(model_dir, path, "-o", chunked / target, "--explain", "--chunk-rows", 7)

    assert result.exit_code == 0, result.output
    assert (chunked / target).read_bytes() == (whole / target).read_bytes()


def _census_rows(census: Any) -> pd.DataFrame:
    rows = census[0].iloc[:150].copy()
    rows.insert(0, "id", [f"r{i:03d}" for i in range(150)])
    return rows


@pytest.mark.parametrize("name", ["in.csv", "in.parquet"])
def test_a_typed_pipeline_explains_its_log_odds_per_input_column(
    invoke: Invoke,
    census_dir: Path,
    census_pipeline: Any,
    census: Any,
    tmp_path: Path,
    name: str,
) -> None:
    rows = _census_rows(census)
    path = tmp_path / name
    if name.endswith(".csv"):
        rows.to_csv(path, index=False)
    else:
        rows.to_parquet(path, index=False, row_group_size=64)
    out = tmp_path / "out.parquet"

    result = invoke(
        census_dir, path, "-o", out, "--id-column", "id", "--explain", "--chunk-rows", 64
    )

    assert result.exit_code == 0, result.output
    assert "150 scored, 0 rejected" in result.stderr
    assert "contributions in log_odds space" in result.stderr
    features = rows.drop(columns="id")
    columns = [f"contrib_{c}" for c in features.columns]
    table = read_table(out)
    output = assert_adds_up(table, columns)
    predicted = np.array(table.column("prediction").to_pylist())
    margin = census_pipeline.decision_function(features)  # toward classes_[1]
    toward = np.where(predicted == census_pipeline.classes_[1], margin, -margin)
    np.testing.assert_allclose(output, toward, rtol=0, atol=1e-6)
    manifest = read_manifest(census_dir)
    records = features.astype(object).where(features.notna(), None).to_dict(orient="records")
    typed = rows_input(manifest, [[r[f.name] for f in manifest.features] for r in records], str)
    reference = build_explainer(census_dir, manifest).explain(typed)
    chosen = [reference.classes.index(p) for p in predicted.tolist()]
    base, contributions, _ = explained(table, columns)
    np.testing.assert_allclose(base, reference.base_values[chosen], rtol=0, atol=1e-12)
    expected = reference.contributions[np.arange(150), :, chosen]
    np.testing.assert_allclose(contributions, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["in.csv", "in.parquet"])
def test_a_dask_worker_explains_the_pieces_as_the_local_engine(
    census_dir: Path, census: Any, tmp_path: Path, name: str
) -> None:
    """The Dask engine's task, :func:`score_piece`, run here on each piece of a split source."""
    rows = _census_rows(census)
    path = tmp_path / name
    if name.endswith(".csv"):
        rows.to_csv(path, index=False)
    else:
        rows.to_parquet(path, index=False, row_group_size=64)
    out = tmp_path / "out.parquet"
    options = BatchOptions(census_dir, path, out, explain=True, chunk_rows=40)
    local = engine.run_batch(options)
    split = BatchOptions(census_dir, path, out, explain=True, chunk_rows=40, engine="dask")
    source, job = _prepare(split)
    assert len(source.pieces) > 1 and job.explain

    results = [r for piece in source.pieces for r in score_piece(piece, job)]

    assert local.space == "log_odds"
    assert pa.concat_tables([r.output for r in results]).equals(read_table(out))


def test_a_regressor_explains_its_value(invoke: Invoke, tmp_path: Path) -> None:
    x = np.random.default_rng(13).uniform(0, 1, size=(40, 4))
    save_model(
        LinearRegression().fit(x, x @ [1.0, -2.0, 3.0, 0.5]),
        tmp_path / "linear",
        sample=x,
        feature_names=FEATURES,
        compile=False,
    )
    path = write_rows(tmp_path / "in.csv", np.round(x[:10], 3))

    result = invoke(tmp_path / "linear", path, "-o", tmp_path / "out.csv", "--explain")

    assert result.exit_code == 0, result.output
    assert "contributions in raw space" in result.stderr
    table = read_table(tmp_path / "out.csv")
    output = assert_adds_up(table, CONTRIBUTIONS)
    np.testing.assert_allclose(output, table.column("prediction").to_numpy(), rtol=0, atol=1e-9)


@pytest.mark.parametrize("engine_name", ["local", "dask"])
def test_a_model_with_no_exact_explanation_is_refused_before_scoring(
    invoke: Invoke,
    knn_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    engine_name: str,
) -> None:
    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("scored a chunk of a model that cannot be explained")

    monkeypatch.setattr(engine, "load_checked_runtime", never)
    monkeypatch.setattr(engine, "_results", never)
    path = write_rows(tmp_path / "in.csv", iris_rows(knn_dir, 5, seed=14))
    (tmp_path / "out.csv").write_bytes(b"the previous run's output")

    result = invoke(knn_dir, path, "-o", tmp_path / "out.csv", "--explain", "--engine", engine_name)

    assert_refused(result, "--explain: KNeighborsClassifier has no exact explanation")
    assert (tmp_path / "out.csv").read_bytes() == b"the previous run's output"
    assert not (tmp_path / "out.csv.rejects.csv").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_an_id_column_named_like_an_explanation_column_is_refused(
    invoke: Invoke, model_dir: Path, tmp_path: Path
) -> None:
    path = write_rows(tmp_path / "in.csv", iris_rows(model_dir, 3, seed=15), ["a", "b", "c"])
    path.write_text(path.read_text().replace('"id"', '"base_value"', 1))

    plain = invoke(model_dir, path, "-o", tmp_path / "plain.csv", "--id-column", "base_value")
    result = invoke(
        model_dir, path, "-o", tmp_path / "out.csv", "--id-column", "base_value", "--explain"
    )

    assert plain.exit_code == 0, plain.output
    assert_refused(result, "--id-column 'base_value': the output has its own column so named")
