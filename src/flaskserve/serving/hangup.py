"""SIGHUP in a worker: rescan the model repository in place, under either server.

Both servers' own SIGHUP replaces the workers, and a replacement knows nothing of
the last good model; a rescan keeps the old version serving until the new one has
passed its checks.
"""

from __future__ import annotations

import signal
import threading

from ..runtime.registry import ModelRegistry


def rescan_on_hangup(registry: ModelRegistry) -> None:
    """Make SIGHUP start a rescan of *registry* (in a thread: the handler must return)."""

    def on_hangup(signum: int, frame: object) -> None:
        threading.Thread(target=registry.refresh, name="flaskserve-rescan", daemon=True).start()

    signal.signal(signal.SIGHUP, on_hangup)
