"""Benchmark ``flaskserve batch``: the local engine and Dask, on CSV and Parquet.

One run, one machine: trains the tutorial's iris model, writes N rows (default
1,000,000) drawn uniformly within the ranges its manifest records, as CSV and
as Parquet (row groups of 100,000 rows), and scores each file with the local
engine and with a local Dask cluster (2 worker processes, 1 thread each), as a
user would: ``flaskserve batch MODEL IN -o OUT --id-column id --proba``.

Each run is a child process. Figures: wall time (start-up, model loading and
cluster start included), rows/s, the peak RSS of the largest process
(``getrusage(RUSAGE_CHILDREN).ru_maxrss``, measured in a wrapper process per
run, so one run's peak does not hide the next) and the peak of all the run's
processes together (sampled every 50 ms). Prints a Markdown table.

    python benchmarks/batch_bench.py [--rows 1000000] [--workers 2] [--runtime auto]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil  # type: ignore[import-untyped]  # a dependency of distributed
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from flaskserve.artifact import read_manifest
from flaskserve.training import load_iris_dataset, train

BIN = Path(sys.executable).parent
BATCH = 100_000  # rows generated and written at a time
# runs the command and prints the largest descendant's peak RSS (KiB on Linux)
WRAPPER = (
    "import resource, subprocess, sys;"
    "code = subprocess.call(sys.argv[1:]);"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
    "sys.exit(code)"
)


@dataclass
class Run:
    fmt: str
    engine: str
    rows: int
    seconds: float
    largest_mib: float
    total_mib: float
    output: Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    parser.add_argument("--runtime", default="auto", choices=["auto", "sklearn", "compiled"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flaskserve-batch-bench-") as tmp:
        work = Path(tmp)
        model = work / "iris"
        train(load_iris_dataset(), model, name="iris")
        inputs = write_inputs(model, work, args.rows)
        runs = []
        for fmt, source in inputs.items():
            for engine in ("local", "dask"):
                runs.append(score(model, source, work, fmt, engine, args))
                print(f"{fmt} {engine}: {runs[-1].seconds:.1f} s", file=sys.stderr)
        print_table(runs, inputs, args)


def write_inputs(model: Path, work: Path, rows: int) -> dict[str, Path]:
    """The same rows, two decimals each, as CSV and as Parquet."""
    features = read_manifest(model).features
    low = np.array([f.min for f in features], dtype=np.float64)
    high = np.array([f.max for f in features], dtype=np.float64)
    rng = np.random.default_rng(1234)
    csv, parquet = work / "rows.csv", work / "rows.parquet"
    schema = pa.schema(
        [pa.field("id", pa.int64())] + [pa.field(f.name, pa.float64()) for f in features]
    )
    with pcsv.CSVWriter(csv, schema) as to_csv, pq.ParquetWriter(parquet, schema) as to_parquet:
        for start in range(0, rows, BATCH):
            size = min(BATCH, rows - start)
            values = np.round(rng.uniform(low, high, size=(size, len(features))), 2)
            ids = pa.array(np.arange(start, start + size))
            table = pa.Table.from_arrays([ids, *values.T], schema=schema)
            to_csv.write_table(table)
            to_parquet.write_table(table)
    return {"CSV": csv, "Parquet": parquet}


def score(
    model: Path, source: Path, work: Path, fmt: str, engine: str, args: argparse.Namespace
) -> Run:
    output = work / f"{engine}-{source.stem}{source.suffix}"
    command = [str(BIN / "flaskserve"), "batch", str(model), str(source), "-o", str(output)]
    command += ["--id-column", "id", "--proba", "--quiet", "--runtime", args.runtime]
    if engine == "dask":
        command += ["--engine", "dask", "--workers", str(args.workers)]
    started = time.perf_counter()
    wrapper = subprocess.Popen([sys.executable, "-c", WRAPPER, *command], stdout=subprocess.PIPE)
    total = sample_tree(wrapper)
    out, _ = wrapper.communicate()
    seconds = time.perf_counter() - started
    if wrapper.returncode != 0:
        sys.exit(f"{' '.join(command)} failed with exit code {wrapper.returncode}")
    largest = int(out.decode().split()[-1]) / 1024
    return Run(fmt, engine, args.rows, seconds, largest, total / 2**20, output)


def sample_tree(process: subprocess.Popen[bytes]) -> int:
    """The peak of the summed RSS of *process* and its descendants, sampled every 50 ms."""
    peak = 0
    parent = psutil.Process(process.pid)
    while process.poll() is None:
        total = 0
        try:
            for member in [parent, *parent.children(recursive=True)]:
                total += member.memory_info().rss
        except psutil.Error:  # a process ended between listing and reading it
            pass
        peak = max(peak, total)
        time.sleep(0.05)
    return peak


def print_table(runs: list[Run], inputs: dict[str, Path], args: argparse.Namespace) -> None:
    print(
        f"\n{args.rows:,} rows, runtime {args.runtime}, Dask: {args.workers} worker processes"
        f" x 1 thread, {psutil.cpu_count()} cores; `--id-column id --proba`, default --chunk-rows\n"
    )
    print(
        "| input | engine | seconds | rows/s | peak RSS, largest process | peak RSS, all processes | output = local engine's |"
    )
    print("|---|---|---:|---:|---:|---:|---|")
    local = {r.fmt: r.output.read_bytes() for r in runs if r.engine == "local"}
    for r in runs:
        size = inputs[r.fmt].stat().st_size / 2**20
        same = "byte for byte" if r.output.read_bytes() == local[r.fmt] else "**differs**"
        print(
            f"| {r.fmt} ({size:.1f} MiB) | {r.engine} | {r.seconds:.1f} | {r.rows / r.seconds:,.0f}"
            f" | {r.largest_mib:.0f} MiB | {r.total_mib:.0f} MiB | {same} |"
        )


if __name__ == "__main__":
    main()
