"""Start real server processes on free loopback ports, and stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests


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

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if the server is still there after *timeout* seconds."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
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
            env={**_environment_without_settings(), **(env or {})},
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
            if requests.get(f"{server.url}/ready", timeout=5).status_code == 200:
                return server
        except requests.RequestException:  # not listening yet, or still loading
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server not ready within {deadline_s} s:\n{log.read_text()}")


def _environment_without_settings() -> dict[str, str]:
    """The test process's environment less any FLASKSERVE_* a developer's shell may hold."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FLASKSERVE_")}


def worker_pids(master: int) -> list[int]:
    """The children of *master* (gunicorn's workers), from ``/proc``: every thread's list."""
    pids: set[int] = set()
    for task in Path(f"/proc/{master}/task").glob("*"):
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except OSError:  # a thread that ended between the listing and the read
            continue
    return sorted(pids)
