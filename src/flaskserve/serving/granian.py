"""Run the app under granian (``flaskserve serve --server granian``), an optional extra.

granian parses HTTP in Rust (hyper) and calls the app through WSGI; its master
forks the workers, each binding its own listening socket (``SO_REUSEPORT``).
What gunicorn's hooks do for flaskserve is done here with granian's public
API, multiprocessing's and prometheus_client's: the master forwards SIGHUP to
the workers (each rescans its models in place), a starting worker forgets the
live gauges of workers that died, and a stopping worker writes the metrics it
tallied. docs/performance.md has the measurements against gunicorn.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.util
import os
import re
import signal
from functools import partial
from pathlib import Path
from typing import Any

from flask import Flask

from ..app import create_app
from ..metrics import MULTIPROCESS_ENV, forget_worker
from ..settings import Settings
from .hangup import rescan_on_hangup
from .heap import freeze_loaded_heap
from .stop_signals import hold_stop_signals_across_forks, release_stop_signals

INSTALL_HINT = "pip install 'flaskserve[granian]'"
#: the log line format gunicorn's workers use, so logs read the same under either server
LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
#: Python threads per worker, started as needed. granian hands a body to the app as it
#: arrives, so a client sending its body slowly holds a thread until it is done; with one
#: thread 8 such clients stalled every other request (gunicorn's buffering worker needs none)
SLOW_CLIENT_THREADS = 32
#: the most a request line and headers may take (hyper's read buffer): 431, without a body,
#: beyond. granian's default (408 KiB) let a 200 KB header through
HEADER_BYTES = 64 * 1024
#: the live gauges prometheus_client writes per process: ``gauge_livemax_<pid>.db``
_LIVE_GAUGE = re.compile(r"gauge_live\w*_(\d+)\.db")


class GranianMissing(ImportError):
    """``--server granian`` without the granian package installed."""


def server_class() -> type[Any]:
    """granian's multi-process server, imported on first use.

    :raises GranianMissing: granian is not installed; the message says how to install it.
    """
    try:
        from granian.server import Server
    except ImportError as e:
        raise GranianMissing(f"--server granian needs the granian package: {INSTALL_HINT}") from e
    server: type[Any] = Server
    return server


def run_granian(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    threads: int = 1,
    keepalive: int = 2,
) -> None:
    """Serve until SIGTERM/SIGINT with granian's WSGI workers.

    :param threads: Python threads per worker that run requests (granian's blocking
        threads); at least :data:`SLOW_CLIENT_THREADS`.
    :param keepalive: seconds an idle connection waits for its next request (0: none).
    :raises GranianMissing: granian is not installed.
    """
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings

    server = server_class()(
        "flaskserve.app:create_app",  # shown in the process title; the loader below builds it
        address=host.strip("[]"),
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=max(threads, SLOW_CLIENT_THREADS),
        backlog=2048,  # gunicorn's default
        http1_settings=HTTP1Settings(
            header_read_timeout=int(_header_seconds(settings, keepalive) * 1000),
            keep_alive=keepalive > 0,
            max_buffer_size=HEADER_BYTES,
        ),
        log_dictconfig=_log_config(),
        # a worker that dies is replaced at once; granian gives up (the server exits) when
        # the same worker dies again within 5.5 s of its replacement
        respawn_failed_workers=True,
        respawn_interval=1.0,  # a worker being replaced (SIGHUP aside) overlaps its successor
        workers_kill_timeout=30,  # gunicorn's graceful_timeout: then in-flight requests die
    )
    server.on_startup(_forward_hangup)
    hold_stop_signals_across_forks()
    server.serve(target_loader=partial(_load_app, settings), wrap_loader=False)


def _header_seconds(settings: Settings, keepalive: int) -> float:
    """hyper's one timer for a request's headers, from the connection's first byte or the
    last answer: on a kept-alive connection it is also the idle timeout. Past it hyper
    closes the connection without an answer (no 408). At most 60 s (granian's limit)."""
    seconds = (
        settings.request_timeout if keepalive == 0 else min(keepalive, settings.request_timeout)
    )
    return min(seconds, 60.0)


def _log_config() -> dict[str, Any]:
    formatter = {"()": "logging.Formatter", "fmt": LOG_FORMAT, "datefmt": "%Y-%m-%d %H:%M:%S %z"}
    console = {
        "formatter": "generic",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    return {
        "formatters": {"generic": formatter},
        "handlers": {"console": console},
        "loggers": {
            "_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "flaskserve": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }


def _forward_hangup() -> None:
    """granian ``on_startup`` hook, in the master: SIGHUP makes every worker rescan.

    granian's own SIGHUP replaces the workers, and a replacement knows nothing of
    the last good model (as with gunicorn's, see ``RescanningArbiter``).
    """

    def on_hangup(signum: int, frame: object) -> None:
        logging.getLogger("flaskserve").info("Hang up: every worker rescans the model repository")
        for worker in multiprocessing.active_children():
            if worker.pid is not None:
                os.kill(worker.pid, signal.SIGHUP)

    signal.signal(signal.SIGHUP, on_hangup)


def _load_app(settings: Settings) -> Flask:
    """granian's target loader, run in each worker after the fork."""
    from ..api.state import EXTENSION_KEY, ServerState

    # Until granian sets its own handlers after this returns, a worker still has the
    # master's, which only flag the master's copy. A loading worker serves nobody: a stop
    # that came since the fork (held pending, see above) or comes while it loads ends it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    release_stop_signals()
    directory = os.environ.get(MULTIPROCESS_ENV)
    if directory:
        forget_dead_workers(Path(directory))
    app = create_app(settings)
    state: ServerState = app.extensions[EXTENSION_KEY]
    # The app starts watching the repository at its first request (it may be built before a
    # fork); a granian worker can go long without one, its clients' connections hashed to the
    # others' sockets, and would then answer its first from a stale model. It is forked now.
    state.registry.start_watching(settings.poll_seconds)
    # multiprocessing ends a worker with os._exit, which skips atexit: flush here instead
    multiprocessing.util.Finalize(None, state.metrics.flush, exitpriority=0)
    rescan_on_hangup(state.registry)
    freeze_loaded_heap()
    return app


def forget_dead_workers(directory: Path) -> list[int]:
    """Drop the live gauges of every process that wrote to *directory* and is gone.

    gunicorn reports each dead worker to its ``child_exit`` hook; granian has no such
    hook, so each worker does this as it starts (a replacement starts after each death).

    :returns: the processes forgotten.
    """
    gone = set()
    for path in directory.glob("gauge_live*_*.db"):
        match = _LIVE_GAUGE.fullmatch(path.name)
        if match and not _alive(int(match.group(1))):
            gone.add(int(match.group(1)))
    for pid in sorted(gone):
        forget_worker(pid)
    return sorted(gone)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now holds the number
        return True
    return True
