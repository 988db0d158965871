"""Instructions one request costs in-process: a figure a noisy, shared machine cannot move.

Throughput on a shared 2-core machine drifts 10-20% between runs, so a change
that saves 3% cannot be seen in requests/s. Valgrind's callgrind counts the
instructions the CPU executes, the same from run to run: this script calls the
WSGI app directly (no sockets, no server) for the tutorial's request, counts
instructions over N and 5N requests after a warm-up, and reports the difference
per request, for flaskserve's ``/predict`` (compiled runtime) and for the
constant Flask endpoint of ``constant_app.py``. It runs itself under
``setarch -R`` (fixed addresses) where it can, and makes the metrics flushes
itself, one per 100 requests, so that neither moves the count between runs.

    python benchmarks/request_cost.py              # needs valgrind: apt-get install valgrind
    python benchmarks/request_cost.py --model DIR  # an existing artifact instead of training one
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
WARM_UP = 200
FIXED_ADDRESSES = "FLASKSERVE_COST_FIXED_ADDRESSES"
FLUSH_EVERY = 100  # requests per metrics flush: fewer than a server's ~200 per 0.1 s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, help="artifact to serve (default: train the tutorial's)"
    )
    parser.add_argument("--requests", type=int, default=200, help="N: requests in the short count")
    parser.add_argument("--app", choices=("flaskserve", "constant"), help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.app:  # the child, running under callgrind
        _serve_requests(args.app, args.count, args.model)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed: apt-get install valgrind")
    if shutil.which("setarch") and FIXED_ADDRESSES not in os.environ:
        # Run again without address randomisation: orjson's parse takes more or fewer
        # instructions depending on where its buffers land (±20k per request between runs
        # with it; within 0.5k without).
        os.environ[FIXED_ADDRESSES] = "1"
        os.execvp("setarch", ["setarch", platform.machine(), "-R", sys.executable, *sys.argv])
    with tempfile.TemporaryDirectory(prefix="flaskserve-cost-") as tmp:
        model = args.model
        if model is None:
            model = Path(tmp) / "iris"
            flaskserve = Path(sys.executable).parent / "flaskserve"
            subprocess.run(
                [str(flaskserve), "train", "--out", str(model)], check=True, capture_output=True
            )
        costs = {
            app: _per_request(app, args.requests, model, Path(tmp))
            for app in ("flaskserve", "constant")
        }
    print("\n| app | instructions per request | ÷ constant endpoint |")
    print("|---|---:|---:|")
    for app, cost in costs.items():
        print(f"| {app} | {cost:,.0f} | {cost / costs['constant']:.2f}× |")


def _per_request(app: str, count: int, model: Path, tmp: Path) -> float:
    short, long = (_instructions(app, n, model, tmp) for n in (count, 5 * count))
    return (long - short) / (4 * count)


def _instructions(app: str, count: int, model: Path, tmp: Path) -> int:
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",  # start-up and imports are not counted
            f"--callgrind-out-file={tmp / 'callgrind.out'}",
            sys.executable,
            __file__,
            "--app",
            app,
            "--count",
            str(count),
            "--model",
            str(model),
        ],
        env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict layouts in every run
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        sys.exit(f"callgrind printed no count:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def _serve_requests(app_name: str, count: int, model: Path) -> None:
    os.environ["FLASKSERVE_POLL_SECONDS"] = "0"
    os.environ["FLASKSERVE_MODEL_DIR"] = str(model)
    # multiprocess metrics, as under flaskserve serve
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="flaskserve-cost-metrics-")
    if app_name == "constant":
        sys.path.insert(0, str(REPO / "benchmarks"))
        app = importlib.import_module("constant_app").app
        flush = None
    else:
        from flaskserve import metrics
        from flaskserve.app import create_app

        # Under valgrind a request takes ~50x longer, so the metrics thread, which flushes
        # every 0.1 s of wall time, would flush ~50x as often per request as in a server
        # (where 0.1 s holds ~200 answers per worker), and at moments that vary run to run.
        # It is held off; a flush is made here every FLUSH_EVERY requests instead.
        metrics.FLUSH_SECONDS = 3600.0
        app = create_app()
        flush = app.extensions["flaskserve"].metrics.flush
    body = json.dumps(ROW).encode()
    statuses: list[str] = []

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> None:
        statuses.append(status)

    def one() -> None:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/predict",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "5000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/json",
            "HTTP_HOST": "127.0.0.1:5000",
            "REMOTE_ADDR": "127.0.0.1",
        }
        response = app(environ, start_response)
        b"".join(response)
        getattr(response, "close", lambda: None)()

    for _ in range(WARM_UP):
        one()
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "--instr=on", pid], check=True, capture_output=True)
    for done in range(1, count + 1):
        one()
        if flush is not None and done % FLUSH_EVERY == 0:
            flush()
    subprocess.run(["callgrind_control", "--instr=off", pid], check=True, capture_output=True)
    if any(not s.startswith("200") for s in statuses):
        sys.exit(f"a request failed: {sorted(set(statuses))}")


if __name__ == "__main__":
    main()
