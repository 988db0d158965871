"""Run the app under gunicorn (production) or Flask's development server."""

from __future__ import annotations

import ipaddress
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from ..app import create_app
from ..metrics import forget_worker
from ..runtime.cores import CGROUP_CPU_MAX, usable_cores
from ..settings import Settings
from .hangup import rescan_on_hangup
from .heap import freeze_loaded_heap
from .stop_signals import hold_stop_signals_across_forks, release_stop_signals

BUFFERING_WORKER = "flaskserve.serving.worker.BufferingSyncWorker"


def default_workers(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """One sync worker per core this process may use: prediction is CPU-bound."""
    return usable_cores(cpu_max)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_debugger_host(host: str) -> None:
    """:raises ValueError: *host* is not loopback, where the debugger would give anyone who
    can reach the port a Python shell."""
    if not is_loopback(host):
        raise ValueError(
            f"--debugger runs arbitrary code; it is allowed on loopback only, not {host}"
        )


def bind_address(host: str, port: int) -> str:
    return f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"


class GunicornServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no types
    """gunicorn embedded: each worker builds its own app from *settings* after the fork.

    Loading after the fork (no ``preload_app``) keeps workers independent: a
    worker that is replaced loads the model itself.
    """

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)
        # gunicorn 27 opens a control socket at one fixed path per user; several
        # servers on a machine would fight over it, and flaskserve does not use it.
        if "control_socket_disable" in self.cfg.settings:
            self.cfg.set("control_socket_disable", True)

    def run(self) -> None:
        try:
            RescanningArbiter(self).run()
        except RuntimeError as e:  # gunicorn's own way to report a bind failure and such
            print(f"\nError: {e}\n", file=sys.stderr)
            sys.exit(1)

    def load(self) -> Flask:
        gunicorn_log = logging.getLogger("gunicorn.error")
        package_log = logging.getLogger("flaskserve")
        package_log.handlers = gunicorn_log.handlers
        package_log.setLevel(gunicorn_log.level)
        app = create_app(self.settings)
        freeze_loaded_heap()
        return app


class RescanningArbiter(Arbiter):  # type: ignore[misc]
    """SIGHUP makes every worker rescan the model repository in place.

    gunicorn's own HUP replaces the workers, and a replacement knows nothing of
    the last good model: a bad artifact on disk would then serve nothing. A
    rescan keeps the old version serving until the new one has passed its checks.
    """

    def handle_hup(self) -> None:
        self.log.info("Hang up: every worker rescans the model repository")
        for pid in list(self.WORKERS):
            self.kill_worker(pid, signal.SIGHUP)


def _worker_ready(worker: Any) -> None:
    """gunicorn ``post_worker_init`` hook, once the worker's handlers are set and its app
    loaded: a stop held since the fork now stops it; SIGHUP starts a rescan."""
    from ..api.state import EXTENSION_KEY

    release_stop_signals()
    rescan_on_hangup(worker.wsgi.extensions[EXTENSION_KEY].registry)


def run_gunicorn(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    threads: int = 1,
    keepalive: int = 2,
) -> None:
    """Serve until SIGTERM/SIGINT; gunicorn's own limits on request lines and headers stay on.

    :param keepalive: seconds an idle connection waits for its next request (0: none).
    """
    options: dict[str, Any] = {
        "bind": bind_address(host, port),
        "workers": workers,
        # threads only pay where requests can share a model call (batching, scikit-learn)
        # sync workers fed whole requests only (slow clients cost no worker), draining on stop
        "worker_class": "gthread"
        if threads > 1
        else "flaskserve.serving.worker.BufferingSyncWorker",
        "threads": threads,
        # a worker takes no more connections than it has threads; the rest wait in the shared
        # listen queue for whichever worker frees a thread first, so concurrent requests spread
        # evenly and batches fill (16 clients on 2 workers were measured split 12/4 otherwise)
        "worker_connections": threads,
        # keep-alive: measured ~30% more requests/s for the compiled model (a new TCP
        # connection per request costs more than the whole Flask request); flaskserve's
        # worker waits for an idle connection's next request without blocking. gthread, held
        # to one connection per thread above, has none to spare for idle ones: it closes.
        "keepalive": keepalive if threads == 1 else 0,
        "timeout": 30,
        "graceful_timeout": 30,
        "accesslog": None,  # the app writes its own structured access log (FLASKSERVE_ACCESS_LOG)
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "flaskserve",
        "post_worker_init": _worker_ready,
        "child_exit": lambda server, worker: forget_worker(worker.pid),
    }
    hold_stop_signals_across_forks()
    GunicornServer(settings, options).run()


def run_development(settings: Settings, *, host: str, port: int, debugger: bool) -> None:
    """Flask's development server, for local work only.

    :raises ValueError: the debugger was asked for on a non-loopback address,
        where it would give anyone who can reach the port a Python shell.
    """
    if debugger:
        check_debugger_host(host)
    create_app(settings).run(host=host, port=port, debug=debugger, use_reloader=False)
