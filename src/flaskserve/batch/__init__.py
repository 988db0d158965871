"""Score CSV and Parquet files offline with the server's runtime: ``flaskserve batch``.

Nothing here imports Flask; pyarrow, tqdm and (for ``--engine dask``)
dask.distributed come with ``pip install 'flaskserve[batch]'`` and are imported
only when a run starts.
"""

from __future__ import annotations

from .engine import run_batch
from .options import BatchError, BatchOptions, BatchSummary, InputFileError, TooManyRejects

__all__ = [
    "BatchError",
    "BatchOptions",
    "BatchSummary",
    "InputFileError",
    "TooManyRejects",
    "run_batch",
]
