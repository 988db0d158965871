"""The request log's files: their schema, their rows as Arrow columns, their names, their
writing (whole or not at all) and the disk budget they share across workers.

Nothing here imports pyarrow until a file is built; :func:`require_pyarrow` says
which extra to install when it is missing.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SettingsError
from ..runtime.registry import ServedModel
from ..schema import Table, kind_of
from .base import Answers

#: the columns after the features, prediction and probabilities, in this order
RECORD_COLUMNS = ("model", "version", "request_id", "row", "endpoint", "time")
SUFFIX = ".parquet"
#: a temporary file this old is a killed worker's leftover (a write takes milliseconds)
ORPHAN_SECONDS = 300.0
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_MISSING_PYARROW = (
    "FLASKSERVE_LOG_DIR: the request log writes Parquet with pyarrow, which is not installed:"
    " pip install 'flaskserve[log]'"
)


def require_pyarrow() -> None:
    """:raises SettingsError: pyarrow is missing; the message names the extra to install."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise SettingsError(_MISSING_PYARROW) from None


def log_schema(model: ServedModel) -> Any:
    """The columns of *model*'s log files: its features (typed as the model takes them),
    ``prediction`` and ``proba_<class>``... as ``flaskserve batch`` writes them, then
    :data:`RECORD_COLUMNS`. The same for every file of one model version."""
    import pyarrow as pa

    from ..batch.scoring import output_schema

    manifest = model.runtime.manifest
    # a matrix model takes float64 whatever its features' dtypes: log what it took
    typed = manifest.input == "frame"
    fields = [
        pa.field(f.name, _arrow_type(kind_of(f) if typed else "number")) for f in manifest.features
    ]
    fields += list(output_schema(manifest, None, None, proba=True, labels=False))
    fields += [
        pa.field("model", pa.string()),
        pa.field("version", pa.int64()),
        pa.field("request_id", pa.string()),
        pa.field("row", pa.int64()),
        pa.field("endpoint", pa.string()),
        pa.field("time", pa.timestamp("us", tz="UTC")),
    ]
    return pa.schema(fields)


def _arrow_type(kind: str) -> Any:
    import pyarrow as pa

    kinds = {"integer": pa.int64(), "boolean": pa.bool_(), "text": pa.string()}
    return kinds.get(kind, pa.float64())


def to_table(schema: Any, model: ServedModel, answers: Answers) -> Any:
    """*answers* (of *model*) as one Arrow table: one conversion per column, not per
    request. NaN and ``None`` cells become nulls."""
    import pyarrow as pa

    counts = answers.sizes
    total = len(answers)
    columns = [
        pa.array(cells, from_pandas=True).cast(schema.field(i).type)
        for i, cells in enumerate(_feature_columns(answers.inputs))
    ]
    prediction = pa.array(answers.predictions, from_pandas=True)
    columns.append(prediction.cast(schema.field("prediction").type))
    columns += _probabilities(schema, answers.probabilities, total)
    records = {
        "model": np.repeat(np.array([model.name], dtype=object), total),
        "version": np.repeat(np.int64(model.version), total),
        "request_id": np.repeat(np.array(answers.request_ids, object), counts),
        "row": np.arange(total, dtype=np.int64) - np.repeat(counts.cumsum() - counts, counts),
        "endpoint": np.repeat(np.array(answers.endpoints, object), counts),
        "time": np.repeat(np.round(answers.times * 1e6).astype(np.int64), counts),
    }
    columns += [pa.array(records[name], schema.field(name).type) for name in RECORD_COLUMNS]
    return pa.Table.from_arrays(columns, schema=schema)


def _feature_columns(inputs: np.ndarray | Table) -> list[np.ndarray]:
    if isinstance(inputs, Table):
        return list(inputs.columns)
    return [inputs[:, j] for j in range(inputs.shape[1])]


def _probabilities(schema: Any, given: np.ndarray | None, rows: int) -> list[Any]:
    """The ``proba_`` columns: what the client asked for, or nulls where it did not."""
    import pyarrow as pa

    classes = sum(1 for name in schema.names if name.startswith("proba_"))
    if not classes:
        return []
    if given is None:
        return [pa.nulls(rows, pa.float64()) for _ in range(classes)]
    cells = given.astype(np.float64, copy=False)
    return [pa.array(cells[:, j], pa.float64(), from_pandas=True) for j in range(classes)]


def joined(tables: Sequence[Any]) -> Any:
    """One table of one file's *tables* (their columns are chained, not copied)."""
    import pyarrow as pa

    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def file_name(first_time: float, sequence: int) -> str:
    """``<UTC time of the first row>-<pid>-<sequence>.parquet``: names sort by time, and two
    workers (or one worker's two files) never pick the same one."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(first_time))
    micros = int(first_time % 1 * 1e6)
    return f"{stamp}.{micros:06d}Z-{os.getpid()}-{sequence:06d}{SUFFIX}"


def write_file(table: Any, target: Path) -> None:
    """Write *table* to *target*, whole or not at all.

    It is written under a hidden temporary name (``.<name>.tmp``: never a ``.parquet``,
    and skipped by pyarrow's and pandas' directory readers), synced, then renamed into
    place, so a reader, or a worker killed halfway, never leaves half a file.

    :raises OSError: the file could not be written; nothing is left behind.
    """
    import pyarrow.parquet as pq

    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        with temporary.open("wb") as out:
            pq.write_table(table, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def no_space(error: BaseException) -> bool:
    """The disk (or the user's quota) is full."""
    return isinstance(error, OSError) and error.errno in _NO_SPACE


def prune(root: Path, max_bytes: int) -> int:
    """Remove the oldest log files under *root* (every model's, every worker's) until they
    fit in *max_bytes*, and temporary files a killed worker left; returns files removed.

    Workers prune at once without a lock: a file another removed first is skipped.
    """
    files: list[tuple[str, int, Path]] = []
    removed = 0
    now = time.time()
    for path in root.glob("*/*"):
        try:
            status = path.stat()
        except FileNotFoundError:
            continue
        if path.name.endswith(SUFFIX) and not path.name.startswith("."):
            files.append((path.name, status.st_size, path))
        elif path.name.startswith(".") and now - status.st_mtime > ORPHAN_SECONDS:
            path.unlink(missing_ok=True)
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files):  # names start with the time: oldest first
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
        removed += 1
    return removed
