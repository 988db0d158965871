"""``flaskserve serve --server granian``: the option, the missing extra, the hooks it replaces."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flaskserve.cli import main
from flaskserve.serving import granian
from flaskserve.serving.stop_signals import STOP_SIGNALS
from flaskserve.settings import Settings


def test_serve_offers_both_servers() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--server [gunicorn|granian]" in result.output
    assert "[default: gunicorn]" in result.output


def test_an_unknown_server_is_refused(model_dir: Path) -> None:
    result = CliRunner().invoke(main, ["serve", str(model_dir), "--server", "nginx"])
    assert result.exit_code == 2
    assert "Invalid value for '--server'" in result.output


def test_without_granian_the_error_says_how_to_install_it(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "granian.server", None)  # import granian.server fails
    result = CliRunner().invoke(main, ["serve", str(model_dir), "--server", "granian"])
    assert result.exit_code == 2
    assert "--server granian needs the granian package" in result.output
    assert "pip install 'flaskserve[granian]'" in result.output
    assert "Traceback" not in result.output


def test_serve_runs_granian_with_the_same_settings(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[Settings, dict[str, Any]]] = []
    monkeypatch.setattr(granian, "run_granian", lambda s, **kw: calls.append((s, kw)))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # restored after the test
    args = ["serve", str(model_dir), "--server", "granian", "--port", "0", "--workers", "3"]
    result = CliRunner().invoke(main, [*args, "--keepalive", "5"])
    assert result.exit_code == 0, result.output
    ((settings, options),) = calls
    assert settings.model_dir == model_dir
    assert settings.state_dir is not None  # the workers share their load decisions
    assert options == {
        "host": "127.0.0.1",
        "port": 0,
        "workers": 3,
        "threads": 1,
        "keepalive": 5,
    }


@pytest.mark.parametrize(
    ("request_timeout", "keepalive", "seconds"),
    [(30.0, 2, 2.0), (30.0, 0, 30.0), (1.0, 2, 1.0), (120.0, 0, 60.0), (120.0, 90, 60.0)],
    ids=["keepalive", "no-keepalive", "request-timeout-first", "capped", "capped-keepalive"],
)
def test_header_read_timeout(request_timeout: float, keepalive: int, seconds: float) -> None:
    """hyper's header timer is also the idle timeout of a kept-alive connection."""
    settings = Settings(request_timeout=request_timeout)
    assert granian._header_seconds(settings, keepalive) == seconds


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def test_a_starting_worker_forgets_dead_workers_live_gauges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    dead, alive = _dead_pid(), os.getpid()
    for name in (f"gauge_livemax_{dead}.db", f"gauge_livemax_{alive}.db", f"counter_{dead}.db"):
        (tmp_path / name).write_bytes(b"")
    assert granian.forget_dead_workers(tmp_path) == [dead]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [f"counter_{dead}.db", f"gauge_livemax_{alive}.db"]  # counters stay counted


def test_a_loading_worker_dies_of_sigterm(model_dir: Path) -> None:
    """Until granian sets a worker's handlers, it has the master's, which would lose a
    SIGTERM sent while the model loads: the stop would then wait 30 s to kill it."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # as a worker is forked
    try:
        granian._load_app(Settings(model_dir=model_dir, poll_seconds=0))
        assert not STOP_SIGNALS & signal.pthread_sigmask(signal.SIG_BLOCK, [])
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, saved[signal.SIGHUP])
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_a_gunicorn_worker_takes_a_held_stop_once_ready(model_dir: Path) -> None:
    """gunicorn's workers are forked with the stop signals blocked too; the hook that runs
    once a worker has its handlers and its app releases them."""
    from types import SimpleNamespace

    from flaskserve.app import create_app
    from flaskserve.serving import gunicorn

    app = create_app(Settings(model_dir=model_dir, poll_seconds=0))
    saved = signal.getsignal(signal.SIGHUP)
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # as a worker is forked
    try:
        gunicorn._worker_ready(SimpleNamespace(wsgi=app))
        assert not STOP_SIGNALS & signal.pthread_sigmask(signal.SIG_BLOCK, [])
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        signal.signal(signal.SIGHUP, saved)
