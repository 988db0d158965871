"""Shared fixtures: one trained iris artifact, an app, a client, a real server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from flaskserve.app import create_app
from flaskserve.settings import ENV_PREFIX, Settings
from flaskserve.training import load_iris_dataset, train

TUTORIAL_ROW = {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}
FLASKSERVE = str(Path(sys.executable).with_name("flaskserve"))


@pytest.fixture(autouse=True)
def _clear_flaskserve_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(ENV_PREFIX):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorial's iris forest, trained and packaged by flaskserve itself."""
    out = tmp_path_factory.mktemp("models") / "iris"
    train(load_iris_dataset(), out, name="iris")
    return out


@pytest.fixture(scope="session")
def app(model_dir: Path) -> Flask:
    return create_app(Settings(model_dir=model_dir))


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """A real server process on a loopback port."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_server(
    args: list[str],
    log: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
    deadline_s: float = 60.0,
) -> LiveServer:
    """Start *args* (which must bind *port*) and wait until ``/ready`` answers 200."""
    port = port or free_port()
    command = [arg.replace("{port}", str(port)) for arg in args]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if requests.get(f"{server.url}/ready", timeout=1).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server not ready within {deadline_s} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def live_server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``flaskserve serve`` under gunicorn with two workers, as a user would start it."""
    log = tmp_path_factory.mktemp("server") / "serve.log"
    args = [FLASKSERVE, "serve", str(model_dir), "--port", "{port}", "--workers", "2"]
    server = start_server(args, log)
    yield server
    server.stop()
