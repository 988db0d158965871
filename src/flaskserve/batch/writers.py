"""Output files that appear under their name only when complete.

A :class:`TableWriter` writes to a hidden temporary file in the destination's
directory and renames it into place (``os.replace``, atomic on one file
system) when :meth:`TableWriter.commit` is called; on any error it deletes the
temporary file, and a killed process leaves at most a ``.NAME.*.part`` file.

The bytes written do not depend on how the rows were chunked: CSV is written
row by row, and Parquet in row groups of :data:`ROW_GROUP_ROWS` rows, so the
local and Dask engines, with any ``--chunk-rows``, write identical files.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from .options import BatchError

#: rows per Parquet row group, fixed so the file does not depend on the chunking
ROW_GROUP_ROWS = 65_536


class TableWriter:
    """Write Arrow tables with one schema to *path* as CSV or Parquet, atomically.

    :raises BatchError: the temporary file cannot be created in *path*'s directory.
    """

    def __init__(self, path: Path, fmt: str, schema: Any) -> None:
        self.path = path
        self.temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            # "x" and not mkstemp: the file gets the usual permissions (0666 less umask)
            self._file: BinaryIO = open(self.temporary, "xb")
        except OSError as e:
            raise BatchError(f"cannot write {path}: {e.strerror or e}") from e
        self._format = fmt
        self._schema = schema
        self._pending: list[Any] = []  # Parquet rows not yet in a full row group
        self._pending_rows = 0
        self._done = False
        self._writer: Any = None
        try:
            self._writer = self._open_writer()
        except BaseException:
            self.discard()
            raise

    def _open_writer(self) -> Any:
        if self._format == "csv":
            import pyarrow.csv as pcsv

            return pcsv.CSVWriter(self._file, self._schema)
        import pyarrow.parquet as pq

        return pq.ParquetWriter(self._file, self._schema)

    def write(self, table: Any) -> None:
        """Append *table*'s rows."""
        if self._format == "csv":
            self._writer.write_table(table)
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush_groups(final=False)

    def _flush_groups(self, *, final: bool) -> None:
        import pyarrow as pa

        rows = pa.concat_tables(self._pending) if self._pending else self._schema.empty_table()
        full = rows.num_rows - rows.num_rows % ROW_GROUP_ROWS
        end = rows.num_rows if final else full
        for start in range(0, end, ROW_GROUP_ROWS):
            # one contiguous chunk per group: page boundaries must not follow the chunking
            group = rows.slice(start, min(ROW_GROUP_ROWS, end - start)).combine_chunks()
            self._writer.write_table(group, row_group_size=ROW_GROUP_ROWS)
        rest = rows.slice(end)
        self._pending, self._pending_rows = [rest], rest.num_rows

    def commit(self) -> None:
        """Finish the file and rename it to its final name."""
        if self._format == "parquet":
            self._flush_groups(final=True)
        self._writer.close()
        self._file.flush()
        os.fsync(self._file.fileno())  # the data is on disk before the name is
        self._file.close()
        os.replace(self.temporary, self.path)
        self._done = True

    def discard(self) -> None:
        """Delete the temporary file; the final name is left as it was."""
        if self._done:
            return
        self._done = True
        if self._writer is not None:
            with contextlib.suppress(Exception):  # it would close itself when collected
                self._writer.close()
        self._file.close()
        self.temporary.unlink(missing_ok=True)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.discard()
