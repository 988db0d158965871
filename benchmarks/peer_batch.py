"""Large batches side by side: flaskserve against MLServer, one run, answers checked.

Trains the tutorial's forest (``examples/tutorial/train.py``: 300 trees, seed 1234)
and ``flaskserve train``'s artifact of the same forest, starts ``flaskserve serve``
(``--workers 2``, three times: as shipped, large batches on native code where
``flaskserve[native]`` and a C compiler are there; with ``FLASKSERVE_NATIVE_BATCHES=0``,
on ONNX Runtime's threads; with ``FLASKSERVE_PARALLEL_ROWS=0``, each batch on one
thread) and MLServer with its scikit-learn runtime
(``parallel_workers`` 2) on free loopback ports, and sends each, in interleaved
passes, 10,000-row batches: to flaskserve as records (``/predict``) and as a v2
FP64 tensor, to MLServer as the same v2 tensor. Every answer is compared with the
forest's own ``predict`` on the rows. Prints rows/s (the median pass) and the
ratios to MLServer.

MLServer pins its own dependencies, so it runs from its own environment:

    python -m venv /tmp/mlserver
    /tmp/mlserver/bin/pip install mlserver mlserver-sklearn "uvloop<0.22"  # 0.22 breaks MLServer 1.7
    python benchmarks/peer_batch.py --mlserver /tmp/mlserver/bin/mlserver [--passes 5]

The forest is loaded with ``pickle`` here (MLServer's runtime reads only pickles): it is
the file this script just trained. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = 10_000
REQUESTS_PER_PASS = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mlserver", required=True, help="the mlserver executable")
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        forest = _train(work)
        rows = _rows(ROWS)
        truth = forest.predict(rows).tolist()
        servers = [
            _start_mlserver(args.mlserver, work, args.workers),
            _start_flaskserve(work, args.workers, {}),
            _start_flaskserve(work, args.workers, {"FLASKSERVE_NATIVE_BATCHES": "0"}),
            _start_flaskserve(work, args.workers, {"FLASKSERVE_PARALLEL_ROWS": "0"}),
        ]
        try:
            mlserver, flaskserve, onnx, one_thread = (url for url, _ in servers)
            v2 = "/v2/models/iris/infer"
            cases = {
                "MLServer v2 (scikit-learn)": (mlserver + v2, "v2"),
                "flaskserve /predict (records)": (flaskserve + "/predict", "records"),
                "flaskserve v2": (flaskserve + v2, "v2"),
                "flaskserve /predict, ONNX Runtime threads": (onnx + "/predict", "records"),
                "flaskserve v2, ONNX Runtime threads": (onnx + v2, "v2"),
                "flaskserve /predict, one thread a batch": (one_thread + "/predict", "records"),
                "flaskserve v2, one thread a batch": (one_thread + v2, "v2"),
            }
            rates = _measure(cases, rows, truth, args.passes)
        finally:
            for _, process in servers:  # the whole group: MLServer's pool workers too
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(30)
    _print(rates, args)


def _train(work: Path) -> Any:
    subprocess.run(
        [sys.executable, str(REPO / "examples/tutorial/train.py")],
        cwd=work,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [str(BIN / "flaskserve"), "train", "--out", str(work / "iris")],
        check=True,
        capture_output=True,
    )
    model = work / "mlserver" / "iris"
    model.mkdir(parents=True)
    (work / "build" / "model.pkl").rename(model / "model.pkl")
    with (model / "model.pkl").open("rb") as f:
        return pickle.load(f)  # the forest this script trained a moment ago


def _start_mlserver(
    executable: str, work: Path, workers: int
) -> tuple[str, subprocess.Popen[bytes]]:
    root, port = work / "mlserver", _free_port()
    settings = {
        "http_port": port,
        "grpc_port": _free_port(),
        "metrics_port": _free_port(),
        "parallel_workers": workers,
        "host": "127.0.0.1",
        "metrics_dir": str(work / "mlserver-metrics"),  # default: the current directory
    }
    (root / "settings.json").write_text(json.dumps(settings))
    model = {
        "name": "iris",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.pkl", "version": "1"},
    }
    (root / "iris" / "model-settings.json").write_text(json.dumps(model))
    log = (work / "mlserver.log").open("w")
    process = subprocess.Popen(
        [executable, "start", str(root)], stdout=log, stderr=log, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/v2/models/iris/ready", process)
    return url, process


def _start_flaskserve(
    work: Path, workers: int, settings: dict[str, str]
) -> tuple[str, subprocess.Popen[bytes]]:
    """``flaskserve serve`` with *settings* (``FLASKSERVE_*`` variables) added."""
    port = _free_port()
    command = [str(BIN / "flaskserve"), "serve", str(work / "iris")]
    command += ["--port", str(port), "--workers", str(workers)]
    environ = {**os.environ, **settings}
    log = (work / f"flaskserve-{port}.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=log, env=environ, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/v2/models/iris/ready", process)
    return url, process


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} never became ready (see the server's log)")


def _measure(
    cases: dict[str, tuple[str, str]], rows: np.ndarray, truth: list[int], passes: int
) -> dict[str, float]:
    bodies = {"records": _records(rows), "v2": _tensor(rows)}
    for url, kind in cases.values():  # warm-up, and the answers checked once per server
        _check(_post(url, bodies[kind]), kind, truth, url)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(passes):  # interleaved, so that the machine's drift falls on every server
        for name, (url, kind) in cases.items():
            start = time.perf_counter()
            for _ in range(REQUESTS_PER_PASS):
                answer = _post(url, bodies[kind])
            samples[name].append(ROWS * REQUESTS_PER_PASS / (time.perf_counter() - start))
            _check(answer, kind, truth, url)
    return {name: float(np.median(values)) for name, values in samples.items()}


def _post(url: str, body: bytes) -> Any:
    response = requests.post(
        url, data=body, headers={"Content-Type": "application/json"}, timeout=120
    )
    response.raise_for_status()
    return response.json()


def _check(answer: Any, kind: str, truth: list[int], url: str) -> None:
    labels = answer["result"] if kind == "records" else answer["outputs"][0]["data"]
    if [int(label) for label in labels] != truth:
        raise SystemExit(f"{url} answered labels that differ from the forest's own predict")


def _rows(count: int) -> np.ndarray:
    rng = np.random.default_rng(1234)
    return np.round(rng.uniform([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5], size=(count, 4)), 1)


def _records(rows: np.ndarray) -> bytes:
    return json.dumps([dict(zip(FEATURES, r, strict=True)) for r in rows.tolist()]).encode()


def _tensor(rows: np.ndarray) -> bytes:
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64"}
    return json.dumps({"inputs": [{**tensor, "data": rows.ravel().tolist()}]}).encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _print(rates: dict[str, float], args: argparse.Namespace) -> None:
    peer = rates["MLServer v2 (scikit-learn)"]
    print(f"\n{ROWS:,}-row batches, {args.workers} workers each, median of {args.passes} passes\n")
    print("| server | rows/s | ÷ MLServer |")
    print("|---|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {rate / peer:.2f}x |")


if __name__ == "__main__":
    main()
