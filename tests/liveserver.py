"""Start real server processes on free loopback ports, and stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

#: the servers ``flaskserve serve --server`` runs; tests run on the first unless parametrized
SERVERS = ("gunicorn", "granian")


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

    def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM, then SIGKILL if the server is still there after *timeout* seconds;
        whether it ended of the SIGTERM (or had ended already)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                return False
        return True


def start_server(
    args: list[str],
    log: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
    deadline_s: float = 60.0,
    http_server: str = SERVERS[0],
) -> LiveServer:
    """Start *args* (which must bind *port*) and wait until ``/ready`` answers 200.

    :param http_server: the server a ``flaskserve serve`` command in *args* runs under.
    """
    server = launch(args, log, cwd=cwd, env=env, port=port, http_server=http_server)
    process = server.process
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


def launch(
    args: list[str],
    log: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
    http_server: str = SERVERS[0],
) -> LiveServer:
    """Start *args* (``{port}`` in them becomes *port*) in a session of its own, its output
    in *log*, without waiting for it: :func:`start_server` waits until it answers."""
    port = port or free_port()
    command = [arg.replace("{port}", str(port)) for arg in with_server(args, http_server)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**_environment_without_settings(), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stop() ends its workers with it
        )
    return LiveServer(f"http://127.0.0.1:{port}", process, log)


def with_server(args: list[str], http_server: str) -> list[str]:
    """*args* with ``--server`` added where they run ``flaskserve serve``."""
    if http_server == SERVERS[0] or args[1:2] != ["serve"] or Path(args[0]).name != "flaskserve":
        return args
    return [*args[:2], "--server", http_server, *args[2:]]


def on_both_servers(
    granian_fails: str | None = None, *, in_ci: bool = True, sometimes: bool = False
) -> pytest.MarkDecorator:
    """Parametrize a test over :data:`SERVERS` (through the ``http_server`` fixture).

    :param granian_fails: why granian cannot keep this promise; its case is then a strict
        xfail, so the reason stays a test that would notice a granian that keeps it.
    :param sometimes: granian fails it in some runs only (a race): the xfail is not strict.
    :param in_ci: ``False``: the granian case runs only with ``pytest --every-server``
        (a promise CI already checks on granian through another test, or a long run).
    """
    marks: list[pytest.MarkDecorator] = []
    if granian_fails is not None:
        marks.append(pytest.mark.xfail(strict=not sometimes, reason=granian_fails))
    if not in_ci:
        marks.append(pytest.mark.every_server)
    cases = [SERVERS[0], pytest.param(SERVERS[1], marks=marks)]
    return pytest.mark.parametrize("http_server", cases, indirect=True)


def _environment_without_settings() -> dict[str, str]:
    """The test process's environment less any FLASKSERVE_* a developer's shell may hold."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FLASKSERVE_")}


def wait_for_listening_workers(
    server: LiveServer, workers: int, *, gone: int | None = None, deadline_s: float = 30
) -> None:
    """Until *server* has *workers* workers (*gone* not among them), each holding a socket
    that listens on its port. A granian worker binds a socket of its own (SO_REUSEPORT)
    only once its app is loaded: until then, with its siblings stopping, none may listen."""
    deadline = time.monotonic() + deadline_s
    port = int(server.url.rsplit(":", 1)[1])
    while True:
        pids = worker_pids(server.process.pid)
        listening = _listening_inodes(port)
        if len(pids) == workers and gone not in pids:
            if all(_socket_inodes(pid) & listening for pid in pids):
                return
        assert time.monotonic() < deadline, f"workers {pids} not all listening on {port}"
        time.sleep(0.05)


def _listening_inodes(port: int) -> set[str]:
    """The inodes of the IPv4 sockets listening on *port* (state 0A in ``/proc/net/tcp``)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    except OSError:  # the process or a descriptor went meanwhile
        return set()
    return inodes


def worker_pids(master: int) -> list[int]:
    """The children of *master* (gunicorn's workers), from ``/proc``: every thread's list."""
    pids: set[int] = set()
    for task in Path(f"/proc/{master}/task").glob("*"):
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except OSError:  # a thread that ended between the listing and the read
            continue
    return sorted(pids)
