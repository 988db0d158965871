"""Soak: sustained load with a share of invalid requests, watching every worker's memory.

Promise 8 of docs/reliability.md. The run is on demand; the test runs a shorter one:

    python benchmarks/soak.py                    # 60 s at concurrency 16, 10% invalid
    python benchmarks/soak.py --duration 900     # the long run (15 minutes)
    python benchmarks/soak.py --url http://127.0.0.1:5000 --master-pid 1234 --model-dir build/iris

Without ``--url`` it trains the tutorial model (or takes ``--model-dir``) and starts
``flaskserve serve`` on a free 127.0.0.1 port itself. Client threads post the valid rows
stored in the artifact's manifest (answers known from training) mixed with invalid bodies
of six kinds, each of which must get a 4xx JSON error. Once a second it reads every
worker's RSS and open file descriptors (less its live client connections) from ``/proc`` (workers are the children of the
gunicorn master). It prints requests by status, 5xx, transport errors, req/s, p50/p99
latency and, per worker, the RSS at the end of the warm-up, at the end, and the slope of a
least-squares fit over the samples after the warm-up; the last line is ``SOAK_RESULT
{json}``. The exit status is 1 when a gate fails: any 5xx, wrong answer, transport error
or other unexpected answer, a worker that died or was replaced, or an RSS slope of
1 MB/min or more for any worker (over a run of 2 minutes or more after the warm-up; a
shorter run gates an RSS growth of 2 MB, the slope being noise there).

Traffic goes to the given URL only (127.0.0.1 when the server is started here), and every
client loop is bounded in time and in count.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

BIN = Path(sys.executable).parent
TUTORIAL_ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
JSON_HEADERS = {"Content-Type": "application/json"}
TIMEOUT = (5.0, 30.0)  # connect, read: far above any answer here, far below a hang
MAX_SLOPE_MB_PER_MIN = 1.0
#: below this many seconds after the warm-up a slope is the allocator's noise (a 0.5 MB step
#: reads as 1.4 MB/min over 30 s), so a short run gates the growth itself instead
SLOPE_WINDOW_S = 120
MAX_SHORT_GROWTH_MB = 2.0  # a leak of 100 bytes a request at 1,000 req/s grows 3 MB in 30 s
MAX_FD_DRIFT = 2  # a sync worker holds zero or one client socket at any instant
FD_SAMPLES = 5  # descriptors after warm-up and at the end: the fewest of this many samples
MAX_REQUESTS_PER_CLIENT = 2_000_000  # a bound on each loop beyond its deadline


@dataclass(frozen=True)
class Case:
    """One request body, and what a right answer to it is."""

    kind: str  # "valid" or the invalid kind
    body: bytes
    expected: list[Any] | None  # the result of a valid row; None: expect a 4xx JSON error


@dataclass(frozen=True)
class Call:
    at: float  # seconds since the load began
    outcome: str  # ok | rejected | wrong | server_error | unexpected | transport
    status: int | None
    latency: float
    detail: str = ""


@dataclass
class Samples:
    """Once a second: each worker's RSS (kB) and open descriptors, keyed by pid."""

    times: list[float] = field(default_factory=list)
    rss_kb: list[dict[int, int]] = field(default_factory=list)
    fds: list[dict[int, int]] = field(default_factory=list)


# --- what to send ------------------------------------------------------------------------------


def valid_cases(model_dir: Path | None) -> tuple[list[str], list[Case]]:
    """The manifest's smoke rows, one per request and all in one; else the tutorial row."""
    if model_dir is None:
        return list(TUTORIAL_ROW), [Case("valid", json.dumps(TUTORIAL_ROW).encode(), None)]
    manifest = json.loads((model_dir / "flaskserve.json").read_text(encoding="utf-8"))
    names = [f["name"] for f in manifest["features"]]
    inputs, predictions = manifest["sample"]["inputs"], manifest["sample"]["predictions"]
    cases = [
        Case("valid", json.dumps(dict(zip(names, row, strict=True))).encode(), [answer])
        for row, answer in zip(inputs, predictions, strict=True)
    ]
    cases.append(Case("valid", json.dumps(inputs).encode(), list(predictions)))
    return names, cases


def invalid_cases(names: list[str]) -> list[Case]:
    """Six kinds of bad body, each of which must get a 4xx JSON error, never a 5xx."""
    good = {name: 1.0 for name in names}
    first = names[0]
    bodies = {
        "string-feature": json.dumps({**good, first: "five point nine"}),
        "missing-feature": json.dumps({k: v for k, v in good.items() if k != first}),
        "malformed-json": json.dumps(good)[:-1] + ",}",
        "huge-number": json.dumps(good).replace("1.0", "1e999", 1),
        "nested-array": json.dumps({**good, first: [[1.0, 2.0]]}),
        "empty-body": "",
    }
    return [Case(kind, body.encode(), None) for kind, body in bodies.items()]


def reference_answers(url: str, cases: list[Case]) -> list[Case]:
    """Fill in the answer of a valid case that has none yet, from the quiet server."""
    filled = []
    for case in cases:
        if case.expected is None and case.kind == "valid":
            response = requests.post(
                f"{url}/predict", data=case.body, headers=JSON_HEADERS, timeout=TIMEOUT
            )
            response.raise_for_status()
            case = Case(case.kind, case.body, response.json()["result"])
        filled.append(case)
    return filled


# --- the load ----------------------------------------------------------------------------------


def _same(got: Any, expected: list[Any]) -> bool:
    if not isinstance(got, list) or len(got) != len(expected):
        return False
    for a, b in zip(got, expected, strict=True):
        if isinstance(a, float) or isinstance(b, float):
            if not isinstance(a, int | float) or not math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6):
                return False
        elif a != b:
            return False
    return True


def classify(case: Case, response: requests.Response) -> tuple[str, str]:
    """The outcome of one answered request, and what was wrong with it if anything."""
    status = response.status_code
    if status >= 500:
        return "server_error", response.text[:200]
    try:
        body = response.json()
    except ValueError:
        return "unexpected", f"{status} not JSON: {response.text[:200]}"
    if case.expected is not None:
        if status != 200:
            return "unexpected", f"{status} {response.text[:200]}"
        right = isinstance(body, dict) and _same(body.get("result"), case.expected)
        return ("ok", "") if right else ("wrong", response.text[:200])
    if 400 <= status < 500 and isinstance(body, dict) and isinstance(body.get("error"), str):
        return "rejected", ""
    return "unexpected", f"{case.kind}: {status} {response.text[:200]}"


@dataclass
class Load:
    """Client threads, each with its own session, until the deadline."""

    url: str
    valid: list[Case]
    invalid: list[Case]
    invalid_share: float
    concurrency: int
    calls: list[Call] = field(default_factory=list)

    def run(self, began: float, seconds: float) -> None:
        lock = threading.Lock()
        threads = [
            threading.Thread(target=self._client, args=(seed, began, seconds, lock), daemon=True)
            for seed in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + 120)
        if any(thread.is_alive() for thread in threads):
            raise RuntimeError("a client thread hung past its deadline")

    def _client(self, seed: int, began: float, seconds: float, lock: threading.Lock) -> None:
        rng = random.Random(seed)
        session = requests.Session()
        mine: list[Call] = []
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() - began >= seconds:
                break
            pool = self.invalid if rng.random() < self.invalid_share else self.valid
            mine.append(self._call(session, rng.choice(pool), began))
        session.close()
        with lock:
            self.calls.extend(mine)

    def _call(self, session: requests.Session, case: Case, began: float) -> Call:
        started = time.monotonic()
        try:
            response = session.post(
                f"{self.url}/predict", data=case.body, headers=JSON_HEADERS, timeout=TIMEOUT
            )
        except requests.RequestException as e:
            detail = f"{type(e).__name__}: {e}"[:300]
            return Call(started - began, "transport", None, time.monotonic() - started, detail)
        latency = time.monotonic() - started
        outcome, detail = classify(case, response)
        return Call(started - began, outcome, response.status_code, latency, detail)


# --- the workers' memory -------------------------------------------------------------------------


def worker_pids(master: int) -> list[int]:
    """The children of *master*, from ``/proc`` (every thread's ``children`` file)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{master}/task").glob("*"):
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except OSError:  # a thread that ended between the listing and the read
            continue
    return sorted(pids)


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def fd_count(pid: int) -> int | None:
    """Open descriptors, less the live client connections (kept alive, their number varies).

    A leaked connection is not live: its client has gone and it sits in CLOSE_WAIT, counted.
    Nor are connections the worker is closing (FIN_WAIT, after a refusal it lingers for at
    most a few seconds to read what the client still sends): their number varies too.
    """
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    live = _established_socket_inodes(pid)
    count = 0
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if not (link.startswith("socket:[") and link[len("socket:[") : -1] in live):
            count += 1
    return count


_LIVE_STATES = ("01", "04", "05")  # ESTABLISHED, FIN_WAIT1, FIN_WAIT2 (/proc/net/tcp's codes)


def _established_socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] in _LIVE_STATES:
                inodes.add(fields[9])
    return inodes


def sample_workers(master: int, began: float, seconds: float, samples: Samples) -> None:
    """Once a second until *seconds* after *began*, and once more at the end."""
    for tick in range(int(seconds) + 1):
        time.sleep(max(0.0, began + tick - time.monotonic()))
        rss: dict[int, int] = {}
        fds: dict[int, int] = {}
        for pid in worker_pids(master):
            kb, count = rss_kb(pid), fd_count(pid)
            if kb is not None and count is not None:
                rss[pid], fds[pid] = kb, count
        samples.times.append(time.monotonic() - began)
        samples.rss_kb.append(rss)
        samples.fds.append(fds)


def slope(times: list[float], values: list[float]) -> float:
    """The least-squares slope of *values* over *times* (per unit of time); 0 below 2 points."""
    n = len(times)
    if n < 2:
        return 0.0
    mean_t, mean_v = sum(times) / n, sum(values) / n
    spread = sum((t - mean_t) ** 2 for t in times)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True)) / spread


def worker_report(samples: Samples, warmup: float) -> dict[str, dict[str, Any]]:
    """Per worker: RSS after warm-up, at the end, slope (MB/min) after warm-up, descriptors."""
    report: dict[str, dict[str, Any]] = {}
    pids = sorted({pid for rss in samples.rss_kb for pid in rss})
    for pid in pids:
        points = [
            (t, rss[pid] / 1024, fds[pid])
            for t, rss, fds in zip(samples.times, samples.rss_kb, samples.fds, strict=True)
            if pid in rss
        ]
        after = [p for p in points if p[0] >= warmup] or points[-1:]
        report[str(pid)] = {
            "rss_mb_start": round(points[0][1], 2),
            "rss_mb_after_warmup": round(after[0][1], 2),
            "rss_mb_end": round(points[-1][1], 2),
            "rss_mb_max": round(max(p[1] for p in points), 2),
            "slope_mb_per_min": round(slope([p[0] / 60 for p in after], [p[1] for p in after]), 3),
            "samples_after_warmup": len(after),
            # the fewest over five samples: connections still closing come and go (more of
            # them the slower the worker, under coverage say); a leaked one stays
            "fds_after_warmup": min(p[2] for p in after[:FD_SAMPLES]),
            "fds_end": min(p[2] for p in points[-FD_SAMPLES:]),
        }
    return report


# --- the server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def train_tutorial_model(work: Path) -> Path:
    out = work / "iris"
    subprocess.run(
        [str(BIN / "flaskserve"), "train", "--out", str(out)], check=True, capture_output=True
    )
    return out


def start_server(
    model_dir: Path, workers: int, runtime: str | None, log: Path, server: str = "gunicorn"
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [str(BIN / "flaskserve"), "serve", str(model_dir), "--port", str(port)]
    command += ["--server", server]
    command += ["--workers", str(workers)] + (["--runtime", runtime] if runtime else [])
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if requests.get(f"{url}/ready", timeout=5).status_code == 200:
                return process, url
        except requests.RequestException:  # not listening yet, or still loading
            pass
        time.sleep(0.1)
    stop_server(process)
    raise RuntimeError(f"server not ready within 60 s:\n{log.read_text()}")


def stop_server(process: subprocess.Popen[bytes]) -> int | None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=35)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


# --- the run and its report ----------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The *q*-th percentile (nearest rank) of *values*; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def soak(
    url: str, master: int | None, cases: tuple[list[Case], list[Case]], args: argparse.Namespace
) -> dict[str, Any]:
    """Drive the load and sample the workers; the figures and the gates, as one dict."""
    valid, invalid = cases
    load = Load(url, reference_answers(url, valid), invalid, args.invalid, args.concurrency)
    samples = Samples()
    workers_before = worker_pids(master) if master is not None else []
    began = time.monotonic()
    sampler = None
    if master is not None:
        sampler = threading.Thread(
            target=sample_workers, args=(master, began, args.duration, samples), daemon=True
        )
        sampler.start()
    load.run(began, args.duration)
    elapsed = time.monotonic() - began
    if sampler is not None:
        sampler.join(timeout=30)
    workers_after = worker_pids(master) if master is not None else []
    return summarize(load, samples, elapsed, (workers_before, workers_after), args)


def summarize(
    load: Load,
    samples: Samples,
    elapsed: float,
    workers: tuple[list[int], list[int]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    calls = load.calls
    outcomes = Counter(c.outcome for c in calls)
    answered = [c.latency for c in calls if c.status is not None]
    late = [c.latency for c in calls if c.status is not None and c.at >= args.duration - 60]
    early = [c.latency for c in calls if c.status is not None and c.at < 60]
    seen = sorted({pid for rss in samples.rss_kb for pid in rss})
    before, after = workers
    result: dict[str, Any] = {
        "duration_s": round(elapsed, 1),
        "concurrency": args.concurrency,
        "invalid_share": args.invalid,
        "warmup_s": args.warmup,
        "requests": len(calls),
        "requests_per_s": round(len(calls) / elapsed, 1),
        "by_status": {
            str(k): v for k, v in sorted(Counter(c.status for c in calls).items(), key=str)
        },
        "by_kind": dict(Counter(c.outcome for c in calls)),
        "server_errors": outcomes["server_error"],
        "transport_errors": outcomes["transport"],
        "wrong_answers": outcomes["wrong"],
        "unexpected": outcomes["unexpected"],
        "examples": sorted({c.detail for c in calls if c.detail})[:5],
        "p50_ms": round(percentile(answered, 50) * 1000, 2),
        "p99_ms": round(percentile(answered, 99) * 1000, 2),
        "first_minute_p99_ms": round(percentile(early, 99) * 1000, 2),
        "last_minute_p99_ms": round(percentile(late, 99) * 1000, 2),
        "workers_sampled": bool(samples.times),
        "workers_before": before,
        "workers_after": after,
        "workers_seen": seen,
        "workers": worker_report(samples, args.warmup) if samples.times else {},
    }
    result["failures"] = gate_failures(result, args.workers if samples.times else None)
    return result


def _memory_failures(pid: str, figures: dict[str, Any], window_s: float) -> list[str]:
    if window_s >= SLOPE_WINDOW_S:
        if figures["slope_mb_per_min"] >= MAX_SLOPE_MB_PER_MIN:
            return [f"worker {pid}: RSS grows {figures['slope_mb_per_min']} MB/min after warm-up"]
        return []
    growth = figures["rss_mb_end"] - figures["rss_mb_after_warmup"]
    if growth >= MAX_SHORT_GROWTH_MB:
        return [f"worker {pid}: RSS grew {growth:.2f} MB in {window_s:.0f} s after warm-up"]
    return []


def gate_failures(result: dict[str, Any], workers: int | None) -> list[str]:
    """Each gate that failed, in words; empty when the soak passed."""
    failures = [
        f"{result[key]} {words}"
        for key, words in (
            ("server_errors", "5xx answers"),
            ("wrong_answers", "wrong answers to valid rows"),
            ("transport_errors", "transport errors"),
            ("unexpected", "unexpected answers (a valid row refused, or a non-JSON/non-4xx error)"),
        )
        if result[key]
    ]
    if result["requests"] == 0 or result["by_kind"].get("ok", 0) == 0:
        failures.append("no valid row was answered")
    if workers is not None:
        before, after, seen = (
            result["workers_before"],
            result["workers_after"],
            result["workers_seen"],
        )
        if len(before) != workers or before != after or seen != before:
            failures.append(f"workers changed: {before} before, {after} after, {seen} seen")
        for pid, figures in result["workers"].items():
            failures += _memory_failures(pid, figures, result["duration_s"] - result["warmup_s"])
            if figures["fds_end"] - figures["fds_after_warmup"] > MAX_FD_DRIFT:  # a leak grows
                failures.append(
                    f"worker {pid}: open descriptors {figures['fds_after_warmup']}"
                    f" after warm-up, {figures['fds_end']} at the end"
                )
    return failures


def print_report(result: dict[str, Any], url: str) -> None:
    print(
        f"soak: {result['duration_s']} s at concurrency {result['concurrency']},"
        f" {result['invalid_share']:.0%} invalid, warm-up {result['warmup_s']} s ({url})"
    )
    print(
        f"requests: {result['requests']:,} ({result['requests_per_s']:,} req/s);"
        f" by status {result['by_status']}; by kind {result['by_kind']}"
    )
    print(
        f"5xx: {result['server_errors']}; transport errors: {result['transport_errors']};"
        f" wrong answers: {result['wrong_answers']}; unexpected: {result['unexpected']}"
    )
    print(
        f"latency: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms"
        f" (first minute p99 {result['first_minute_p99_ms']} ms,"
        f" last minute p99 {result['last_minute_p99_ms']} ms)"
    )
    for pid, w in result["workers"].items():
        print(
            f"worker {pid}: RSS {w['rss_mb_start']} MB at start, {w['rss_mb_after_warmup']} MB"
            f" after warm-up, {w['rss_mb_end']} MB at end (max {w['rss_mb_max']});"
            f" slope {w['slope_mb_per_min']:+} MB/min over {w['samples_after_warmup']} samples;"
            f" fds {w['fds_after_warmup']} -> {w['fds_end']}"
        )
    if result["workers_sampled"]:
        same = result["workers_before"] == result["workers_after"] == result["workers_seen"]
        print(f"workers: {'unchanged' if same else 'CHANGED'} {result['workers_seen']}")
    else:
        print("workers: not sampled (give --master-pid with --url)")
    for example in result["examples"]:
        print(f"  e.g. {example}")
    print(
        "gates: " + ("pass" if not result["failures"] else "FAIL: " + "; ".join(result["failures"]))
    )
    print("SOAK_RESULT " + json.dumps(result, sort_keys=True))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--concurrency", type=int, default=16, help="client threads (16)")
    parser.add_argument("--invalid", type=float, default=0.10, help="share of invalid bodies")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds left out of the fit")
    parser.add_argument("--model-dir", type=Path, help="the artifact [default: train iris]")
    parser.add_argument("--runtime", choices=["auto", "sklearn", "compiled"])
    parser.add_argument("--server", choices=["gunicorn", "granian"], default="gunicorn")
    parser.add_argument("--url", help="drive this running server instead of starting one")
    parser.add_argument("--master-pid", type=int, help="with --url: its gunicorn master")
    args = parser.parse_args(argv)
    if not 0 <= args.invalid <= 1 or args.concurrency < 1 or args.duration <= args.warmup:
        parser.error("need 0 <= --invalid <= 1, --concurrency >= 1 and --duration > --warmup")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flaskserve-soak-") as tmp:
        work = Path(tmp)
        model_dir = args.model_dir
        if model_dir is None and args.url is None:
            model_dir = train_tutorial_model(work)
        names, valid = valid_cases(model_dir)
        cases = (valid, invalid_cases(names))
        if args.url is not None:
            result = soak(args.url.rstrip("/"), args.master_pid, cases, args)
            url = args.url
        else:
            process, url = start_server(
                model_dir, args.workers, args.runtime, work / "serve.log", args.server
            )
            try:
                result = soak(url, process.pid, cases, args)
            finally:
                result_code = stop_server(process)
            result["server_exit_code"] = result_code
            if result_code != 0:
                result["failures"].append(f"the server exited {result_code} on SIGTERM")
    print_report(result, url)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
