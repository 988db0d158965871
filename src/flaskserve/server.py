"""Run the app under gunicorn (production) or Flask's development server."""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from .app import create_app
from .settings import Settings


def default_workers() -> int:
    """One sync worker per core: prediction is CPU-bound."""
    return max(os.cpu_count() or 1, 1)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_address(host: str, port: int) -> str:
    return f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"


class GunicornServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no types
    """gunicorn embedded: each worker builds its own app from *settings* after the fork.

    Loading after the fork (no ``preload_app``) keeps workers independent: a
    worker that is replaced loads the model itself.
    """

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self._settings = settings
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)
        # gunicorn 27 opens a control socket at one fixed path per user; several
        # servers on a machine would fight over it, and flaskserve does not use it.
        if "control_socket_disable" in self.cfg.settings:
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Flask:
        gunicorn_log = logging.getLogger("gunicorn.error")
        package_log = logging.getLogger("flaskserve")
        package_log.handlers = gunicorn_log.handlers
        package_log.setLevel(gunicorn_log.level)
        return create_app(self._settings)


def run_gunicorn(
    settings: Settings, *, host: str, port: int, workers: int, access_log: bool = False
) -> None:
    """Serve until SIGTERM/SIGINT; gunicorn's own limits on request lines and headers stay on."""
    options: dict[str, Any] = {
        "bind": bind_address(host, port),
        "workers": workers,
        "worker_class": "sync",
        "timeout": 30,
        "graceful_timeout": 30,
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "flaskserve",
    }
    GunicornServer(settings, options).run()


def run_development(settings: Settings, *, host: str, port: int, debugger: bool) -> None:
    """Flask's development server, for local work only.

    :raises ValueError: the debugger was asked for on a non-loopback address,
        where it would give anyone who can reach the port a Python shell.
    """
    if debugger and not is_loopback(host):
        raise ValueError(
            f"the debugger runs arbitrary code; it is allowed on loopback only, not {host}"
        )
    create_app(settings).run(host=host, port=port, debug=debugger, use_reloader=False)
