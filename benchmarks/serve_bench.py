"""Benchmark flaskserve against the tutorial's server and the framework's ceiling.

One run, one machine: trains the tutorial model, starts every server on a free
loopback port with the same gunicorn worker count, drives each in turn with wrk
(Debian's ``wrk`` package) at concurrency 1 and 16 with the tutorial's
single-row request, for ``--rounds`` interleaved rounds (each server's median
round is reported), sends 1,000- and 10,000-row batches, and prints a Markdown
table with ratios. Last, for each ratio the targets name ((b) to the ceiling
(d), (b) to the tutorial (a), (c) to (a)), it loads the two servers
alternately, a few seconds each, ``--pairs`` times: each pair's ratio was
measured seconds apart, where the rounds' were a minute apart and the machine
drifts between them.

Servers (e) and (e') serve a mixed-type model: a census-like DataFrame (six
columns, three of them text, missing cells) and a 300-tree forest in a
ColumnTransformer pipeline, compiled and on scikit-learn. Their single-row
request is a record with a missing cell; their batch is 10,000 such records.
``--mixed-only`` runs (b), (e) and (e') alone and prints their table.

Servers (f), (f'), (g) and (g') serve 300-tree XGBoost and LightGBM classifiers of
iris (the tutorial's single row; batches of 10,000 records), compiled to ONNX with
onnxmltools and on their own library (``--runtime sklearn``); (h) and (i), 300-tree
XGBoost and LightGBM classifiers of the census-like table (its text columns as pandas
categories, its missing cells), on their own library: a booster with category columns
is not compiled. ``--boosters-only`` runs (b) and these alone and prints their table.

    python benchmarks/serve_bench.py [--duration 10] [--workers 2] [--rounds 3] [--pairs 10]
    python benchmarks/serve_bench.py --mixed-only [--duration 5]
    python benchmarks/serve_bench.py --boosters-only [--duration 5]

Traffic goes to 127.0.0.1 only, and every load run is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ROW: dict[str, Any] = {
    "sepal_length": 5.9,
    "sepal_width": 3.0,
    "petal_length": 5.1,
    "petal_width": 1.8,
}
FEATURES = list(ROW)
MIXED_ROW: dict[str, Any] = {
    "age": 39,
    "workclass": "Private",
    "education": "Bachelors",
    "sex": "Male",
    "hours_per_week": None,
    "capital_gain": 2174.0,
}
MIXED = "(e"  # the names of the mixed-type model's servers start so
BOOSTERS = ("(f", "(g")  # and the XGBoost and LightGBM models' servers
CENSUS_BOOSTERS = ("(h", "(i")  # and theirs of the census-like table
PASSES = 5  # batch timings are short: each is the median of this many passes
# the ratios the targets name, each also measured by loading the two servers alternately
PAIRED = (("(b)", "(d)"), ("(b)", "(a)"), ("(c)", "(a)"))


@dataclass
class Result:
    name: str
    row: dict[str, Any] = field(default_factory=lambda: dict(ROW))
    rounds: dict[int, list[tuple[float, float, float]]] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)
    batch_rows_per_s: dict[str, float] = field(default_factory=dict)
    in_process_rows_per_s: dict[int, float] = field(default_factory=dict)
    worker_rss_mb: float = 0.0
    # c=16 req/s ÷ another server's, measured alternately: {that server's name: ratios}
    paired_ratios: dict[str, list[float]] = field(default_factory=dict)

    def median(self, connections: int) -> tuple[float, float, float]:
        """req/s, p50 and p99 of the round with the median req/s."""
        runs = sorted(self.rounds[connections])
        return runs[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for every server")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of load over every server; medians reported"
    )
    parser.add_argument(
        "--pairs", type=int, default=10, help="alternate runs of (b) and (d), for their ratio"
    )
    parser.add_argument("--pair-seconds", type=int, default=3, help="seconds per paired run")
    parser.add_argument(
        "--mixed-only", action="store_true", help="only (b) and the mixed-type model's (e), (e')"
    )
    parser.add_argument(
        "--boosters-only", action="store_true", help="only (b) and the boosters' (f) to (g')"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="flaskserve-bench-") as tmp:
        work = Path(tmp)
        artifact = _prepare(work)
        mixed = work / "census" if args.boosters_only else _prepare_mixed(work)
        boosters = _prepare_boosters(work) if not args.mixed_only else {}
        servers = _servers(work, artifact, mixed, args.workers, boosters)
        if args.mixed_only:
            servers = [s for s in servers if s[0].startswith(("(b)", MIXED))]
        if args.boosters_only:
            servers = [s for s in servers if s[0].startswith(("(b)", *BOOSTERS, *CENSUS_BOOSTERS))]
        results = _measure_all(servers, work, args, artifact, mixed)
    if not (args.mixed_only or args.boosters_only):
        _print_table(results, args)
    if not args.boosters_only:
        _print_mixed(results, args)
    if not args.mixed_only:
        _print_boosters(results, args)


def _prepare(work: Path) -> Path:
    subprocess.run(
        [sys.executable, str(REPO / "examples/tutorial/train.py")],
        cwd=work,
        check=True,
        capture_output=True,
    )
    artifact = work / "iris"
    subprocess.run(
        [str(BIN / "flaskserve"), "train", "--out", str(artifact)], check=True, capture_output=True
    )
    return artifact


def mixed_frame(rows: int = 2_000, seed: int = 7) -> tuple[object, np.ndarray]:
    """The census-like table of the tests (tests/census.py), made here: benchmarks import no tests."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    educations = ("HS-grad", "Some-college", "Bachelors", "Masters", "Doctorate")
    age = rng.integers(17, 80, rows)
    education = rng.choice(educations, rows)
    hours = rng.normal(40, 10, rows).round()
    hours[rng.random(rows) < 0.1] = np.nan
    workclass = rng.choice(("Private", "Self-emp", "Federal-gov", "Local-gov"), rows).astype(object)
    workclass[rng.random(rows) < 0.08] = np.nan
    gain = np.where(rng.random(rows) < 0.1, rng.exponential(5000, rows), 0.0).round()
    score = (age - 40) / 12 + np.array([educations.index(e) for e in education]) * 0.6
    score += np.nan_to_num(hours - 40, nan=0.0) / 10 + gain / 4000 + rng.normal(0, 1, rows)
    columns = {"age": age, "workclass": workclass, "education": education}
    columns |= {"sex": rng.choice(("Female", "Male"), rows), "hours_per_week": hours}
    frame = pd.DataFrame({**columns, "capital_gain": gain})
    return frame, np.where(score > 1.2, ">50K", "<=50K")


def _prepare_mixed(work: Path) -> Path:
    """The mixed-type model: imputed one-hot text and imputed numbers, a 300-tree forest."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from flaskserve import save_model

    frame, target = mixed_frame()
    text = make_pipeline(
        SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
    )
    columns = ColumnTransformer(
        [
            ("text", text, ["workclass", "education", "sex"]),
            ("numbers", SimpleImputer(), ["age", "hours_per_week", "capital_gain"]),
        ]
    )
    forest = RandomForestClassifier(n_estimators=300, random_state=1234, n_jobs=1)
    pipeline = make_pipeline(columns, forest).fit(frame, target)
    artifact = work / "census"
    start = time.perf_counter()
    manifest = save_model(pipeline, artifact, sample=frame, name="census")
    parity = manifest.compiled.get("parity", {})
    print(
        f"mixed-type model saved in {time.perf_counter() - start:.1f} s: compiled"
        f" {manifest.compiled['status']}, {parity.get('rows')} gate rows,"
        f" {parity.get('mismatches')} mismatches, max difference {parity.get('max_difference')}",
        file=sys.stderr,
    )
    return artifact


def _prepare_boosters(work: Path) -> dict[str, Path]:
    """300-tree XGBoost and LightGBM classifiers of iris, and of the census-like table with its
    text columns as pandas categories and its missing cells, saved (and compiled where the
    gate passes) by save_model. Keys: the library, then " census" for the table's models."""
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    frame, target = mixed_frame()
    for column in ("workclass", "education", "sex"):
        frame[column] = frame[column].astype("category")  # type: ignore[index]
    census_xgb = xgb.XGBClassifier(n_estimators=300, max_depth=6, enable_categorical=True, n_jobs=1)
    models: dict[str, tuple[Any, Any, dict[str, Any]]] = {
        "xgboost": (xgb.XGBClassifier(n_estimators=300, max_depth=6, n_jobs=1).fit(x, y), x, {}),
        "lightgbm": (lgb.LGBMClassifier(n_estimators=300, verbose=-1, n_jobs=1).fit(x, y), x, {}),
        "xgboost census": (census_xgb.fit(frame, target == ">50K"), frame, {"name": "census"}),
        "lightgbm census": (
            lgb.LGBMClassifier(n_estimators=300, verbose=-1, n_jobs=1).fit(frame, target),
            frame,
            {"name": "census"},
        ),
    }
    iris = {"feature_names": FEATURES, "class_names": ["setosa", "versicolor", "virginica"]}
    return {
        key: _save_booster(
            work / key.replace(" ", "-"), model, sample, options or {**iris, "name": "iris"}, key
        )
        for key, (model, sample, options) in models.items()
    }


def _save_booster(path: Path, model: Any, sample: Any, options: dict[str, Any], key: str) -> Path:
    from flaskserve import save_model

    start = time.perf_counter()
    compiled = save_model(model, path, sample=sample, **options).compiled
    parity = compiled.get("parity", {})
    print(
        f"{key} model saved in {time.perf_counter() - start:.1f} s: compiled"
        f" {compiled['status']} {compiled.get('reason', '')}, {parity.get('rows')} gate rows"
        f" {parity.get('parts')}, {parity.get('mismatches')} mismatches, max difference"
        f" {parity.get('max_difference')}",
        file=sys.stderr,
    )
    return path


def _servers(
    work: Path, artifact: Path, mixed: Path, workers: int, boosters: dict[str, Path]
) -> list[tuple[str, list[str], dict[str, str]]]:
    iris_boosters = {k: v for k, v in boosters.items() if not k.endswith(" census")}
    census_boosters = {k.split()[0]: v for k, v in boosters.items() if k.endswith(" census")}
    gunicorn = [
        str(BIN / "gunicorn"),
        "-w",
        str(workers),
        "-b",
        "127.0.0.1:{port}",
        "--no-control-socket",
    ]
    flaskserve = [
        str(BIN / "flaskserve"),
        "serve",
        str(artifact),
        "--port",
        "{port}",
        "--workers",
        str(workers),
    ]
    return [
        (
            "(a) tutorial flask_server.py",
            [
                *gunicorn,
                "--chdir",
                str(work),
                "--pythonpath",
                str(REPO / "examples/tutorial"),
                "flask_server:app",
            ],
            {},
        ),
        ("(b) flaskserve, compiled (ONNX)", flaskserve, {}),
        ("(c) flaskserve, scikit-learn + batching", [*flaskserve, "--runtime", "sklearn"], {}),
        (
            "(e) mixed-type model, compiled (ONNX)",
            [*flaskserve[:2], str(mixed), *flaskserve[3:]],
            {},
        ),
        (
            "(e') mixed-type model, scikit-learn + batching",
            [*flaskserve[:2], str(mixed), *flaskserve[3:], "--runtime", "sklearn"],
            {},
        ),
        *[
            (
                f"({letter}{mark}) {library} 300 trees, {'compiled (ONNX)' if compiled else 'native'}",
                [*flaskserve[:2], str(path), *flaskserve[3:]]
                + ([] if compiled else ["--runtime", "sklearn"]),
                {},
            )
            for (library, path), letter in zip(iris_boosters.items(), "fg", strict=False)
            for mark, compiled in (("", True), ("'", False))
        ],
        *[
            (
                f"({letter}) {library} 300 trees, census-like table (categories), native",
                [*flaskserve[:2], str(path), *flaskserve[3:], "--runtime", "sklearn"],
                {},
            )
            for (library, path), letter in zip(census_boosters.items(), "hi", strict=False)
        ],
        (
            "(c') flaskserve, scikit-learn, no batching",
            [*flaskserve, "--runtime", "sklearn", "--threads", "1"],
            {"FLASKSERVE_BATCHING": "0"},
        ),
        (
            "(d') constant Flask endpoint, gunicorn's stock sync worker",
            [*gunicorn, "--pythonpath", str(REPO / "benchmarks"), "constant_app:app"],
            {},
        ),
        (  # the ceiling: the same server configuration flaskserve runs under
            "(d) constant Flask endpoint, flaskserve's worker",
            [
                *gunicorn,
                "-k",
                "flaskserve.serving.worker.BufferingSyncWorker",
                "--pythonpath",
                str(REPO / "benchmarks"),
                "constant_app:app",
            ],
            {},
        ),
    ]


def _measure_all(
    servers: list[tuple[str, list[str], dict[str, str]]],
    work: Path,
    args: argparse.Namespace,
    artifact: Path,
    mixed: Path,
) -> list[Result]:
    """Start every server, then load them in turn, round after round.

    A shared machine drifts by 10-20% over minutes; interleaving the servers and
    taking each one's median round keeps that drift out of the ratios.
    """
    running: list[tuple[Result, list[str], subprocess.Popen[bytes], str]] = []
    try:
        for name, command, env in servers:
            port = _free_port()
            process = subprocess.Popen(
                [part.replace("{port}", str(port)) for part in command],
                env={**os.environ, "FLASKSERVE_POLL_SECONDS": "0", **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            census = name.startswith((MIXED, *CENSUS_BOOSTERS))
            result = Result(name, dict(MIXED_ROW) if census else dict(ROW))
            running.append((result, command, process, f"http://127.0.0.1:{port}"))
        for result, _, _, url in running:
            _wait_ready(url, result.row)
            _wrk(url, 2, 4, work, result.row)  # warm up every worker
        for round_number in range(args.rounds):
            for result, _, _, url in running:
                for connections in (1, 16):
                    rps, p50, p99, errors = _wrk(url, args.duration, connections, work, result.row)
                    result.rounds.setdefault(connections, []).append((rps, p50, p99))
                    result.errors[connections] = result.errors.get(connections, 0) + errors
            print(f"round {round_number + 1} of {args.rounds} done", file=sys.stderr)
        if not (args.mixed_only or args.boosters_only):
            _paired(running, work, args)
        for result, command, process, url in running:
            result.worker_rss_mb = _worker_rss_mb(process.pid)
            if Path(command[0]).name == "flaskserve":  # the model servers, not the ceiling
                native = "scikit" in result.name or "native" in result.name
                runtime = "sklearn" if native else "compiled"
                if result.name.startswith(BOOSTERS):
                    result.batch_rows_per_s = _records_batch(url)
                    result.in_process_rows_per_s = _in_process(Path(command[2]), runtime)
                elif result.name.startswith((MIXED, *CENSUS_BOOSTERS)):
                    result.batch_rows_per_s = _mixed_batch(url)
                    result.in_process_rows_per_s = _mixed_in_process(Path(command[2]), runtime)
                else:
                    result.batch_rows_per_s = _batches(url)
                    result.in_process_rows_per_s = _in_process(artifact, runtime)
    finally:
        for _, _, process, _ in running:
            os.killpg(process.pid, signal.SIGTERM)
        for _, _, process, _ in running:
            process.wait(timeout=30)
    return [result for result, _, _, _ in running]


def _paired(
    running: list[tuple[Result, list[str], subprocess.Popen[bytes], str]],
    work: Path,
    args: argparse.Namespace,
) -> None:
    by_label = {entry[0].name[:3]: entry for entry in running}
    for label, other_label in PAIRED:
        (result, _, _, url), (other, _, _, other_url) = by_label[label], by_label[other_label]
        ratios = result.paired_ratios.setdefault(other.name, [])
        for _ in range(args.pairs):  # seconds apart: a drifting machine moves both alike
            rps = _wrk(url, args.pair_seconds, 16, work, ROW)[0]
            ratios.append(rps / _wrk(other_url, args.pair_seconds, 16, work, ROW)[0])
        print(f"{len(ratios)} pairs of {label} and {other_label} done", file=sys.stderr)


def _wait_ready(url: str, row: dict[str, Any]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.post(f"{url}/predict", json=row, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def _wrk(
    url: str,
    seconds: int,
    connections: int,
    work: Path,
    row: dict[str, Any],
    path: str = "/predict",
    think_ms: int = 0,
) -> tuple[float, float, float, int]:
    """wrk's requests/s, p50 and p99 (ms), and errors; with *think_ms*, each connection
    waits that long before each request, so the server is loaded below its capacity."""
    script = work / "post.lua"
    body = json.dumps(row).replace('"', '\\"')
    think = f"function delay()\n  return {think_ms}\nend\n" if think_ms else ""
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = "{body}"\nwrk.headers["Content-Type"] = "application/json"\n'
        + think
    )
    threads = min(2, connections)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"{url}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _latency_ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    p99 = _latency_ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return rps, p50, p99, errors


def _latency_ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _rows(count: int) -> np.ndarray:
    rng = np.random.default_rng(1234)
    return np.round(rng.uniform([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5], size=(count, 4)), 1)


def _batches(url: str) -> dict[str, float]:
    out = {}
    for count, repeats in ((1_000, 10), (10_000, 4)):
        rows = _rows(count)
        records = json.dumps([dict(zip(FEATURES, r, strict=True)) for r in rows.tolist()])
        tensor = json.dumps(
            {
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [count, 4],
                        "datatype": "FP64",
                        "data": rows.ravel().tolist(),
                    }
                ]
            }
        )
        for label, path, body in (
            ("records", "/predict", records),
            ("v2", "/v2/models/iris/infer", tensor),
        ):
            rates = []
            for _ in range(PASSES):
                start = time.perf_counter()
                for _ in range(repeats):
                    response = requests.post(
                        url + path,
                        data=body,
                        headers={"Content-Type": "application/json"},
                        timeout=120,
                    )
                    response.raise_for_status()
                rates.append(count * repeats / (time.perf_counter() - start))
            out[f"{count} {label}"] = float(np.median(rates))
    return out


def _in_process(artifact: Path, runtime: str) -> dict[int, float]:
    from flaskserve.admission import load_runtime

    model = load_runtime(artifact, runtime)
    native = getattr(model, "native", None)
    if native is not None:  # large batches run on native code once it is built: wait for it
        native.wait(300)
    out = {}
    for count, repeats in ((1_000, 10), (10_000, 4)):
        rows = _rows(count)
        rates = []
        for _ in range(PASSES):
            start = time.perf_counter()
            for _ in range(repeats):
                model.predict(rows)
            rates.append(count * repeats / (time.perf_counter() - start))
        out[count] = float(np.median(rates))
    return out


def _records_batch(url: str) -> dict[str, float]:
    """10,000 iris records to ``/predict``, rows/s (the median of PASSES posts)."""
    body = json.dumps([dict(zip(FEATURES, r, strict=True)) for r in _rows(10_000).tolist()])
    rates = []
    for _ in range(PASSES):
        start = time.perf_counter()
        response = requests.post(
            url + "/predict", data=body, headers={"Content-Type": "application/json"}, timeout=120
        )
        response.raise_for_status()
        rates.append(10_000 / (time.perf_counter() - start))
    return {"10000 records": float(np.median(rates))}


def _mixed_records(count: int) -> list[dict[str, Any]]:
    """*count* records of the mixed-type model (not its training rows), missing cells as null."""
    frame, _ = mixed_frame(count, seed=99)
    records: list[dict[str, Any]] = frame.astype(object).to_dict(orient="records")  # type: ignore[attr-defined]
    for record in records:
        for key, value in record.items():
            if isinstance(value, float) and value != value:
                record[key] = None
            elif hasattr(value, "item"):
                record[key] = value.item()
    return records


def _mixed_batch(url: str) -> dict[str, float]:
    body = json.dumps(_mixed_records(10_000))
    rates = []
    for _ in range(PASSES):
        start = time.perf_counter()
        response = requests.post(
            url + "/predict", data=body, headers={"Content-Type": "application/json"}, timeout=120
        )
        response.raise_for_status()
        rates.append(10_000 / (time.perf_counter() - start))
    return {"10000 records": float(np.median(rates))}


def _mixed_in_process(artifact: Path, runtime: str) -> dict[int, float]:
    """``runtime.predict`` of the same 10,000 rows, decoded once beforehand."""
    from flaskserve.admission import load_runtime
    from flaskserve.codecs.records import decode_records

    model = load_runtime(artifact, runtime)
    rows = decode_records(_mixed_records(10_000), model.manifest, 10_000)
    rates = []
    for _ in range(PASSES):
        start = time.perf_counter()
        model.predict(rows)
        rates.append(10_000 / (time.perf_counter() - start))
    return {10_000: float(np.median(rates))}


def _worker_rss_mb(master: int) -> float:
    children = subprocess.run(
        ["pgrep", "-P", str(master)], capture_output=True, text=True
    ).stdout.split()
    if not children:  # flaskserve serve is itself the gunicorn master
        children = [str(master)]
    sizes = []
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        sizes.append(int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024)  # type: ignore[union-attr]
    return float(np.mean(sizes))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _print_table(results: list[Result], args: argparse.Namespace) -> None:
    tutorial, ceiling = results[0], results[-1]
    base_rps, _, base_p99 = tutorial.median(16)
    ceiling_rps = ceiling.median(16)[0]
    print(
        f"\n{os.cpu_count()} cores, {args.workers} gunicorn workers each, wrk on the same machine,"
        f" {args.duration} s per run, median of {args.rounds} interleaved rounds\n"
    )
    print(
        "| server | req/s c=1 | p50/p99 ms c=1 | req/s c=16 | p50/p99 ms c=16 | × (a) c=16 | p99 ÷ (a) | % of (d) c=16 | c=16 rounds | % of (d) within rounds | errors | worker RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        rps1, p50_1, p99_1 = r.median(1)
        rps, p50, p99 = r.median(16)
        rounds = " / ".join(f"{run[0]:.0f}" for run in r.rounds[16])
        # in one round the ceiling ran within about a minute of this server: the ratio
        # drifts less than one of two medians that may come from different rounds
        pairs = zip(r.rounds[16], ceiling.rounds[16], strict=True)
        within = " / ".join(f"{100 * run[0] / top[0]:.0f}" for run, top in pairs)
        print(
            f"| {r.name} | {rps1:.0f} | {p50_1:.2f} / {p99_1:.2f} | {rps:.0f} | {p50:.2f} / {p99:.2f} "
            f"| {rps / base_rps:.1f}× | {base_p99 / p99:.1f}× | {100 * rps / ceiling_rps:.0f}% "
            f"| {rounds} | {within} | {sum(r.errors.values())} | {r.worker_rss_mb:.0f} |"
        )
    print(
        f"\nc=16 requests/s, two servers loaded alternately, {args.pair_seconds} s each,"
        f" {args.pairs} pairs:\n\n| ratio | median | min | max | each pair |\n|---|---|---|---|---|"
    )
    for r in results:
        for other, ratios in r.paired_ratios.items():
            as_share = other == ceiling.name  # of the ceiling in %, of the tutorial as a multiple
            median, low, high = (
                _ratio(x, as_share) for x in (float(np.median(ratios)), min(ratios), max(ratios))
            )
            each = " ".join(_ratio(x, as_share) for x in ratios)
            print(f"| {r.name[:3]} ÷ {other[:3]} | {median} | {low} | {high} | {each} |")
    print("\n| server | batch | rows/s over HTTP | rows/s in process | HTTP ÷ in-process |")
    print("|---|---|---|---|---|")
    for r in results:
        for key, rate in r.batch_rows_per_s.items():
            inner = r.in_process_rows_per_s[int(key.split()[0])]
            print(f"| {r.name} | {key} | {rate:,.0f} | {inner:,.0f} | {100 * rate / inner:.0f}% |")


def _print_mixed(results: list[Result], args: argparse.Namespace) -> None:
    """The mixed-type model's rows beside the iris compiled model's, with the targets."""
    iris = next(r for r in results if r.name.startswith("(b)"))
    iris_rps = iris.median(16)[0]
    print(
        f"\n{os.cpu_count()} cores, {args.workers} workers, {args.duration} s per wrk run,"
        f" median of {args.rounds} rounds\n\n| server | req/s c=16 | p50/p99 ms c=16 |"
        " ÷ (b) c=16 | rounds c=16 | 10,000-row batch rows/s over HTTP | in process | HTTP ÷ in process |"
        "\n|---|---|---|---|---|---|---|---|"
    )
    for r in results:
        if r.name.startswith("(b)") or r.name.startswith(MIXED):
            rps, p50, p99 = r.median(16)
            rounds = " / ".join(f"{run[0]:.0f}" for run in r.rounds[16])
            key = next(k for k in r.batch_rows_per_s if k.startswith("10000"))
            http, inner = r.batch_rows_per_s[key], r.in_process_rows_per_s[10_000]
            print(
                f"| {r.name} | {rps:.0f} | {p50:.2f} / {p99:.2f} | {100 * rps / iris_rps:.0f}% |"
                f" {rounds} | {http:,.0f} | {inner:,.0f} | {100 * http / inner:.0f}% |"
            )
    print("\ntargets: (e) ≥ 50% of (b) in req/s c=16; (e) HTTP ≥ 50% of in process")


def _print_boosters(results: list[Result], args: argparse.Namespace) -> None:
    """The XGBoost and LightGBM models' rows beside the iris forest's, compiled and native."""
    iris = next(r for r in results if r.name.startswith("(b)"))
    iris_rps = iris.median(16)[0]
    print(
        f"\n{os.cpu_count()} cores, {args.workers} workers, {args.duration} s per wrk run,"
        f" median of {args.rounds} rounds\n\n| server | req/s c=16 | p50/p99 ms c=16 |"
        " ÷ (b) c=16 | rounds c=16 | 10,000-row batch rows/s over HTTP | in process | HTTP ÷ in process |"
        "\n|---|---|---|---|---|---|---|---|"
    )
    for r in results:
        if r.name.startswith(("(b)", *BOOSTERS, *CENSUS_BOOSTERS)):
            rps, p50, p99 = r.median(16)
            rounds = " / ".join(f"{run[0]:.0f}" for run in r.rounds[16])
            key = next(k for k in r.batch_rows_per_s if k.startswith("10000"))
            http, inner = r.batch_rows_per_s[key], r.in_process_rows_per_s[10_000]
            print(
                f"| {r.name} | {rps:.0f} | {p50:.2f} / {p99:.2f} | {100 * rps / iris_rps:.0f}% |"
                f" {rounds} | {http:,.0f} | {inner:,.0f} | {100 * http / inner:.0f}% |"
            )


def _ratio(value: float, as_share: bool) -> str:
    return f"{100 * value:.0f}%" if as_share else f"{value:.1f}×"


if __name__ == "__main__":
    main()
