"""``/explain`` beside ``/predict``: single rows under load, 1 and 1,000 rows, HTTP and in process.

Trains the tutorial's 300-tree forest and the mixed-type census pipeline of
``serve_bench.py`` (text columns, missing cells, a 300-tree forest, compiled),
serves each with ``flaskserve serve`` (``--workers``, compiled runtime), and:

1. drives ``/predict`` with wrk at 16 connections before any explanation was asked
   (no explainer loaded), then ``/explain`` and ``/predict`` alternately for
   ``--rounds`` rounds: the ratio of their requests/s, and whether ``/predict``
   changed once explainers were loaded;
2. times one ``/explain`` of 1 row and of a batch (1,000 iris rows; 100 census rows, whose
   deep trees cost ~35 ms a row) over HTTP (median of passes), and ``Explainer.explain``
   of the same rows in process.

    python benchmarks/explain_bench.py [--duration 5] [--rounds 3] [--workers 2]

Traffic goes to 127.0.0.1 only; every load run is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import requests
from serve_bench import (
    BIN,
    MIXED_ROW,
    ROW,
    _free_port,
    _mixed_records,
    _prepare,
    _prepare_mixed,
    _rows,
    _wait_ready,
    _wrk,
)

PASSES = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flaskserve-explain-") as tmp:
        work = Path(tmp)
        models = {
            "iris forest (300 trees)": (_prepare(work), ROW, _iris_batch()),
            # deep trees: ~35 ms a row, so 1,000 rows are over FLASKSERVE_EXPLAIN_SECONDS
            "census pipeline (300 trees)": (_prepare_mixed(work), MIXED_ROW, _mixed_records(100)),
        }
        lines = [_measure(name, *model, work, args) for name, model in models.items()]
    print(
        f"\n{os.cpu_count()} cores, {args.workers} workers, wrk c=16 {args.duration} s runs,"
        f" median of {args.rounds} rounds\n\n| model | /predict req/s before any /explain |"
        " /predict req/s | /explain req/s | ÷ /predict | /explain p50 / p99 ms |"
        " 1 row over HTTP ms | 1 row in process ms | batch rows | batch over HTTP ms |"
        " batch in process ms |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    print("\n".join(lines))


def _iris_batch() -> list[dict[str, float]]:
    return [dict(zip(ROW, r, strict=True)) for r in _rows(1_000).tolist()]


def _measure(
    name: str,
    artifact: Path,
    row: dict[str, Any],
    batch: list[dict[str, Any]],
    work: Path,
    args: argparse.Namespace,
) -> str:
    port = _free_port()
    command = [str(BIN / "flaskserve"), "serve", str(artifact), "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", str(args.workers)],
        env={**os.environ, "FLASKSERVE_POLL_SECONDS": "0"},
        stdout=subprocess.DEVNULL,
        stderr=(work / f"{artifact.name}.log").open("w"),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, row)
        _wrk(url, 2, 4, work, row)
        cold = _wrk(url, args.duration, 16, work, row)[0]
        _load_explainers(url, row, args.workers)
        predict, explain = [], []
        for _ in range(args.rounds):
            predict.append(_wrk(url, args.duration, 16, work, row))
            explain.append(_wrk(url, args.duration, 16, work, row, "/explain"))
        one_http, many_http = _post_ms(url, row), _post_ms(url, batch)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    one, many = _in_process(artifact, row), _in_process(artifact, batch)
    p, e = sorted(predict)[len(predict) // 2], sorted(explain)[len(explain) // 2]
    return (
        f"| {name} | {cold:,.0f} | {p[0]:,.0f} | {e[0]:,.0f} | {e[0] / p[0]:.0%} |"
        f" {e[1]:.1f} / {e[2]:.1f} | {one_http:.2f} | {one:.3f} | {len(batch):,} |"
        f" {many_http:.0f} | {many:.0f} |"
    )


def _load_explainers(url: str, row: dict[str, Any], workers: int) -> None:
    """One /explain per worker at once: each makes its explainer on its first (seconds)."""
    with ThreadPoolExecutor(2 * workers) as pool:
        for answer in pool.map(lambda _: _explain(url, row), range(2 * workers)):
            answer.raise_for_status()


def _explain(url: str, body: Any) -> requests.Response:
    data = json.dumps(body)
    headers = {"Content-Type": "application/json"}
    return requests.post(url + "/explain", data=data, headers=headers, timeout=120)


def _post_ms(url: str, body: Any) -> float:
    times = []
    for _ in range(PASSES):
        start = time.perf_counter()
        _explain(url, body).raise_for_status()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def _in_process(artifact: Path, body: Any) -> float:
    """``Explainer.explain`` of *body*'s rows, already decoded, in ms (median of passes)."""
    from flaskserve.artifact import read_manifest
    from flaskserve.codecs.records import decode_records
    from flaskserve.explain import build_explainer

    manifest = read_manifest(artifact)
    explainer = build_explainer(artifact, manifest)
    rows = decode_records(body, manifest, 10_000)
    explainer.explain(rows)
    times = []
    for _ in range(PASSES):
        start = time.perf_counter()
        explainer.explain(rows)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


if __name__ == "__main__":
    main()
