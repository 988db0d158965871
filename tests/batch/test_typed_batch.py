"""``flaskserve batch`` on a model with text columns and missing cells, files written by pandas.

CSV from ``DataFrame.to_csv`` (a missing cell is empty), Parquet from
``DataFrame.to_parquet`` (text as ``large_string`` or dictionary-encoded
``category``, missing cells as nulls). The scored rows must equal the
pipeline's own answers on the same DataFrame; bad rows are rejected one by one,
each reason naming its column.
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

from census import as_categories, strict_pipeline
from flaskserve.batch.engine import _prepare
from flaskserve.batch.options import BatchOptions
from flaskserve.batch.scoring import score_piece
from flaskserve.cli import main
from flaskserve.packaging import save_model

Invoke = Callable[..., Result]
ROWS = 200


@pytest.fixture()
def invoke() -> Invoke:
    runner = CliRunner()
    return lambda *args: runner.invoke(main, ["batch", *map(str, args)])


@pytest.fixture(scope="module")
def frame(census: Any) -> pd.DataFrame:
    """The census rows with an id column, missing text and number cells among them."""
    rows = census[0].iloc[:ROWS].copy()
    assert rows.isna().any().any()
    rows.insert(0, "id", [f"r{i:03d}" for i in range(ROWS)])
    return rows


@pytest.fixture(scope="module")
def strict_dir(tmp_path_factory: pytest.TempPathFactory, census: Any) -> Path:
    model, sample = strict_pipeline(*census)
    out = tmp_path_factory.mktemp("models") / "strict"
    save_model(model, out, sample=sample)
    return out


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False, row_group_size=64)
    return path


def _read(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    options = pcsv.ConvertOptions(column_types={"id": pa.string(), "reason": pa.string()})
    return pcsv.read_csv(path, convert_options=options)


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="id")


def _assert_scored(
    path: Path, expected: pd.DataFrame, pipeline: Any, *, atol: float = 1e-9
) -> None:
    table = _read(path)
    assert table.column("id").to_pylist() == expected["id"].tolist()
    features = _features(expected)
    assert table.column("prediction").to_pylist() == pipeline.predict(features).tolist()
    proba = np.column_stack([table.column(f"proba_{c}").to_numpy() for c in pipeline.classes_])
    np.testing.assert_allclose(proba, pipeline.predict_proba(features), rtol=0, atol=atol)


@pytest.mark.parametrize(
    ("name", "categories"),
    [("in.csv", False), ("in.parquet", False), ("in.parquet", True)],
    ids=["csv", "parquet", "parquet-category"],
)
def test_predictions_are_the_pipelines(
    invoke: Invoke,
    census_dir: Path,
    census_pipeline: Any,
    frame: pd.DataFrame,
    tmp_path: Path,
    name: str,
    categories: bool,
) -> None:
    written = as_categories(frame) if categories else frame
    path = _write(written, tmp_path / name)
    out = tmp_path / "out.csv"

    result = invoke(
        census_dir,
        path,
        "-o",
        out,
        "--id-column",
        "id",
        "--proba",
        "--chunk-rows",
        64,
        "--runtime",
        "sklearn",
    )

    assert result.exit_code == 0, result.output
    assert f"read {ROWS} rows: {ROWS} scored, 0 rejected" in result.stderr
    _assert_scored(out, frame, census_pipeline)


def test_csv_text_that_looks_like_numbers_stays_text(
    invoke: Invoke, census_dir: Path, census_pipeline: Any, frame: pd.DataFrame, tmp_path: Path
) -> None:
    rows = frame.iloc[:10].copy()
    rows["education"] = ["12", "3.5", *rows["education"].iloc[2:]]  # unknown text, ignored
    rows.loc[rows.index[4], "workclass"] = 'Self-emp, "inc"'  # quoted by pandas
    path = _write(rows, tmp_path / "in.csv")

    result = invoke(
        census_dir, path, "-o", tmp_path / "out.parquet", "--id-column", "id", "--proba"
    )

    assert result.exit_code == 0, result.output
    # --runtime auto: the ONNX model, which passed its parity gate, computes in float32
    _assert_scored(tmp_path / "out.parquet", rows, census_pipeline, atol=1e-6)


def test_csv_bad_cells_are_rejected_by_row(
    invoke: Invoke, census_dir: Path, census_pipeline: Any, frame: pd.DataFrame, tmp_path: Path
) -> None:
    rows = frame.iloc[:20].astype(object)
    rows.iloc[3, rows.columns.get_loc("age")] = "old"
    rows.iloc[7, rows.columns.get_loc("hours_per_week")] = "abc"
    rows.iloc[7, rows.columns.get_loc("capital_gain")] = "inf"
    path = _write(rows, tmp_path / "in.csv")

    result = invoke(
        census_dir,
        path,
        "-o",
        tmp_path / "out.csv",
        "--id-column",
        "id",
        "--proba",
        "--runtime",
        "sklearn",
    )

    assert result.exit_code == 0, result.output
    assert "read 20 rows: 18 scored, 2 rejected" in result.stderr
    rejects = _read(tmp_path / "out.csv.rejects.csv").to_pylist()
    assert rejects == [
        {
            "row": 4,
            "id": "r003",
            "reason": "column 'age': expected an integer, got string 'old'",
        },
        {
            "row": 8,
            "id": "r007",
            "reason": "column 'hours_per_week': expected a number, got string 'abc';"
            " column 'capital_gain': expected a number, got string 'inf'",
        },
    ]
    _assert_scored(tmp_path / "out.csv", frame.iloc[:20].drop(frame.index[[3, 7]]), census_pipeline)


@pytest.mark.parametrize("name", ["in.csv", "in.parquet"])
def test_missing_cells_and_unknown_categories_the_model_refuses(
    invoke: Invoke, strict_dir: Path, census: Any, frame: pd.DataFrame, tmp_path: Path, name: str
) -> None:
    rows = frame.copy()
    rows.loc[rows.index[0], "education"] = "Preschool"
    path = _write(rows, tmp_path / name)
    out = tmp_path / "out.csv"

    result = invoke(
        strict_dir, path, "-o", out, "--id-column", "id", "--proba", "--runtime", "sklearn"
    )

    assert result.exit_code == 0, result.output
    good = rows.notna().all(axis=1).to_numpy().copy()
    good[0] = False
    assert f"{good.sum()} scored, {ROWS - good.sum()} rejected" in result.stderr
    rejects = _read(tmp_path / "out.csv.rejects.csv")
    assert rejects.column("row").to_pylist() == (np.flatnonzero(~good) + 1).tolist()
    reasons = rejects.column("reason").to_pylist()
    assert reasons[0].startswith("column 'education': string 'Preschool' is not a category")
    missing = rows.iloc[np.flatnonzero(~good)[1:]]
    for reason, (_, row) in zip(reasons[1:], missing.iterrows(), strict=True):
        named = [f"column {c!r}: may not be missing (null)" for c in row.index[row.isna()]]
        assert all(n in reason for n in named), reason
    _assert_scored(out, rows[good], strict_pipeline(*census)[0])


def test_parquet_numbers_where_text_is_expected_are_rejected(
    invoke: Invoke, census_dir: Path, frame: pd.DataFrame, tmp_path: Path
) -> None:
    rows = frame.iloc[:3].copy()
    rows["sex"] = [1, 0, 1]
    path = _write(rows, tmp_path / "in.parquet")

    result = invoke(census_dir, path, "-o", tmp_path / "out.csv")

    assert result.exit_code == 0, result.output
    assert "read 3 rows: 0 scored, 3 rejected" in result.stderr
    reasons = _read(tmp_path / "out.csv.rejects.csv").column("reason").to_pylist()
    assert reasons == [f"column 'sex': expected text, got number {n}" for n in (1, 0, 1)]


@pytest.mark.parametrize("name", ["in.csv", "in.parquet"])
def test_a_dask_worker_scores_the_pieces_as_the_local_engine(
    census_dir: Path, census_pipeline: Any, frame: pd.DataFrame, tmp_path: Path, name: str
) -> None:
    """The Dask engine's task, :func:`score_piece`, run here on each piece of a split source."""
    path = _write(frame, tmp_path / name)
    options = BatchOptions(
        census_dir, path, tmp_path / "out.csv", id_column="id", chunk_rows=50, engine="dask"
    )
    source, job = _prepare(options)
    assert len(source.pieces) > 1

    results = [r for piece in source.pieces for r in score_piece(piece, job)]

    output = pa.concat_tables([r.output for r in results])
    assert output.column("id").to_pylist() == frame["id"].tolist()
    assert output.column("prediction").to_pylist() == (
        census_pipeline.predict(_features(frame)).tolist()
    )
