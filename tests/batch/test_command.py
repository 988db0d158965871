"""``flaskserve batch`` with the local engine, through click's runner."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from sklearn.linear_model import LinearRegression

from assertions import assert_refused
from flaskserve.admission import load_runtime
from flaskserve.artifact import read_manifest
from flaskserve.batch import writers
from flaskserve.cli import main
from flaskserve.packaging import save_model

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]
Invoke = Callable[..., Result]
SUMMARY = re.compile(r"read (\S+) rows: (\S+) scored, (\S+) rejected")


def iris_cells(model_dir: Path, rows: int, seed: int = 0) -> list[list[str]]:
    """*rows* rows of feature text within the manifest's ranges, two decimals each."""
    features = read_manifest(model_dir).features
    low = np.array([f.min for f in features], dtype=np.float64)
    high = np.array([f.max for f in features], dtype=np.float64)
    values = np.random.default_rng(seed).uniform(low, high, size=(rows, len(features)))
    return [[f"{v:.2f}" for v in row] for row in values]


def write_csv(path: Path, cells: Sequence[Sequence[str]], ids: Sequence[str] | None = None) -> Path:
    """A CSV file with a header; an ``id`` column first when *ids* is given."""
    lines = [",".join((["id"] if ids is not None else []) + FEATURES)]
    for i, row in enumerate(cells):
        lines.append(",".join(([ids[i]] if ids is not None else []) + list(row)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_parquet(
    path: Path, cells: Sequence[Sequence[str]], ids: Sequence[str] | None = None, group: int = 16
) -> Path:
    """Float64 features (an empty cell becomes null) in row groups of *group* rows."""
    columns = {"id": pa.array(ids, pa.string())} if ids is not None else {}
    for j, name in enumerate(FEATURES):
        columns[name] = pa.array([float(r[j]) if r[j] else None for r in cells], pa.float64())
    pq.write_table(pa.table(columns), path, row_group_size=group)
    return path


def matrix_of(cells: Sequence[Sequence[str]]) -> np.ndarray:
    return np.array([[float(v) for v in row] for row in cells], dtype=np.float64)


def read_table(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))


def counts(result: Result) -> tuple[int, int, int]:
    match = SUMMARY.search(result.stderr)
    assert match, result.output
    read, scored, rejected = (int(n.replace(",", "")) for n in match.groups())
    assert read == scored + rejected
    return read, scored, rejected


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


@pytest.fixture()
def invoke() -> Invoke:
    """``invoke(*args)`` runs ``flaskserve batch ARGS``."""
    runner = CliRunner()
    return lambda *args: runner.invoke(main, ["batch", *map(str, args)])


# --- predictions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target"),
    [("in.csv", "out.csv"), ("in.parquet", "out.parquet"), ("in.csv", "out.parquet")],
    ids=["csv", "parquet", "csv-to-parquet"],
)
def test_predictions_are_the_runtimes(
    invoke: Invoke, model_dir: Path, tmp_path: Path, source: str, target: str
) -> None:
    cells = iris_cells(model_dir, 100)
    ids = [f"row-{i:03d}" for i in range(100)][::-1]  # not sorted: order must come from the file
    writer = write_parquet if source.endswith(".parquet") else write_csv
    path = writer(tmp_path / source, cells, ids)

    result = invoke(
        model_dir, path, "-o", tmp_path / target, "--id-column", "id", "--proba", "--labels"
    )

    assert result.exit_code == 0, result.output
    assert counts(result) == (100, 100, 0)
    table = read_table(tmp_path / target)
    proba = [f"proba_{c}" for c in CLASSES]
    assert table.column_names == ["id", "prediction", "label", *proba]
    expected = load_runtime(model_dir).predict(matrix_of(cells), proba=True)
    assert table.column("id").to_pylist() == ids
    assert table.column("prediction").to_pylist() == expected.predictions.tolist()
    assert table.column("label").to_pylist() == [CLASSES[p] for p in expected.predictions]
    assert expected.probabilities is not None
    for k, name in enumerate(proba):
        np.testing.assert_array_equal(table.column(name).to_numpy(), expected.probabilities[:, k])
    assert read_table(tmp_path / (target + ".rejects.csv")).num_rows == 0


def test_plain_output_is_the_prediction_only(
    invoke: Invoke, model_dir: Path, tmp_path: Path
) -> None:
    cells = iris_cells(model_dir, 20, seed=1)
    path = write_csv(tmp_path / "in.csv", cells)

    result = invoke(model_dir, path, "-o", tmp_path / "out.csv", "--runtime", "sklearn")

    assert result.exit_code == 0, result.output
    expected = load_runtime(model_dir, "sklearn").predict(matrix_of(cells))
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines == ['"prediction"', *map(str, expected.predictions.tolist())]


@pytest.mark.parametrize("target", ["out.csv", "out.parquet"])
def test_chunking_does_not_change_the_output(
    invoke: Invoke, model_dir: Path, tmp_path: Path, target: str
) -> None:
    cells = iris_cells(model_dir, 100, seed=2)
    cells[10][1] = "x"  # a reject, so the rejects file is compared too
    path = write_csv(tmp_path / "in.csv", cells, [str(i) for i in range(100)])
    whole, chunked = tmp_path / "whole", tmp_path / "chunked"
    whole.mkdir()
    chunked.mkdir()
    common = ("--id-column", "id", "--proba", "--labels")

    assert invoke(model_dir, path, "-o", whole / target, *common).exit_code == 0
    result = invoke(model_dir, path, "-o", chunked / target, *common, "--chunk-rows", 7)

    assert result.exit_code == 0, result.output
    assert (chunked / target).read_bytes() == (whole / target).read_bytes()
    rejects = target + ".rejects.csv"
    assert (chunked / rejects).read_bytes() == (whole / rejects).read_bytes()


def test_a_header_only_file_gives_a_header_only_output(
    invoke: Invoke, model_dir: Path, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "in.csv", [], [])

    result = invoke(model_dir, path, "-o", tmp_path / "out.csv", "--id-column", "id")

    assert result.exit_code == 0, result.output
    assert counts(result) == (0, 0, 0)
    assert (tmp_path / "out.csv").read_text() == '"id","prediction"\n'


def test_quoted_newlines_and_crlf(invoke: Invoke, model_dir: Path, tmp_path: Path) -> None:
    cells = iris_cells(model_dir, 9, seed=3)
    lines = ["note," + ",".join(FEATURES)]
    lines += [f'"line {i}\nof a note, ""quoted""",' + ",".join(row) for i, row in enumerate(cells)]
    path = tmp_path / "in.csv"
    path.write_bytes("\r\n".join(lines).encode())  # and no newline at the end

    result = invoke(
        model_dir, path, "-o", tmp_path / "out.csv", "--id-column", "note", "--chunk-rows", 2
    )

    assert result.exit_code == 0, result.output
    assert counts(result) == (9, 9, 0)
    notes = read_table(tmp_path / "out.csv").column("note").to_pylist()
    assert notes == [f'line {i}\nof a note, "quoted"' for i in range(9)]


def test_a_regression_model(invoke: Invoke, tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 1, size=(40, 4))
    model = save_model(
        LinearRegression().fit(x, x @ [1.0, 2.0, 3.0, 4.0]),
        tmp_path / "linear",
        feature_names=FEATURES,
        compile=False,
    )
    cells = [[f"{v:.3f}" for v in row] for row in x[:5]]
    path = write_csv(tmp_path / "in.csv", cells)

    result = invoke(tmp_path / "linear", path, "-o", tmp_path / "out.parquet")

    assert result.exit_code == 0, result.output
    predictions = read_table(tmp_path / "out.parquet").column("prediction")
    assert predictions.type == pa.float64()
    expected = load_runtime(tmp_path / "linear").predict(matrix_of(cells)).predictions
    np.testing.assert_allclose(predictions.to_numpy(), expected, rtol=0, atol=0)
    assert model.task == "regression"
    for flag in ("--labels", "--proba"):
        refused = invoke(tmp_path / "linear", path, "-o", tmp_path / "other.csv", flag)
        assert_refused(refused, "model 'linear' is a regression model")


# --- rejects ---------------------------------------------------------------------------------


def test_rejects_name_the_row_and_the_field(
    invoke: Invoke, model_dir: Path, tmp_path: Path
) -> None:
    cells = iris_cells(model_dir, 30, seed=4)
    cells[2][0] = ""
    cells[5][1] = "abc"
    cells[7][2] = "nan"
    cells[8][3] = "-inf"
    cells[9][0] = "1e999"
    cells[11][1] = " 3.5 "  # spaces around a number are fine
    cells[12][:2] = ["?", "1.5.5"]
    path = write_csv(tmp_path / "in.csv", cells, [f"id{i}" for i in range(30)])
    text = path.read_text().splitlines()
    text[21] = "id20,1.0"  # data row 20 (line 21): too few fields
    path.write_text("\n".join(text) + "\n")

    result = invoke(
        model_dir, path, "-o", tmp_path / "out.csv", "--id-column", "id", "--chunk-rows", 8
    )

    assert result.exit_code == 0, result.output
    assert counts(result) == (30, 23, 7)
    rejects = read_table(tmp_path / "out.csv.rejects.csv").to_pylist()
    assert rejects == [
        {
            "row": 3,
            "id": "id2",
            "reason": "column 'sepal_length': expected a number, got an empty cell",
        },
        {
            "row": 6,
            "id": "id5",
            "reason": "column 'sepal_width': expected a number, got string 'abc'",
        },
        {
            "row": 8,
            "id": "id7",
            "reason": "column 'petal_length': expected a finite number, got string 'nan'",
        },
        {
            "row": 9,
            "id": "id8",
            "reason": "column 'petal_width': expected a finite number, got string '-inf'",
        },
        {
            "row": 10,
            "id": "id9",
            "reason": "column 'sepal_length': expected a finite number, got string '1e999'",
        },
        {
            "row": 13,
            "id": "id12",
            "reason": "column 'sepal_length': expected a number, got string '?';"
            " column 'sepal_width': expected a number, got string '1.5.5'",
        },
        {"row": 21, "id": None, "reason": "expected 5 fields, got 2"},
    ]
    rejected = {r["id"] for r in rejects} | {"id20"}
    scored = read_table(tmp_path / "out.csv").column("id").to_pylist()
    assert scored == [f"id{i}" for i in range(30) if f"id{i}" not in rejected]


def test_parquet_rejects_nulls_and_nan(invoke: Invoke, model_dir: Path, tmp_path: Path) -> None:
    cells = iris_cells(model_dir, 40, seed=5)
    cells[3][2] = ""  # null
    cells[33][0] = "nan"
    path = write_parquet(tmp_path / "in.parquet", cells, group=10)

    result = invoke(
        model_dir, path, "-o", tmp_path / "out.parquet", "--rejects", tmp_path / "bad.csv"
    )

    assert result.exit_code == 0, result.output
    assert counts(result) == (40, 38, 2)
    assert (tmp_path / "bad.csv").read_text().splitlines() == [
        '"row","reason"',
        "4,\"column 'petal_length': expected a number, got null\"",
        "34,\"column 'sepal_length': expected a finite number, got nan\"",
    ]


def test_max_rejects_stops_and_writes_no_output(
    invoke: Invoke, model_dir: Path, tmp_path: Path
) -> None:
    cells = iris_cells(model_dir, 50, seed=6)
    for i in (1, 3, 20, 30, 40):
        cells[i][0] = "bad"
    path = write_csv(tmp_path / "in.csv", cells)

    result = invoke(
        model_dir, path, "-o", tmp_path / "out.csv", "--max-rejects", 2, "--chunk-rows", 10
    )

    assert_refused(result, "3 rejected, over --max-rejects 2", "row 2: column 'sepal_length'")
    assert not (tmp_path / "out.csv").exists()
    assert leftovers(tmp_path) == []
    rejects = read_table(tmp_path / "out.csv.rejects.csv")
    assert rejects.column("row").to_pylist() == [2, 4, 21]


def test_max_rejects_not_reached(invoke: Invoke, model_dir: Path, tmp_path: Path) -> None:
    cells = iris_cells(model_dir, 50, seed=6)
    cells[7][3] = ""
    path = write_csv(tmp_path / "in.csv", cells)

    result = invoke(model_dir, path, "-o", tmp_path / "out.csv", "--max-rejects", 1)

    assert result.exit_code == 0, result.output
    assert counts(result) == (50, 49, 1)


# --- atomic output ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["out.csv", "out.parquet"])
@pytest.mark.parametrize(
    "error",
    [RuntimeError("a simulated crash"), OSError(28, "No space left on device")],
    ids=["crash", "disk-full"],
)
def test_a_failed_run_never_leaves_a_partial_output(
    invoke: Invoke,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    error: Exception,
) -> None:
    path = write_csv(tmp_path / "in.csv", iris_cells(model_dir, 100, seed=7))
    (tmp_path / target).write_bytes(b"the previous run's output")
    write = writers.TableWriter.write
    calls = []

    def failing_write(self: writers.TableWriter, table: pa.Table) -> None:
        calls.append(table.num_rows)
        if len(calls) == 5:  # output and rejects of two chunks written, then the fifth fails
            raise error
        write(self, table)

    monkeypatch.setattr(writers.TableWriter, "write", failing_write)
    result = invoke(model_dir, path, "-o", tmp_path / target, "--chunk-rows", 10)

    if isinstance(error, OSError):
        assert_refused(result, "stopped: No space left on device")
    else:
        assert result.exception is error
    assert (tmp_path / target).read_bytes() == b"the previous run's output"
    assert not (tmp_path / (target + ".rejects.csv")).exists()
    assert leftovers(tmp_path) == []
