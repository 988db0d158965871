"""``flaskserve batch --engine dask`` on real worker processes: the local engine's bytes,
explanations (``--explain``) included."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from flaskserve.artifact import read_manifest
from flaskserve.cli import main

pytestmark = pytest.mark.integration
ROWS = 3_000
CHUNK_ROWS = "400"  # 8 partitions
OPTIONS = ["--id-column", "id", "--proba", "--labels", "--chunk-rows", CHUNK_ROWS]
CLASSES = ["setosa", "versicolor", "virginica"]
Batch = Callable[..., Result]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes, one thread each, shared by the module's tests."""
    from distributed import LocalCluster

    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
    ) as local:
        yield local


@pytest.fixture(scope="module")
def table(model_dir: Path) -> pa.Table:
    """Rows within the model's ranges, ids out of order, and a few bad cells."""
    features = read_manifest(model_dir).features
    rng = np.random.default_rng(7)
    low = np.array([f.min for f in features], dtype=np.float64)
    high = np.array([f.max for f in features], dtype=np.float64)
    values = np.round(rng.uniform(low, high, size=(ROWS, len(features))), 2)
    values[[5, 1234, 2999], [0, 2, 3]] = np.nan  # rejects in the first, a middle and the last part
    columns = {"id": pa.array(rng.permutation(ROWS).astype(str))}
    columns |= {f.name: pa.array(values[:, j]) for j, f in enumerate(features)}
    return pa.table(columns)


@pytest.fixture()
def batch(model_dir: Path) -> Batch:
    runner = CliRunner()

    def _batch(source: Path, output: Path, *args: str) -> Result:
        result = runner.invoke(
            main, ["batch", str(model_dir), str(source), "-o", str(output), *args]
        )
        assert result.exit_code == 0, result.output
        assert f"read {ROWS:,} rows: {ROWS - 3:,} scored, 3 rejected" in result.stderr
        return result

    return _batch


def _inputs(table: pa.Table, tmp_path: Path) -> dict[str, Path]:
    csv, parquet = tmp_path / "in.csv", tmp_path / "in.parquet"
    pcsv.write_csv(table, csv)
    pq.write_table(table, parquet, row_group_size=700)  # partitions cross row groups
    return {"csv": csv, "parquet": parquet}


def _same_files(local: Path, remote: Path) -> None:
    assert remote.read_bytes() == local.read_bytes()
    rejects = ".rejects.csv"
    assert Path(str(remote) + rejects).read_bytes() == Path(str(local) + rejects).read_bytes()


def _assert_explained(output: Path) -> None:
    """Each row's contributions add up to the probability of its predicted class."""
    scored = pq.read_table(output) if output.suffix == ".parquet" else pcsv.read_csv(output)
    contributions = [name for name in scored.column_names if name.startswith("contrib_")]
    assert len(contributions) == 4
    parts = np.column_stack([scored.column(name).to_numpy() for name in contributions])
    explained = scored.column("explained_output").to_numpy()
    base = scored.column("base_value").to_numpy()
    np.testing.assert_allclose(base + parts.sum(axis=1), explained, rtol=0, atol=1e-9)
    proba = np.column_stack([scored.column(f"proba_{c}").to_numpy() for c in CLASSES])
    predicted = scored.column("prediction").to_numpy()
    chosen = proba[np.arange(len(predicted)), predicted]
    np.testing.assert_allclose(explained, chosen, rtol=0, atol=1e-6)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_existing_scheduler_gives_the_local_bytes(
    batch: Batch, cluster: Any, table: pa.Table, tmp_path: Path, fmt: str
) -> None:
    source = _inputs(table, tmp_path)[fmt]
    local, remote = tmp_path / f"local.{fmt}", tmp_path / f"dask.{fmt}"
    options = [*OPTIONS, "--explain"]  # each worker makes its own explainer, once

    batch(source, local, *options)
    result = batch(
        source, remote, *options, "--engine", "dask", "--scheduler", cluster.scheduler_address
    )

    assert "contributions in probability space" in result.stderr
    _same_files(local, remote)
    _assert_explained(remote)


def test_local_cluster_of_the_command(batch: Batch, table: pa.Table, tmp_path: Path) -> None:
    source = _inputs(table, tmp_path)["parquet"]
    local, remote = tmp_path / "local.csv", tmp_path / "dask.csv"

    batch(source, local, *OPTIONS)
    batch(source, remote, *OPTIONS, "--engine", "dask", "--workers", "2")

    _same_files(local, remote)


def test_max_rejects_on_dask_writes_no_output(
    model_dir: Path, cluster: Any, table: pa.Table, tmp_path: Path
) -> None:
    source = _inputs(table, tmp_path)["csv"]
    args = ["--engine", "dask", "--scheduler", cluster.scheduler_address, "--max-rejects", "1"]
    args += ["--chunk-rows", CHUNK_ROWS]

    result = CliRunner().invoke(
        main, ["batch", str(model_dir), str(source), "-o", str(tmp_path / "out.csv"), *args]
    )

    assert result.exit_code == 2, result.output
    assert "stopped after 1,600 rows: 2 rejected, over --max-rejects 1" in result.output
    assert not (tmp_path / "out.csv").exists()
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".part"]
