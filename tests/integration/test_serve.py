"""Real processes on loopback ports: ``flaskserve serve``, gunicorn, quickstart."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from conftest import require_component

from flaskserve.artifact import MANIFEST_NAME
from flaskserve.metrics import FLUSH_SECONDS
from liveserver import LiveServer, on_both_servers, worker_pids

ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
TUTORIAL_BODY = (
    b'{"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}'
)
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.integration


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_tutorial_curl_over_http(live_server: LiveServer, method: str) -> None:
    url = live_server.url
    headers = {"Content-Type": "application/json"}
    response = requests.request(
        method, url + "/predict", data=TUTORIAL_BODY, headers=headers, timeout=10
    )
    assert response.status_code == 200
    assert response.content == b'{"result":[2]}\n'
    assert response.headers["Server"].startswith("gunicorn")


def test_tutorial_curl_command_as_written(live_server: LiveServer) -> None:
    curl = require_component("curl", "the tutorial's command is a curl command line")
    url = live_server.url
    for extra in (["-H", "Content-Type:application/json"], []):
        command = [
            curl,
            "-s",
            "-X",
            "POST",
            *extra,
            "--data",
            TUTORIAL_BODY.decode(),
            f"{url}/predict",
        ]
        result = subprocess.run(command, capture_output=True, check=True, timeout=10)
        assert result.stdout == b'{"result":[2]}\n'


@on_both_servers(in_ci=False)
def test_concurrent_clients_all_answered(live_server: LiveServer) -> None:
    url = live_server.url

    def call(i: int) -> tuple[int, object]:
        row = ROW if i % 2 else {**ROW, "petal_length": 1.4, "petal_width": 0.2, "sepal_width": 3.5}
        response = requests.post(url + "/predict", json=row, timeout=30)
        return response.status_code, response.json()["result"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(160)))
    assert all(status == 200 for status, _ in results)
    assert [r for _, r in results] == [[2] if i % 2 else [0] for i in range(160)]


def test_gunicorn_factory_with_environment(
    model_dir: Path, tmp_path: Path, start: Callable[..., LiveServer]
) -> None:
    args = [
        str(BIN / "gunicorn"),
        "-w",
        "2",
        "-b",
        "127.0.0.1:{port}",
        "flaskserve.app:create_app()",
    ]
    server = start(args, env={"FLASKSERVE_MODEL_DIR": str(model_dir)})
    try:
        url = server.url
        assert requests.post(url + "/predict", json=ROW, timeout=10).json() == {"result": [2]}
        assert requests.get(url + "/model", timeout=10).json()["name"] == "iris"
    finally:
        server.stop()


def test_quickstart_trains_then_serves(
    tmp_path: Path, start: Callable[..., LiveServer], tutorial_accuracy: float
) -> None:
    args = [str(BIN / "flaskserve"), "quickstart", "--port", "{port}", "--workers", "1"]
    server = start(args, cwd=tmp_path)
    try:
        url = server.url
        assert requests.post(url + "/predict", data=TUTORIAL_BODY, timeout=10).json() == {
            "result": [2]
        }
        assert (tmp_path / "build" / "iris" / MANIFEST_NAME).exists()
        assert f"Accuracy :  {tutorial_accuracy}\n" in server.log.read_text()
    finally:
        server.stop()
    assert server.process.returncode == 0
    # workers forked from a master that had trained (ONNX Runtime's threads) aborted on exit
    assert "was sent SIGABRT" not in server.log.read_text()


def test_development_server(
    model_dir: Path, tmp_path: Path, start: Callable[..., LiveServer]
) -> None:
    args = [str(BIN / "flaskserve"), "serve", str(model_dir), "--dev", "--port", "{port}"]
    server = start(args)
    try:
        url = server.url
        assert requests.post(url + "/predict", json=ROW, timeout=10).json() == {"result": [2]}
        assert "Werkzeug" in requests.get(url + "/health", timeout=10).headers["Server"]
    finally:
        server.stop()


@on_both_servers()
def test_broken_artifact_never_takes_the_server_down(
    model_dir: Path, tmp_path: Path, start: Callable[..., LiveServer]
) -> None:
    """Workers that restart onto a tampered artifact report not-ready, saying why; the master
    lives. skops would still load this file (bytes appended to its zip): only the SHA-256
    check refuses it."""
    served = tmp_path / "iris"
    shutil.copytree(model_dir, served)
    args = [str(BIN / "flaskserve"), "serve", str(served), "--port", "{port}", "--workers", "2"]
    server = start(args)
    try:
        url = server.url
        master = server.process.pid
        deadline = time.monotonic() + 20
        while len(worker_pids(master)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # ready means one worker answered; wait for both
        workers = worker_pids(master)
        assert len(workers) == 2
        with (served / "model.skops").open("ab") as f:
            f.write(b"tampered")
        for worker in workers:  # both replacements load the tampered file
            os.kill(worker, signal.SIGKILL)
        refusal = "SHA-256 mismatch"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the replacements have tried to load it
            time.sleep(0.1)
            if set(worker_pids(master)) & set(workers):
                continue  # not both replaced yet
            try:
                ready = requests.get(url + "/ready", timeout=10)
            except requests.ConnectionError:  # no worker listening yet
                continue
            if ready.status_code == 503 and refusal in ready.json()["error"]:
                break
        for _ in range(20):
            assert requests.get(url + "/health", timeout=10).status_code == 200
            ready = requests.get(url + "/ready", timeout=10)
            assert ready.status_code == 503, ready.text
            assert ready.json()["status"] == "not ready"
            assert refusal in ready.json()["error"], ready.text
            response = requests.post(url + "/predict", json=ROW, timeout=10)
            assert response.status_code == 503, response.text
            assert refusal in response.json()["error"], response.text
        assert server.process.poll() is None
        replacements = worker_pids(master)
        assert len(replacements) == 2 and not set(replacements) & set(workers)
    finally:
        server.stop()


def test_sigterm_stops_cleanly(
    model_dir: Path, tmp_path: Path, start: Callable[..., LiveServer]
) -> None:
    args = [str(BIN / "flaskserve"), "serve", str(model_dir), "--port", "{port}", "--workers", "1"]
    server = start(args)
    server.stop()
    assert server.process.returncode == 0


@on_both_servers()
def test_metrics_add_up_across_workers(live_server: LiveServer) -> None:
    url = live_server.url

    def total() -> float:
        text = requests.get(f"{url}/metrics", timeout=10).text
        pattern = r'flaskserve_rows_predicted_total\{model="iris",version="1"\} ([\d.e+]+)'
        match = re.search(pattern, text)
        return float(match.group(1)) if match else 0.0

    # the shared server's earlier answers: a worker that did not scrape adds its own to
    # the files within its flush, so wait until two reads a flush apart agree
    before, settled = total(), False
    for _ in range(10):
        time.sleep(1.5 * FLUSH_SECONDS)
        now = total()
        settled, before = now == before, now
        if settled:
            break
    assert settled, "the workers' earlier counts kept changing"
    for _ in range(40):  # fresh connections: both workers answer some
        requests.post(f"{url}/predict", json=[ROW, ROW, ROW], timeout=10)
    # the worker that scrapes counts its own at once, the other's within its flush
    deadline = time.monotonic() + 20 * FLUSH_SECONDS
    while total() - before < 120 and time.monotonic() < deadline:
        time.sleep(FLUSH_SECONDS / 4)
    assert total() - before == 120
