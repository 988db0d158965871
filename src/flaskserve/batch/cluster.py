"""The Dask engine: pieces scored on a cluster, results written by the client in order.

Workers read their piece of the input themselves (the input and the model
directory must be on a file system they share with the client, under the same
path) and send back only the scored columns. The client keeps a bounded
window of pieces in flight, two per worker thread, and waits for them in input
order, so its memory does not grow with the file.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Generator, Iterator
from typing import Any

from .options import BatchError
from .scoring import ChunkResult, ScoringJob, score_piece
from .sources import Source

_CONNECT_TIMEOUT = "10s"


def score_on_dask(
    source: Source, job: ScoringJob, *, scheduler: str | None, workers: int | None
) -> Generator[ChunkResult, None, None]:
    """Score every piece of *source* on a Dask cluster, yielding results in input order.

    :param scheduler: ``tcp://HOST:PORT`` of a running scheduler; ``None``
        starts a ``LocalCluster`` of *workers* processes with one thread each.
    :raises BatchError: the scheduler cannot be reached.
    """
    with _connect(scheduler, workers) as client:
        window = 2 * max(1, sum(client.nthreads().values()))
        pieces = iter(source.pieces)
        pending: deque[Any] = deque()
        try:
            for piece in pieces:
                pending.append(client.submit(score_piece, piece, job, pure=False))
                if len(pending) >= window:
                    yield from _result(pending.popleft())
            while pending:
                yield from _result(pending.popleft())
        finally:
            if pending:  # stopped early: a shared cluster need not finish our work
                client.cancel(list(pending))


def _result(future: Any) -> list[ChunkResult]:
    """The piece's results; the cluster's failures (not the task's own errors) as BatchError."""
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    try:
        results: list[ChunkResult] = future.result()
    except (KilledWorker, CommClosedError, OSError) as e:
        raise BatchError(f"the Dask cluster failed: {e}") from e
    return results


@contextlib.contextmanager
def _connect(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    import dask
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        target: Any = scheduler
        if scheduler is None:
            # ONNX Runtime does not survive fork: workers must be spawned (Dask's default)
            stack.enter_context(
                dask.config.set({"distributed.worker.multiprocessing-method": "spawn"})
            )
            target = stack.enter_context(
                LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=workers or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address="127.0.0.1:0",  # any free port: 8787 may be taken
                )
            )
        try:
            client = stack.enter_context(Client(target, timeout=_CONNECT_TIMEOUT))  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError) as e:
            raise BatchError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from e
        yield client
