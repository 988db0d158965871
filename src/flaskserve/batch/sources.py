"""Input files cut into pieces any process can read on its own.

A piece is a picklable description (path and offsets), never data, so the same
list drives the local engine and the Dask workers. CSV pieces are byte ranges
that start and end on record boundaries, found by one vectorised pass over the
file (newlines outside double quotes, RFC 4180). Parquet pieces are row ranges,
read with a buffered stream so a large row group is never loaded whole.
"""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .options import InputFileError

_SCAN_BLOCK = 4 << 20  # bytes per read of the boundary scan
_PARQUET_BUFFER = 1 << 20  # read Parquet column chunks through a 1 MiB buffer


@dataclass(frozen=True)
class CsvPiece:
    """Bytes ``[start, stop)`` of a CSV file: whole records, parsed after the header."""

    path: str
    header: bytes
    start: int
    stop: int


@dataclass(frozen=True)
class ParquetPiece:
    """Rows ``[start, stop)`` of a Parquet file, in row groups from ``first_group`` on."""

    path: str
    start: int
    stop: int
    first_group: int
    first_group_row: int  # the file row number of the first group's first row


Piece = CsvPiece | ParquetPiece


@dataclass
class RawChunk:
    """Rows as read, before validation.

    :param table: one string (CSV) or typed (Parquet) column per name asked for.
    :param rows_read: the chunk's rows, including ``malformed`` ones not in *table*.
    :param malformed: ``(position, reason)`` of records the CSV parser refused.
    :param positions: each table row's 0-based position in the chunk.
    :param empty_is_missing: an empty text cell is a missing one (CSV has no null).
    """

    table: Any
    rows_read: int
    malformed: list[tuple[int, str]] = field(default_factory=list)
    positions: np.ndarray | None = None
    empty_is_missing: bool = False


@dataclass(frozen=True)
class Source:
    """An input file, checked and cut into pieces.

    :param rows: the row count (Parquet) or the record count of the scan (CSV),
        an upper bound when the file has blank lines.
    :param id_type: the Arrow type of the id column, if one was asked for.
    """

    format: str
    pieces: tuple[Piece, ...]
    rows: int
    id_type: Any


def open_source(
    path: Path,
    fmt: str,
    features: Sequence[str],
    id_column: str | None,
    chunk_rows: int,
    *,
    split: bool,
    typed: bool = False,
) -> Source:
    """Check that *path* has the columns a run needs and cut it into pieces.

    :param split: cut into pieces of about *chunk_rows* rows even where one
        process could stream the file (the Dask engine's partitions).
    :param typed: the model takes typed cells (text, booleans, categories), not only
        numbers: a Parquet column may also hold booleans or dictionary-encoded text.
    :raises InputFileError: unreadable, not that format, a column missing or
        of a type that holds no numbers (nor, for *typed*, text or booleans).
    """
    try:
        _check_regular(path)
        if fmt == "csv":
            return _open_csv(path, features, id_column, chunk_rows)
        return _open_parquet(path, features, id_column, chunk_rows, split=split, typed=typed)
    except OSError as e:
        raise InputFileError(f"{path}: cannot read ({e.strerror or e})") from e


def read_piece(piece: Piece, columns: Sequence[str], chunk_rows: int) -> Iterator[RawChunk]:
    """Read *piece* as chunks of at most *chunk_rows* rows (CSV: one chunk per piece).

    :raises InputFileError: the bytes do not parse as the format, cannot be
        read, or are fewer than when the source was opened.
    """
    import pyarrow as pa

    try:
        _check_regular(piece.path)  # replaced since the source was opened
        if isinstance(piece, CsvPiece):
            yield _read_csv(piece, columns)
        else:
            yield from _read_parquet(piece, columns, chunk_rows)
    except pa.ArrowException as e:
        raise InputFileError(f"{piece.path}: {_one_line(e)}") from e
    except OSError as e:  # gone, replaced, or a corrupt Parquet page (Arrow's IOError)
        raise InputFileError(f"{piece.path}: cannot read ({e.strerror or _one_line(e)})") from e


def _one_line(error: Exception) -> str:
    """Arrow's message on one line: its reasons come on lines of their own."""
    return " ".join(str(error).split())


def _check_regular(path: Path | str) -> None:
    """Refuse what is not a file before opening it: opening a FIFO waits for a writer."""
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise InputFileError(f"{path}: is a directory")
    if not stat.S_ISREG(mode):
        raise InputFileError(f"{path}: is not a regular file")


# --- CSV -------------------------------------------------------------------------------------


def _open_csv(
    path: Path, features: Sequence[str], id_column: str | None, chunk_rows: int
) -> Source:
    import pyarrow as pa

    header_end, cuts, records = _scan_csv(path, chunk_rows)
    with path.open("rb") as f:
        header = f.read(header_end)
    _check_columns(path, _csv_header(path, header), features, id_column)
    bounds = [header_end, *cuts]
    absolute = str(path.resolve())  # workers may run in another directory
    pieces = tuple(
        CsvPiece(absolute, header, start, stop) for start, stop in itertools.pairwise(bounds)
    )
    return Source("csv", pieces, records, pa.string())


def _csv_header(path: Path, header: bytes) -> list[str]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if not header:
        raise InputFileError(f"{path}: empty file (expected a header row naming the columns)")
    if not header.strip():
        raise InputFileError(f"{path}: the first line is empty (expected a header row)")
    _check_header_text(path, header)
    try:
        table = pcsv.read_csv(pa.BufferReader(header), parse_options=_csv_parse_options())
    except pa.ArrowException as e:
        raise InputFileError(f"{path}: not a readable CSV header ({e})") from e
    return [str(name) for name in table.column_names]


def _check_header_text(path: Path, header: bytes) -> None:
    """Refuse a header that is not UTF-8 text: binary data, UTF-16, compressed CSV."""
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputFileError(
            f"{path}: the header row is not UTF-8 text (byte 0x{header[e.start]:02x}"
            f" at offset {e.start}); is it a CSV file?"
        ) from e
    control = next((i for i, c in enumerate(text) if _is_control(c)), None)
    if control is not None:
        raise InputFileError(
            f"{path}: the header row holds the control character {text[control]!r}"
            f" (character {control + 1}); is it a CSV file?"
        )


def _is_control(char: str) -> bool:
    # names are echoed in errors: a NUL or an escape sequence must not reach a terminal
    return (char < " " and char not in "\t\r\n") or "\x7f" <= char <= "\x9f"


def _scan_csv(path: Path, chunk_rows: int) -> tuple[int, list[int], int]:
    """Where the header ends, where each piece ends, and how many records follow the header."""
    header_end: int | None = None
    cuts: list[int] = []
    records = quoted = offset = last_end = 0
    with path.open("rb") as f:
        while block := f.read(_SCAN_BLOCK):
            ends, quoted = _record_ends(block, quoted)
            ends += offset + 1  # exclusive: just past the newline
            if header_end is None and len(ends):
                header_end, ends = int(ends[0]), ends[1:]
            first = chunk_rows - records % chunk_rows - 1  # the next cut's index in *ends*
            cuts.extend(int(e) for e in ends[first::chunk_rows])
            records += len(ends)
            last_end = int(ends[-1]) if len(ends) else last_end
            offset += len(block)
    if header_end is None:  # a header without a newline, or an empty file
        return offset, [], 0
    if offset > max(last_end, header_end):
        records += 1  # the last record has no newline
    if offset > (cuts[-1] if cuts else header_end):
        cuts.append(offset)
    return header_end, cuts, records


def _record_ends(block: bytes, quoted: int) -> tuple[np.ndarray, int]:
    """Offsets of the newlines in *block* that end a record (outside quotes)."""
    data = np.frombuffer(block, dtype=np.uint8)
    newlines = data == 0x0A
    quotes = data == 0x22
    if quoted or quotes.any():
        # "" inside a quoted value toggles twice, so parity says whether a byte is quoted
        inside = np.bitwise_xor.accumulate(quotes.view(np.uint8)) ^ np.uint8(quoted)
        newlines &= inside == 0
        quoted = int(inside[-1])
    return np.flatnonzero(newlines), quoted


def _read_csv(piece: CsvPiece, columns: Sequence[str]) -> RawChunk:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    with open(piece.path, "rb") as f:
        f.seek(piece.start)
        data = f.read(piece.stop - piece.start)
    if len(data) < piece.stop - piece.start:  # a record cut short would parse as another value
        raise InputFileError(
            f"{piece.path}: the file is shorter than when the run started"
            f" (bytes {piece.start}-{piece.stop} expected, it ends at {piece.start + len(data)})"
        )
    malformed: list[tuple[int, str]] = []

    def refuse(row: Any) -> str:
        # number counts the header as 1 and skips blank lines, like the table's rows
        where = row.number - 2 if row.number is not None else -1
        reason = f"expected {row.expected_columns} fields, got {row.actual_columns}"
        malformed.append((where, reason))
        return "skip"

    table = pcsv.read_csv(
        pa.BufferReader(piece.header + data),
        read_options=pcsv.ReadOptions(use_threads=False),  # keeps InvalidRow.number
        parse_options=_csv_parse_options(refuse),
        convert_options=pcsv.ConvertOptions(
            include_columns=list(dict.fromkeys(columns)),
            column_types={c: pa.string() for c in columns},  # validated cell by cell later
        ),
    )
    rows_read = table.num_rows + len(malformed)
    positions = None
    if malformed:
        bad = {where for where, _ in malformed}
        positions = np.array([i for i in range(rows_read) if i not in bad], dtype=np.int64)
    return RawChunk(table, rows_read, malformed, positions, empty_is_missing=True)


def _csv_parse_options(handler: Any = None) -> Any:
    import pyarrow.csv as pcsv

    return pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=handler)


# --- Parquet ---------------------------------------------------------------------------------


def _open_parquet(
    path: Path,
    features: Sequence[str],
    id_column: str | None,
    chunk_rows: int,
    *,
    split: bool,
    typed: bool,
) -> Source:
    metadata = _parquet_file(path).metadata
    schema = metadata.schema.to_arrow_schema()
    _check_columns(path, schema.names, features, id_column)
    _check_types(path, schema, features, typed=typed)
    sizes = [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
    starts = np.cumsum([0, *sizes])
    total = int(starts[-1])
    step = chunk_rows if split else max(total, 1)
    absolute = str(path.resolve())
    pieces = []
    for start in range(0, total, step):
        group = int(np.searchsorted(starts, start, side="right")) - 1
        stop = min(start + step, total)
        pieces.append(ParquetPiece(absolute, start, stop, group, int(starts[group])))
    id_type = schema.field(id_column).type if id_column is not None else None
    return Source("parquet", tuple(pieces), total, id_type)


def _parquet_file(path: Path | str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path, buffer_size=_PARQUET_BUFFER)
    except pa.ArrowException as e:
        raise InputFileError(f"{path}: not a readable Parquet file ({e})") from e


def _read_parquet(
    piece: ParquetPiece, columns: Sequence[str], chunk_rows: int
) -> Iterator[RawChunk]:
    import pyarrow as pa

    file = _parquet_file(piece.path)
    groups = list(range(piece.first_group, file.metadata.num_row_groups))
    skip = piece.start - piece.first_group_row  # rows of the first group before the piece
    left = piece.stop - piece.start
    names = list(dict.fromkeys(columns))
    batches = file.iter_batches(
        batch_size=chunk_rows, row_groups=groups, columns=names, use_threads=False
    )
    for batch in batches:
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        batch = batch.slice(skip, left)
        skip, left = 0, left - batch.num_rows
        yield RawChunk(pa.Table.from_batches([batch]), batch.num_rows)
        if left <= 0:
            return
    raise InputFileError(
        f"{piece.path}: the file has fewer rows than when the run started"
        f" (rows {piece.start}-{piece.stop} expected, {left} of them missing)"
    )


def _check_columns(
    path: Path, names: Sequence[str], features: Sequence[str], id_column: str | None
) -> None:
    missing = [c for c in features if c not in names]
    if missing:
        raise InputFileError(
            f"{path}: missing feature column(s) {', '.join(map(repr, missing))}"
            f" (the model needs {', '.join(features)}; the file has {', '.join(names)})"
        )
    if id_column is not None and id_column not in names:
        raise InputFileError(
            f"{path}: no column {id_column!r} for --id-column (the file has {', '.join(names)})"
        )
    needed = [*features, *([id_column] if id_column else [])]
    twice = [c for c in dict.fromkeys(needed) if list(names).count(c) > 1]
    if twice:
        raise InputFileError(f"{path}: column(s) {', '.join(map(repr, twice))} appear twice")


def _check_types(path: Path, schema: Any, features: Sequence[str], *, typed: bool) -> None:
    import pyarrow.types as pat

    for name in features:
        kind = schema.field(name).type
        numeric = pat.is_integer(kind) or pat.is_floating(kind) or pat.is_decimal(kind)
        text = pat.is_string(kind) or pat.is_large_string(kind)
        if typed and (pat.is_boolean(kind) or _is_text_dictionary(kind)):
            continue  # each cell is checked against its feature's type
        if not (numeric or text or pat.is_null(kind)):
            expected = "numbers, text or booleans" if typed else "numbers"
            raise InputFileError(f"{path}: column {name!r} holds {kind}, expected {expected}")


def _is_text_dictionary(kind: Any) -> bool:
    """pandas' ``category`` columns: dictionary-encoded text."""
    import pyarrow.types as pat

    if not pat.is_dictionary(kind):
        return False
    return bool(pat.is_string(kind.value_type) or pat.is_large_string(kind.value_type))
