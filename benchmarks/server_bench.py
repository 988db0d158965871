"""Benchmark the two HTTP servers of ``flaskserve serve``: gunicorn and granian.

One run, one machine: trains the tutorial model (compiled), starts every server
below on a free loopback port with the same worker count, warms each up, then
drives them with wrk (Debian's ``wrk`` package) at 16 connections with the
tutorial's single-row request, one after another, for ``--rounds`` rounds (each
server's median round is reported). Then it loads the two servers of each pair
alternately, ``--pair-seconds`` each, ``--pairs`` times, and prints each pair's
ratio of requests/s: measured seconds apart, so the drift of a shared machine
moves both alike.

    python benchmarks/server_bench.py [--duration 6] [--rounds 3] [--pairs 8] [--workers 2]

The servers: ``flaskserve serve`` under gunicorn (flaskserve's buffering sync
worker) and under granian (``--server granian``, as configured by flaskserve);
granian's own command line with one blocking thread per worker (the fastest
granian configuration, which stalls on slow bodies); and the constant endpoint
(``constant_app.py``, no model) under each server, the framework's ceiling.
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
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
CONNECTIONS = 16
# (label, label): the second's requests/s ÷ the first's, measured alternately
PAIRS = (("A", "B"), ("D", "E"), ("A", "C"))


@dataclass
class Server:
    label: str
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    rounds: list[tuple[float, float, float]] = field(default_factory=list)  # req/s, p50, p99
    cpu_us: list[float] = field(default_factory=list)  # the server's CPU time per request
    errors: int = 0
    url: str = ""
    process: subprocess.Popen[bytes] | None = None

    def median(self) -> tuple[float, float, float]:
        """req/s, p50 and p99 of the round with the median req/s."""
        runs = sorted(self.rounds)
        return runs[len(runs) // 2]


def servers(artifact: Path, workers: int) -> list[Server]:
    serve = [str(BIN / "flaskserve"), "serve", str(artifact), "--port", "{port}"]
    serve += ["--workers", str(workers)]
    granian = [str(BIN / "granian"), "--interface", "wsgi", "--workers", str(workers)]
    granian += ["--port", "{port}", "--no-ws", "--log-level", "warning"]
    gunicorn = [str(BIN / "gunicorn"), "-w", str(workers), "-b", "127.0.0.1:{port}"]
    gunicorn += ["--no-control-socket", "-k", "flaskserve.serving.worker.BufferingSyncWorker"]
    bench = str(REPO / "benchmarks")
    return [
        Server("A", "flaskserve serve (gunicorn)", serve),
        Server("B", "flaskserve serve --server granian", [*serve, "--server", "granian"]),
        Server(
            "C",
            "granian CLI, --blocking-threads 1",
            [*granian, "--blocking-threads", "1", "--factory", "flaskserve.app:create_app"],
            {"FLASKSERVE_MODEL_DIR": str(artifact)},
        ),
        Server(
            "D",
            "constant endpoint, gunicorn + flaskserve worker",
            [*gunicorn, "--pythonpath", bench, "constant_app:app"],
        ),
        Server(
            "E",
            "constant endpoint, granian, --blocking-threads 1",
            [*granian, "--blocking-threads", "1", "--working-dir", bench, "constant_app:app"],
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=6, help="seconds per round's wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every server")
    parser.add_argument("--pairs", type=int, default=8, help="alternate runs of each pair")
    parser.add_argument("--pair-seconds", type=int, default=3, help="seconds per paired run")
    parser.add_argument("--workers", type=int, default=2, help="workers of every server")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    if not (BIN / "granian").exists():
        sys.exit("granian is needed: pip install 'flaskserve[granian]'")
    with tempfile.TemporaryDirectory(prefix="flaskserve-bench-") as tmp:
        work = Path(tmp)
        artifact = work / "iris"
        subprocess.run(
            [str(BIN / "flaskserve"), "train", "--out", str(artifact)],
            check=True,
            capture_output=True,
        )
        (work / "post.lua").write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(json.dumps(ROW))}\n"
        )
        running = servers(artifact, args.workers)
        ratios = measure(running, work, args)
    report(running, ratios, args)


def measure(running: list[Server], work: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    ratios: dict[str, list[float]] = {}
    try:
        for server in running:
            port = _free_port()
            server.url = f"http://127.0.0.1:{port}"
            server.process = subprocess.Popen(
                [part.replace("{port}", str(port)) for part in server.command],
                env={**os.environ, "FLASKSERVE_POLL_SECONDS": "0", **server.env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        for server in running:
            _wait_ready(server.url)
            wrk(server.url, 2, work)  # warm every worker up
        for number in range(args.rounds):
            for server in running:
                assert server.process is not None
                cpu = cpu_seconds(server.process.pid)
                rps, p50, p99, errors = wrk(server.url, args.duration, work)
                cpu = cpu_seconds(server.process.pid) - cpu
                server.rounds.append((rps, p50, p99))
                server.cpu_us.append(1e6 * cpu / (rps * args.duration))
                server.errors += errors
            print(f"round {number + 1} of {args.rounds} done", file=sys.stderr)
        by_label = {server.label: server for server in running}
        for first, second in PAIRS:
            pair = ratios.setdefault(f"{second} ÷ {first}", [])
            for _ in range(args.pairs):
                base = wrk(by_label[first].url, args.pair_seconds, work)[0]
                pair.append(wrk(by_label[second].url, args.pair_seconds, work)[0] / base)
            print(f"{args.pairs} pairs of {first} and {second} done", file=sys.stderr)
    finally:
        for server in running:
            if server.process is not None:
                os.killpg(server.process.pid, signal.SIGTERM)
        for server in running:
            if server.process is not None:
                server.process.wait(timeout=60)
    return ratios


def wrk(url: str, seconds: int, work: Path) -> tuple[float, float, float, int]:
    """req/s, p50 ms, p99 ms and errors of one wrk run at :data:`CONNECTIONS` connections."""
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    command += ["-s", str(work / "post.lua"), f"{url}/predict"]
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    p50, p99 = (_ms(_find(rf"{q}%\s+([\d.]+\w+)", out)) for q in (50, 99))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return rps, p50, p99, errors


def cpu_seconds(master: int) -> float:
    """CPU time (user + system, every thread) used so far by *master* and its live children."""
    total, pending = 0.0, [master]
    while pending:
        pid = pending.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # a process or thread that ended meanwhile
            continue
    return total


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"no {pattern!r} in wrk's output:\n{text}")
    return match.group(1)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.post(f"{url}/predict", json=ROW, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within 60 s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def report(running: list[Server], ratios: dict[str, list[float]], args: argparse.Namespace) -> None:
    print(
        f"\n{os.cpu_count()} cores, {args.workers} workers each, wrk -c{CONNECTIONS} on the same"
        f" machine, {args.duration} s per run, median of {args.rounds} rounds\n"
    )
    print(
        "| | server | req/s | p50 ms | p99 ms | rounds req/s | server CPU µs per request"
        " (median; rounds) | errors |\n|---|---|---|---|---|---|---|---|"
    )
    for s in running:
        rps, p50, p99 = s.median()
        rounds = " / ".join(f"{r[0]:.0f}" for r in s.rounds)
        cpu = f"{statistics.median(s.cpu_us):.0f}; " + " / ".join(f"{c:.0f}" for c in s.cpu_us)
        print(
            f"| {s.label} | {s.name} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {rounds} | {cpu}"
            f" | {s.errors} |"
        )
    print(
        f"\nreq/s ratios, the two servers loaded alternately, {args.pair_seconds} s each:\n\n"
        "| ratio | median | min | max | each pair |\n|---|---|---|---|---|"
    )
    for name, values in ratios.items():
        each = " ".join(f"{v:.2f}" for v in values)
        print(
            f"| {name} | {statistics.median(values):.2f}× | {min(values):.2f} | {max(values):.2f}"
            f" | {each} |"
        )


if __name__ == "__main__":
    main()
