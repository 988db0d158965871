"""Swapping a model under load: no failed request, no mixed answer, no bad version served."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import requests
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier

from flaskserve import save_model
from liveserver import LiveServer, on_both_servers, worker_pids

pytestmark = pytest.mark.integration
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
BIN = Path(sys.executable).parent
ROWS = load_iris()["data"][::19][:8].tolist()  # 8 rows per request


def _publish(root: Path, version: int, answer: int) -> None:
    """A real model that answers *answer* for every row, so each response shows its version."""
    x, y = load_iris(return_X_y=True)
    model = DummyClassifier(strategy="constant", constant=answer).fit(x, y)
    save_model(model, root / "sentinel" / str(version), sample=x, feature_names=FEATURES)


@dataclass
class LoadResult:
    answers: list[tuple[float, str, list[int]]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _load(url: str, stop: threading.Event, result: LoadResult, lock: threading.Lock) -> None:
    session = requests.Session()
    for _ in range(2_000):  # bounded even if stop never comes
        if stop.is_set():
            return
        try:
            response = session.post(f"{url}/predict", json=ROWS, timeout=10)
            answer = (
                time.monotonic(),
                response.headers.get("X-Model-Version", "?"),
                response.json()["result"],
            )
            ok = response.status_code == 200
        except (requests.RequestException, ValueError, KeyError) as e:
            ok, answer = False, (time.monotonic(), "?", [])
            detail = repr(e)
        else:
            detail = f"{response.status_code} {response.text[:200]}"
        with lock:
            (result.answers.append(answer) if ok else result.failures.append(detail))


def _wait_for_every_worker(server: LiveServer, logged: str, within: float) -> float:
    """When every worker of *server* had logged *logged*; fails after *within* seconds."""
    deadline = time.monotonic() + within
    while True:
        text = server.log.read_text(errors="replace")
        workers = worker_pids(server.process.pid)
        waiting = [pid for pid in workers if f"[{pid}] [INFO] {logged}" not in text]
        if workers and not waiting:
            return time.monotonic()
        assert time.monotonic() < deadline, f"workers {waiting} never logged {logged!r}:\n{text}"
        time.sleep(0.1)


@on_both_servers()
def test_swap_under_load(tmp_path: Path, start: Callable[..., LiveServer]) -> None:
    root = tmp_path / "models"
    _publish(root, 1, answer=1)
    args = [str(BIN / "flaskserve"), "serve", str(root), "--port", "{port}", "--workers", "3"]
    server = start(args, env={"FLASKSERVE_POLL_SECONDS": "0.3"})
    result, lock, stop = LoadResult(), threading.Lock(), threading.Event()
    clients = [
        threading.Thread(target=_load, args=(server.url, stop, result, lock)) for _ in range(6)
    ]
    for client in clients:
        client.start()
    try:
        time.sleep(1.5)
        _publish(root, 2, answer=2)
        published_v2 = time.monotonic()
        # every worker takes v2 up: 0.3 s here, 3.3 s allowed before, ten times that now
        switched = _wait_for_every_worker(server, "model 'sentinel' version 2 loaded", 33.0)
        print(f"every worker loaded v2 {switched - published_v2:.2f} s after it was published")
        # v3 is corrupted before it appears (a worker scanning between a valid v3's rename
        # and its corruption would rightly serve it: the race one parallel run lost)
        _publish(tmp_path / "staging", 3, answer=0)
        with (tmp_path / "staging" / "sentinel" / "3" / "model.skops").open("ab") as f:
            f.write(b"corrupted after saving")  # v3 must never be served
        os.replace(tmp_path / "staging" / "sentinel" / "3", root / "sentinel" / "3")
        os.kill(server.process.pid, signal.SIGHUP)  # and a forced rescan changes nothing
        time.sleep(2.5)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=30)

    versions = [v for _, v, _ in result.answers]
    print(
        f"{len(versions)} responses: {versions.count('1')} from v1, {versions.count('2')} from v2"
    )
    assert result.failures == []
    assert len(result.answers) > 10  # the load ran (hundreds here; a tenth of the old floor)
    for _, version, outputs in result.answers:
        assert version in ("1", "2"), version
        assert outputs == [int(version)] * len(ROWS)  # wholly one version
    for _ in range(30):  # every worker loaded v2 seconds ago: fresh connections get v2 alone
        response = requests.post(f"{server.url}/predict", json=ROWS, timeout=10)
        assert response.headers["X-Model-Version"] == "2", response.text
        assert response.json()["result"] == [2] * len(ROWS)
    metadata = requests.get(f"{server.url}/v2/models/sentinel", timeout=10).json()
    assert metadata["versions"] == ["1", "2"]
    assert "SHA-256" in metadata["parameters"]["load_failures"]["3"]
    assert server.process.poll() is None
    assert np.unique([v for _, v, _ in result.answers]).tolist() == ["1", "2"]
