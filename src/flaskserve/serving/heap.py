"""A worker's heap once its app is loaded: frozen out of the garbage collector's passes."""

from __future__ import annotations

import gc


def freeze_loaded_heap() -> None:
    """Move every object alive now (modules, the models, the app) to the permanent generation.

    They live as long as the worker, yet each full collection walked all of them: up to
    20 ms during which no request thread ran, a request's p99 where monitors keep
    answers for a while (docs/performance.md#garbage-collection). Called in each worker
    after its app is built, so what freezes is that worker's own.

    A model loaded at start and later replaced is still freed by reference counting; only
    what it holds in reference cycles stays, once per such model, never per request.
    """
    gc.collect()  # what the loading left as garbage goes now, not frozen with the rest
    gc.freeze()
