"""``flaskserve serve`` and ``quickstart``: their options, declared once, and the start."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from .admission import RUNTIME_CHOICES
from .errors import ArtifactError, SettingsError
from .settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

_THREADS = click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="Threads per worker [default: 8 when a model runs on scikit-learn (its calls are"
    " batched), else 1].",
)
_KEEPALIVE = click.option(
    "--keepalive",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Seconds an idle connection is kept open for its next request; 0: close after each"
    " (threaded workers, --threads > 1, always close).",
)
RUNTIME_OPTION = click.option(
    "--runtime",
    type=click.Choice(RUNTIME_CHOICES),
    help="auto: the compiled model where it passed its parity gate, else scikit-learn.",
)
_SERVER_OPTIONS = (
    click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind."),
    click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535)),
    click.option(
        "--workers", type=click.IntRange(min=1), help="Worker processes [default: one per core]."
    ),
    RUNTIME_OPTION,
    _THREADS,
    _KEEPALIVE,
    click.option(
        "--server",
        "http_server",
        type=click.Choice(["gunicorn", "granian"]),
        default="gunicorn",
        show_default=True,
        help="The HTTP server; granian is an optional extra (docs/performance.md compares them).",
    ),
)


def server_options(command: F) -> F:
    """The options of every command that starts the server, declared once."""
    for option in reversed(_SERVER_OPTIONS):
        command = option(command)
    return command


def run_server(
    model_dir: Path,
    *,
    host: str,
    port: int,
    workers: int | None,
    runtime: str | None,
    threads: int | None = None,
    keepalive: int = 2,
    dev: bool = False,
    debugger: bool = False,
    access_log: bool = False,
    http_server: str = "gunicorn",
    log_dir: Path | None = None,
    log_sample: float | None = None,
    shadow: tuple[str, ...] = (),
) -> None:
    from .serving import granian
    from .serving import gunicorn as server

    _check_server_choice(host, dev, debugger, http_server)
    try:
        settings = Settings.from_env(
            model_dir=model_dir,
            runtime=runtime,
            access_log=access_log or None,
            log_dir=log_dir,
            log_sample=log_sample,
            shadow=",".join(shadow) or None,
        )
        if settings.log_dir is not None:
            from .monitoring.requestlog_files import require_pyarrow

            require_pyarrow()  # one line now, not a traceback in every worker
    except SettingsError as e:
        raise click.UsageError(e.message) from None
    kinds = _check_repository(settings)  # fail now, with one clear line, not in every worker
    served = ", ".join(f"{name} ({kind})" for name, kind in kinds.items())
    click.echo(f"serving {served} on http://{server.bind_address(host, port)}", err=True)
    if threads is None:
        threads = 8 if "sklearn" in kinds.values() and settings.batching else 1
    if dev:
        server.run_development(settings, host=host, port=port, debugger=debugger)
        return
    with _state_directory() as state_dir:
        if settings.state_dir is None:  # workers share load/unload decisions through it
            settings = dataclasses.replace(settings, state_dir=Path(state_dir))
        metrics_dir = Path(state_dir) / "metrics"  # set before any worker imports prometheus_client
        metrics_dir.mkdir()
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
        workers = workers or server.default_workers()
        run = server.run_gunicorn if http_server == "gunicorn" else granian.run_granian
        run(settings, host=host, port=port, workers=workers, threads=threads, keepalive=keepalive)


@contextlib.contextmanager
def _state_directory() -> Iterator[Path]:
    """A temporary directory that this process alone removes.

    Workers are forked inside the ``with`` and leave through it too: with
    ``tempfile.TemporaryDirectory`` each worker's graceful exit removed the directory the
    master and every other worker still shared (metrics, routing, drift counts).
    """
    path = Path(tempfile.mkdtemp(prefix="flaskserve-state-"))
    owner = os.getpid()
    try:
        yield path
    finally:
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)


def _check_server_choice(host: str, dev: bool, debugger: bool, http_server: str) -> None:
    """:raises click.UsageError: before any model is checked."""
    from .serving import granian
    from .serving import gunicorn as server

    if debugger and not dev:
        raise click.UsageError("--debugger needs --dev (gunicorn never runs the debugger)")
    if http_server == "granian":
        try:
            granian.server_class()
        except granian.GranianMissing as e:
            raise click.UsageError(str(e)) from None
    if debugger:
        try:
            server.check_debugger_host(host)
        except ValueError as e:
            raise click.UsageError(str(e)) from None


def _check_repository(settings: Settings) -> dict[str, str]:
    from .preflight import check_repository

    try:
        report = check_repository(settings, lambda note: click.echo(f"warning: {note}", err=True))
    except ArtifactError as e:
        raise click.BadParameter(e.message, param_hint="MODEL_DIR") from None
    except SettingsError as e:
        raise click.UsageError(e.message) from None
    return report.models


#: the monitors' options of ``serve`` (docs/monitoring.md)
MONITOR_OPTIONS = (
    click.option(
        "--log-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Keep a sample of answered requests there as Parquet files (FLASKSERVE_LOG_DIR).",
    ),
    click.option(
        "--log-sample",
        type=click.FloatRange(0, 1, min_open=True),
        help="The fraction of answered requests the log keeps [default: 1].",
    ),
    click.option(
        "--shadow",
        multiple=True,
        metavar="NAME=VERSION[@FRACTION]",
        help="Score that fraction of NAME's requests with VERSION too, off the request path;"
        " VERSION answers no client (FLASKSERVE_SHADOW).",
    ),
)


def monitor_options(command: F) -> F:
    for option in reversed(MONITOR_OPTIONS):
        command = option(command)
    return command
