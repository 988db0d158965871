"""Faults under load against real server processes, counted request by request on the client.

What stock gunicorn does:
a SIGKILLed sync worker loses exactly its one in-flight request, so the honest gate is
at most one failure per kill without retries and none with one idempotent retry; the
master respawns the worker; SIGTERM finishes in-flight requests and exits 0, but resets
the connections still queued in the listen backlog, which flaskserve's draining worker
answers (``flaskserve.serving.worker.BufferingSyncWorker``); recycling
workers with ``max_requests`` loses nothing (the listening socket outlives each worker).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from liveserver import (
    LiveServer,
    free_port,
    on_both_servers,
    start_server,
    with_server,
    worker_pids,
)

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
ROW_BYTES = json.dumps(ROW).encode()
ANSWER = {"result": [2]}  # the tutorial's row is a virginica
REFUSAL_MARGIN_S = 0.5
TIMEOUT = (5.0, 15.0)  # connect, read: far above any answer here, far below a hang


@dataclass(frozen=True)
class Call:
    """One logical request as the client saw it (after its retry, if one was allowed)."""

    started: float
    ended: float
    kind: str  # ok | wrong | http | refused | reset | timeout | other
    status: int | None
    error: str | None  # the last attempt's exception: type and message
    body: bytes
    attempts: int


def _classify(error: requests.RequestException) -> str:
    if isinstance(error, requests.Timeout):
        return "timeout"
    if isinstance(error, requests.ConnectionError):
        # refused: nothing listens; otherwise the connection was taken and then
        # reset or closed without an answer (RemoteDisconnected, ECONNRESET, EPIPE)
        return "refused" if "Connection refused" in str(error) else "reset"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        # closed after the headers, before the body: a worker killed between its two
        # writes (IncompleteRead(0 bytes read, 15 more expected)); no answer was given
        return "reset"
    return "other"


def _attempt(
    url: str, read_timeout: float = TIMEOUT[1]
) -> tuple[str, int | None, str | None, bytes]:
    """One POST on a fresh connection, its head and body sent in one write.

    ``requests`` (urllib3 2) writes the head and the body separately; 32 client threads
    on two cores can stall between the two for longer than the worker's settle time,
    and the worker then holds that connection as one still arriving, which a kill also
    drops (docs/reliability.md). One write measures what this test promises: the
    in-flight request.
    """
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=read_timeout)
    try:
        connection.request("POST", "/predict", ROW_BYTES, {"Content-Type": "application/json"})
        response = connection.getresponse()
        status, body = response.status, response.read()
    except (OSError, http.client.HTTPException) as e:
        return _classify_os(e), None, f"{type(e).__name__}: {e}"[:300], b""
    finally:
        connection.close()
    if status != 200:
        return "http", status, None, body[:300]
    try:
        right = json.loads(body) == ANSWER
    except ValueError:
        right = False
    return ("ok" if right else "wrong"), 200, None, body[:300]


def _classify_os(error: OSError | http.client.HTTPException) -> str:
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, (ConnectionError, http.client.HTTPException)):
        # taken, then reset or closed without an answer (RemoteDisconnected, ECONNRESET,
        # EPIPE, IncompleteRead after the head)
        return "reset"
    return "other"


def _call(url: str, retry_once: bool, read_timeout: float = TIMEOUT[1]) -> Call:
    started = time.monotonic()
    kind, status, error, body = _attempt(url, read_timeout)
    attempts = 1
    if retry_once and kind in ("reset", "refused"):  # predict is idempotent
        kind, status, error, body = _attempt(url, read_timeout)
        attempts = 2
    return Call(started, time.monotonic(), kind, status, error, body, attempts)


@dataclass
class Load:
    """Client threads posting the tutorial row until stopped (or a request cap is hit)."""

    url: str
    threads: int
    retry_once: bool = False
    cap_per_thread: int = 5_000
    read_timeout: float = TIMEOUT[1]

    def __post_init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._run) for _ in range(self.threads)]
        self.started = self.stopped = 0.0

    def _run(self) -> None:
        mine: list[Call] = []
        for _ in range(self.cap_per_thread):
            if self._stop.is_set():
                break
            mine.append(_call(self.url, self.retry_once, self.read_timeout))
        with self._lock:
            self.calls.extend(mine)

    def start(self) -> None:
        self.started = time.monotonic()
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)
        assert not any(w.is_alive() for w in self._workers), "a client thread hung"
        self.stopped = time.monotonic()

    def run_for(self, seconds: float) -> Load:
        self.start()
        time.sleep(seconds)
        self.stop()
        return self

    def kinds(self) -> Counter[str]:
        return Counter(c.kind for c in self.calls)

    def ok_per_second(self) -> float:
        return self.kinds()["ok"] / (self.stopped - self.started)


def _wait_for_workers(master: int, count: int, *, gone: int | None = None) -> float:
    """Seconds until *master* has *count* children (none of them *gone*); inf after 60 s."""
    began = time.monotonic()
    while time.monotonic() - began < 60:
        children = worker_pids(master)
        if len(children) == count and gone not in children:
            return time.monotonic() - began
        time.sleep(0.05)
    return float("inf")


def _wait_for_log(log: Path, worker: int, since: float) -> float:
    """Seconds from *since* until *worker* logs that it serves its model; inf after 60 s."""
    while time.monotonic() - since < 60:
        if f"[{worker}] [INFO] serving model" in log.read_text(errors="replace"):
            return time.monotonic() - since
        time.sleep(0.05)
    return float("inf")


def _wait_for_answers(url: str, workers: int) -> None:
    """Until every worker has booted, loaded the model and answered at least once."""
    for _ in range(10 * workers):
        assert requests.post(f"{url}/predict", json=ROW, timeout=TIMEOUT).json() == ANSWER


def _serve(model_dir: Path, workers: int) -> list[str]:
    port_args = ["--port", "{port}", "--workers", str(workers)]
    return [str(BIN / "flaskserve"), "serve", str(model_dir), *port_args]


@on_both_servers(
    granian_fails=(
        "granian's workers listen on a socket each (SO_REUSEPORT): the connections queued"
        " on a killed worker's socket are reset with it (19 failures for 3 kills; none with"
        " one retry)"
    ),
    in_ci=False,  # 45 s; granian's crash handling fails in CI in test_servers.py
)
def test_sigkill_under_load(model_dir: Path, start: Callable[..., LiveServer]) -> None:
    server = start(_serve(model_dir, 3))
    master = server.process.pid
    assert _wait_for_workers(master, 3) < 60
    _wait_for_answers(server.url, 3)
    baseline = Load(server.url, 32).run_for(3)
    assert baseline.kinds() == {"ok": len(baseline.calls)}, baseline.kinds()

    rng = random.Random(20260)
    recoveries: list[float] = []  # kill -> three workers again
    serving: list[float] = []  # kill -> the replacement has loaded and checked the model
    phases: list[tuple[Load, int]] = []
    for retry_once in (False, True):  # 24 s of faults in two halves: a kill every 5 s
        load = Load(server.url, 32, retry_once=retry_once)
        load.start()
        kills = 0
        try:
            for at in (3.0, 8.0):
                time.sleep(max(0.0, load.started + at - time.monotonic()))
                before = set(worker_pids(master))
                victim = rng.choice(sorted(before))
                os.kill(victim, signal.SIGKILL)
                killed = time.monotonic()
                kills += 1
                recoveries.append(_wait_for_workers(master, 3, gone=victim))
                (replacement,) = set(worker_pids(master)) - before
                serving.append(_wait_for_log(server.log, replacement, killed))
            time.sleep(max(0.0, load.started + 12 - time.monotonic()))
        finally:
            load.stop()
        phases.append((load, kills))

    (plain, plain_kills), (retrying, retrying_kills) = phases
    faulted_rps = sum(load.kinds()["ok"] for load, _ in phases) / sum(
        load.stopped - load.started for load, _ in phases
    )
    retries = sum(c.attempts - 1 for c in retrying.calls)
    print(
        f"\nSIGKILL: baseline {len(baseline.calls)} requests, {baseline.ok_per_second():.0f} rps;"
        f" no retry: {len(plain.calls)} requests, {plain_kills} kills, {dict(plain.kinds())};"
        f" retry once: {len(retrying.calls)} requests, {retrying_kills} kills,"
        f" {dict(retrying.kinds())}, {retries} retried;"
        f" faulted {faulted_rps:.0f} rps ({faulted_rps / baseline.ok_per_second():.0%});"
        f" workers back in {', '.join(f'{r:.2f}' for r in recoveries)} s,"
        f" serving in {', '.join(f'{r:.2f}' for r in serving)} s;"
        f" lost: {Counter(c.error for c in plain.calls if c.kind != 'ok')}"
    )
    for call in plain.calls + retrying.calls:
        assert call.kind in ("ok", "reset"), call  # never a 5xx, a wrong answer or a hang
    failed = [c for c in plain.calls if c.kind != "ok"]
    assert len(failed) <= plain_kills, failed
    assert [c for c in retrying.calls if c.kind != "ok"] == []
    # Each worker comes back. The figures (printed above) are for benchmarks: the bounds are
    # ten times the 3 s and 5 s once asserted, which a loaded machine does not come near.
    assert all(r <= 30 for r in recoveries), recoveries
    assert all(r <= 50 for r in serving), serving
    assert server.process.poll() is None


@dataclass(frozen=True)
class Termination:
    """16 clients loading three sync workers, and SIGTERM to the master after 3 s."""

    load: Load
    code: int | None  # None: still running 35 s after SIGTERM
    terminated: float
    exited: float
    workers: list[int]

    def lost(self) -> list[Call]:
        return [c for c in self.load.calls if c.kind not in ("ok", "refused")]


@pytest.fixture(scope="module")
def termination(
    model_dir: Path, tmp_path_factory: pytest.TempPathFactory, http_server: str
) -> Iterator[Termination]:
    log = tmp_path_factory.mktemp("sigterm") / "serve.log"
    server = start_server(_serve(model_dir, 3), log, http_server=http_server)
    try:
        master = server.process.pid
        assert _wait_for_workers(master, 3) < 60
        _wait_for_answers(server.url, 3)
        workers = worker_pids(master)
        load = Load(server.url, 16)
        load.start()
        try:
            time.sleep(3)
            terminated = time.monotonic()
            os.kill(master, signal.SIGTERM)
            try:
                code: int | None = server.process.wait(timeout=35)
            except subprocess.TimeoutExpired:
                code = None
            exited = time.monotonic()
            time.sleep(0.5)  # the clients now see connection refused
        finally:
            load.stop()
    finally:
        server.stop()
    result = Termination(load, code, terminated, exited, workers)
    after = [c for c in load.calls if c.started > exited]
    print(
        f"\nSIGTERM: {len(load.calls)} requests {dict(load.kinds())}; master exited {code}"
        f" {exited - terminated:.2f} s after SIGTERM; {len(after)} requests after its exit;"
        f" lost: {Counter(c.error for c in result.lost())}"
    )
    yield result


@on_both_servers()
def test_sigterm_under_load(termination: Termination) -> None:
    """Graceful: every answer right, exit 0 in time, refusals only for late connections."""
    assert termination.code == 0
    assert termination.exited - termination.terminated < 35
    calls = termination.load.calls
    for call in calls:
        if call.status is not None:
            assert call.kind == "ok", call  # every answer is a 200 with the right body
    # Refused: the SYN came after the workers stopped taking new connections. A call that
    # "started" just before SIGTERM may send its SYN a little later (16 client threads share
    # one GIL); none that started well before it is refused.
    early = termination.terminated - REFUSAL_MARGIN_S
    assert [c for c in calls if c.kind == "refused" and c.started < early] == []
    assert all(c.kind == "refused" for c in calls if c.started > termination.exited)
    for pid in termination.workers:  # no worker outlives its master
        assert _gone(pid, within=5), pid


@on_both_servers(
    "granian's workers listen on a socket each (SO_REUSEPORT): the connections queued on a stopping"
    " worker's socket are reset when it closes it (2 in one run, 0 in another: a race)",
    sometimes=True,
)
def test_sigterm_loses_no_connected_request(termination: Termination) -> None:
    """What stock gunicorn loses (research T21): connections queued in the listen backlog
    when the last worker closes the socket are reset, one per client thread (16 of 16 here).
    flaskserve's workers drop new SYNs, then answer every queued connection before exiting."""
    lost = termination.lost()
    assert lost == [], Counter(c.error for c in lost)


def _gone(pid: int, *, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def test_worker_recycling_under_load(model_dir: Path, start: Callable[..., LiveServer]) -> None:
    """gunicorn's ``max_requests``: replaced workers lose nothing, so no retry is allowed.

    The research (R13c, E7) measured 42 recycles with 0 errors: a recycled sync worker
    finishes its request before leaving, and the connections waiting in the shared
    listening socket are taken by its siblings, so a retry would only hide a bug.
    """
    args = [str(BIN / "gunicorn"), "-w", "2", "-b", "127.0.0.1:{port}"]
    args += ["--max-requests", "50", "--max-requests-jitter", "10", "flaskserve.app:create_app()"]
    server = start(args, env={"FLASKSERVE_MODEL_DIR": str(model_dir)})
    master = server.process.pid
    seen: set[int] = set(worker_pids(master))
    # Both workers may be replaced at once: the backlog then waits for two new workers to
    # boot, first come first served. On a saturated CI machine (23 requests/s here, against
    # 178 alone) the first two in line once waited over 15 s: slow, not lost. A request
    # lost by a recycle never answers, which 60 s still shows.
    load = Load(server.url, 16, read_timeout=60.0)
    load.start()
    try:
        # 10 s, and on a slow machine on until five recycles (at most ten times as long)
        while time.monotonic() - load.started < 10 or (
            len(seen) - 2 < 5 and time.monotonic() - load.started < 100
        ):
            seen.update(worker_pids(master))
            time.sleep(0.05)
    finally:
        load.stop()
    seen.update(worker_pids(master))
    recycles = len(seen) - 2
    print(
        f"\nmax_requests: {len(load.calls)} requests {dict(load.kinds())},"
        f" {len(seen)} worker pids seen ({recycles} recycles), {load.ok_per_second():.0f} rps,"
        f" slowest {max(c.ended - c.started for c in load.calls):.1f} s"
    )
    assert [c for c in load.calls if c.kind != "ok"] == []
    assert recycles >= 5
    assert server.process.poll() is None


@dataclass(frozen=True)
class Probe:
    at: float
    ready: int | str  # status, or the failure's kind
    health: int | str
    predict: Call | None  # made only when /ready said 200


def _get(url: str, ready_body: dict[str, object]) -> int | str:
    """The status of GET *url*, or how it failed; a 200 must carry *ready_body*."""
    try:
        response = requests.get(url, timeout=TIMEOUT)
    except requests.RequestException as e:
        return _classify(e)
    assert response.headers["Content-Type"] == "application/json", response.text
    if response.status_code == 200:
        assert response.json() == ready_body, response.text
    else:  # not ready: says so, and why, in JSON
        assert response.json()["status"] == "not ready", response.text
    return response.status_code


@on_both_servers(in_ci=False)
def test_readiness_never_early(model_dir: Path, tmp_path: Path, http_server: str) -> None:
    """From process start: /ready is never 200 before /predict answers right, and stays 200.

    The repository holds the model at several versions, so each worker loads (and checks)
    several artifacts before it serves: a longer window in which an early 200 could show.
    """
    root = tmp_path / "repository"
    for version in range(1, 7):
        shutil.copytree(model_dir, root / "iris" / str(version))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(BIN / "flaskserve"), "serve", str(root), "--port", str(port), "--workers", "3"]
    command = with_server(command, http_server)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASKSERVE_")}
    log = tmp_path / "serve.log"
    probes: list[Probe] = []
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    began = time.monotonic()
    try:
        first_ready: float | None = None
        while time.monotonic() - began < 60:
            assert process.poll() is None, log.read_text()
            now = time.monotonic()
            ready = _get(f"{url}/ready", {"status": "ready", "model": "iris", "version": 6})
            health = _get(f"{url}/health", {"status": "alive"})
            predict = _call(url, retry_once=False) if ready == 200 else None
            probes.append(Probe(now - began, ready, health, predict))
            if ready == 200 and first_ready is None:
                first_ready = now
            # at least 3 s and 20 probes once ready: a loaded CI machine can make probes slow
            ready_probes = sum(1 for p in probes if p.ready == 200)
            if first_ready is not None and now - first_ready > 3 and ready_probes >= 20:
                break
            time.sleep(0.05)
    finally:
        LiveServer(url, process, log).stop(timeout=35)
    timeline = Counter((p.ready, p.health) for p in probes)
    assert first_ready is not None, f"never ready: {timeline}\n{log.read_text()}"
    ready_at = first_ready - began
    print(f"\nreadiness: ready after {ready_at:.2f} s, {len(probes)} probes {dict(timeline)}")
    first = next(i for i, p in enumerate(probes) if p.ready == 200)
    for probe in probes[:first]:
        assert probe.ready in ("refused", 503), probe
        assert probe.health in ("refused", 200), probe
    for probe in probes[first:]:  # once ready, always ready, alive, and right
        assert probe.ready == 200, probe
        assert probe.health == 200, probe
        assert probe.predict is not None and probe.predict.kind == "ok", probe
    assert len(probes) - first >= 20  # at least 3 s and 20 probes after the first 200
    assert process.returncode == 0
