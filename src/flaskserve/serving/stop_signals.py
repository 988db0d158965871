"""Workers forked with the stop signals held, so that no stop is lost while one starts."""

from __future__ import annotations

import os
import signal

#: the signals that stop a worker
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def hold_stop_signals_across_forks() -> None:
    """Fork the workers with SIGTERM and SIGINT blocked; each worker calls
    :func:`release_stop_signals` once its own handlers are set.

    A worker starts with the master's handlers, which only flag the master's copy: a stop
    that reached a worker between its fork and its own handlers was lost, and the master
    waited out its 30 s kill timeout. Blocked, the signal stays pending until the worker
    can act on it. The master blocks them only while it forks.
    """
    os.register_at_fork(before=_block_stop_signals, after_in_parent=release_stop_signals)


def _block_stop_signals() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def release_stop_signals() -> None:
    """Deliver a stop held since the fork to the handlers now set (or to none: a worker
    holds nothing yet)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
