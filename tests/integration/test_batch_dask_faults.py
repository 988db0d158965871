"""``flaskserve batch --engine dask`` when the cluster fails: a clear error, never half a file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from click.testing import CliRunner
from conftest import FLASKSERVE

from assertions import assert_refused
from flaskserve.artifact import read_manifest
from flaskserve.cli import main

pytestmark = pytest.mark.integration
ROWS = 60_000
CHUNK_ROWS = "600"  # 100 pieces: seconds of work for two workers, mostly per piece
OPTIONS = ["--id-column", "id", "--proba", "--labels", "--chunk-rows", CHUNK_ROWS]


def _outputs(directory: Path) -> list[str]:
    """What a run left in *directory* besides the input."""
    return sorted(p.name for p in directory.iterdir() if p.name != "in.csv")


@pytest.fixture()
def source(model_dir: Path, tmp_path: Path) -> Path:
    """ROWS rows within the model's ranges, an id column first."""
    features = read_manifest(model_dir).features
    low = np.array([f.min for f in features], dtype=np.float64)
    high = np.array([f.max for f in features], dtype=np.float64)
    values = np.round(np.random.default_rng(3).uniform(low, high, (ROWS, len(features))), 2)
    columns = {"id": pa.array(np.arange(ROWS).astype(str))}
    columns |= {f.name: pa.array(values[:, j]) for j, f in enumerate(features)}
    path = tmp_path / "in.csv"
    pcsv.write_csv(pa.table(columns), path)
    return path


def test_an_unreachable_scheduler_is_refused_and_nothing_is_written(
    model_dir: Path, source: Path
) -> None:
    with socket.socket() as closed:
        # bound and not listening: connections are refused, and no one else can take the port
        closed.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{closed.getsockname()[1]}"
        args = ["batch", str(model_dir), str(source), "-o", str(source.with_name("out.csv"))]
        started = time.monotonic()
        result = CliRunner().invoke(main, [*args, "--engine", "dask", "--scheduler", address])
        print(f"refused after {time.monotonic() - started:.1f} s")

    assert_refused(result, f"cannot reach the Dask scheduler at {address}")
    assert _outputs(source.parent) == []


@pytest.fixture()
def cluster(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Two worker processes of a cluster of the test's own: one of them will be killed.

    ``allowed_failures`` (indirect parameter): how many workers may die running one
    task before the scheduler gives up on it (Dask's default is 3).
    """
    from distributed import LocalCluster

    allowed = getattr(request, "param", 3)
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": allowed}),
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as local,
    ):
        yield local


def _kill_a_busy_worker(run: subprocess.Popen[bytes], output: Path, cluster: Any) -> None:
    """SIGKILL a worker holding a piece, once the run has written its first piece."""
    from distributed import Client

    with Client(cluster) as client:  # type: ignore[no-untyped-call]
        pids: dict[str, int] = client.run(os.getpid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and run.poll() is None:
            # TableWriter's temporary name; the rejects file has its own
            parts = list(output.parent.glob(f".{output.name}.????????.part"))
            if parts and parts[0].stat().st_size > 0:
                break
            time.sleep(0.02)
        assert run.poll() is None and not output.exists(), "the run ended before the kill"
        while True:  # until a stopped worker holds a piece (it may finish one as it stops)
            assert run.poll() is None and time.monotonic() < deadline, "no worker held a piece"
            victim = _busy_worker(client, deadline) or next(iter(pids))
            pid = pids[victim]
            # Stopped, the worker keeps every piece given to it, and the run cannot finish
            # without them: the kill surely lands while it holds one (which a kill of a
            # running worker between two pieces would not). Any piece held counts against
            # allowed-failures, running or queued.
            os.kill(pid, signal.SIGSTOP)
            try:
                held = _holds_a_piece(client, victim, within=1.0)
            except BaseException:
                os.kill(pid, signal.SIGKILL)  # never leave a stopped worker behind
                raise
            if held:
                break
            os.kill(pid, signal.SIGCONT)  # it finished its piece as it stopped: choose again
        os.kill(pid, signal.SIGKILL)


def _holds_a_piece(client: Any, worker: str, within: float) -> bool:
    until = time.monotonic() + within
    while time.monotonic() < until:
        if client.processing([worker]).get(worker):
            return True
        time.sleep(0.02)
    return False


def _busy_worker(client: Any, deadline: float) -> str | None:
    """A worker holding a piece now: stopping an idle one may leave it none to hold."""
    while time.monotonic() < deadline:
        busy = [worker for worker, pieces in client.processing().items() if pieces]
        if busy:
            return str(busy[0])
        time.sleep(0.01)
    return None


@pytest.mark.parametrize(
    ("cluster", "whole"),
    [(3, True), (0, False)],
    ids=["task-retried", "no-retry-allowed"],
    indirect=["cluster"],
)
def test_a_worker_killed_mid_run_leaves_the_whole_output_or_none(
    model_dir: Path, source: Path, cluster: Any, whole: bool
) -> None:
    directory = source.parent
    local = directory / "local.csv"
    runner = CliRunner()
    expected = runner.invoke(
        main, ["batch", str(model_dir), str(source), "-o", str(local), *OPTIONS]
    )
    assert expected.exit_code == 0, expected.output
    expected_bytes = local.read_bytes()
    local.unlink()
    (directory / "local.csv.rejects.csv").unlink()
    output = directory / "out.csv"

    args = [FLASKSERVE, "batch", str(model_dir), str(source), "-o", str(output), *OPTIONS]
    args += ["--engine", "dask", "--scheduler", cluster.scheduler_address]

    started = time.monotonic()
    with subprocess.Popen(args, stderr=subprocess.PIPE) as run:
        _kill_a_busy_worker(run, output, cluster)
        _, stderr = run.communicate(timeout=120)
    print(f"run with a killed worker: {time.monotonic() - started:.1f} s")

    said = stderr.decode()
    assert "Traceback" not in said, said
    if whole:
        assert run.returncode == 0, said
        assert f"read {ROWS:,} rows: {ROWS:,} scored, 0 rejected" in said
        assert output.read_bytes() == expected_bytes
        assert _outputs(directory) == ["out.csv", "out.csv.rejects.csv"]
    else:
        assert run.returncode == 2, said
        assert "Error: the Dask cluster failed" in said, said
        assert _outputs(directory) == []
