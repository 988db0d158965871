"""Input files cut into pieces: record boundaries, row ranges, column checks."""

from __future__ import annotations

import gzip
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from assertions import assert_refused
from flaskserve.batch import InputFileError, sources
from flaskserve.cli import main

FEATURES = ["a", "b"]
# quoted newlines, "" escapes, CRLF, a blank line, and no newline at the end
CSV = (
    'note,a,b\r\n"x\r\ny",1,2\n"say ""hi""\n",3,4\n\nplain,5,6\n"",7,8\n'
    '"a,b",9,10\n"\n\n",11,12\nlast,13,14'
)
NOTES = ["x\r\ny", 'say "hi"\n', "plain", "", "a,b", "\n\n", "last"]


@pytest.fixture()
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    path.write_bytes(CSV.encode())
    return path


def _read_all(source: sources.Source, columns: list[str], chunk_rows: int) -> pa.Table:
    chunks = [c for p in source.pieces for c in sources.read_piece(p, columns, chunk_rows)]
    assert all(c.table.num_rows <= chunk_rows for c in chunks)
    return pa.concat_tables([c.table for c in chunks])


@pytest.mark.parametrize("block", [1, 2, 5, 1 << 20], ids=lambda b: f"block{b}")
@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 100])
def test_csv_pieces_end_on_record_boundaries(
    csv_file: Path, monkeypatch: pytest.MonkeyPatch, block: int, chunk_rows: int
) -> None:
    monkeypatch.setattr(sources, "_SCAN_BLOCK", block)  # quotes and CRLF across reads

    source = sources.open_source(csv_file, "csv", FEATURES, "note", chunk_rows, split=True)

    assert source.rows == len(NOTES) + 1  # the blank line counts in the scan, not in the table
    table = _read_all(source, ["note", *FEATURES], chunk_rows)
    assert table.column("note").to_pylist() == NOTES
    assert table.column("a").to_pylist() == [str(n) for n in range(1, 14, 2)]
    whole = pcsv.read_csv(csv_file, parse_options=pcsv.ParseOptions(newlines_in_values=True))
    assert table.column("note").to_pylist() == whole.column("note").to_pylist()


def test_csv_ragged_records_are_counted_not_read(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("a,b\n1,2\n3\n5,6\n7,8,9\n")
    (piece,) = sources.open_source(path, "csv", FEATURES, None, 10, split=True).pieces

    (chunk,) = sources.read_piece(piece, FEATURES, 10)

    assert chunk.rows_read == 4
    assert chunk.table.column("a").to_pylist() == ["1", "5"]
    assert chunk.malformed == [(1, "expected 2 fields, got 1"), (3, "expected 2 fields, got 3")]
    assert chunk.positions is not None and chunk.positions.tolist() == [0, 2]


@pytest.mark.parametrize("split", [True, False])
def test_parquet_row_ranges_cross_row_groups(tmp_path: Path, split: bool) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"a": range(50), "b": [0.5] * 50}), path, row_group_size=7)

    source = sources.open_source(path, "parquet", FEATURES, "a", 10, split=split)

    assert source.rows == 50
    assert len(source.pieces) == (5 if split else 1)
    assert source.id_type == pa.int64()
    assert _read_all(source, FEATURES, 10).column("a").to_pylist() == list(range(50))


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"a": [True], "b": [1.0]}, "column 'a' holds bool, expected numbers"),
        ({"a": [1.0]}, "missing feature column(s) 'b'"),
    ],
    ids=["bool-feature", "missing-feature"],
)
def test_parquet_columns_are_checked(
    tmp_path: Path, columns: dict[str, list[object]], message: str
) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table(columns), path)

    with pytest.raises(InputFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sources.open_source(path, "parquet", FEATURES, None, 10, split=False)


def test_not_a_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    path.write_text("a,b\n1,2\n")

    with pytest.raises(InputFileError, match="not a readable Parquet file"):
        sources.open_source(path, "parquet", FEATURES, None, 10, split=False)


# --- what cannot be read, and why ------------------------------------------------------------


def _refusal(call: Callable[[], object], seconds: float = 10.0) -> InputFileError:
    """The InputFileError *call* raises, on a thread: still blocked after *seconds* fails."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as e:  # handed to the test thread
            raised.append(e)

    thread = threading.Thread(target=run, daemon=True)  # a blocked open() must not hang pytest
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    assert raised, "nothing was raised"
    assert isinstance(raised[0], InputFileError), repr(raised[0])
    return raised[0]


def _open(path: Path, fmt: str = "csv", id_column: str | None = None) -> sources.Source:
    return sources.open_source(path, fmt, FEATURES, id_column, 10, split=True)


def _read(source: sources.Source) -> list[sources.RawChunk]:
    return [c for p in source.pieces for c in sources.read_piece(p, FEATURES, 10)]


def _says(error: InputFileError, path: Path, *fragments: str) -> None:
    """The message starts with the file's name, says each fragment, and prints safely."""
    message = str(error)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, message
    assert message.isprintable(), message  # no NUL or escape sequence reaches a terminal


def _write(table: pa.Table, path: Path) -> None:
    if path.suffix == ".csv":
        pcsv.write_csv(table, path)
    else:
        pq.write_table(table, path)


def _table_with_names(names: list[str]) -> pa.Table:
    arrays = [pa.array([float(i), float(i) + 0.5]) for i in range(len(names))]
    return pa.Table.from_arrays(arrays, names=names)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(
    ("names", "id_column", "twice"),
    [(["a", "b", "a"], None, "'a'"), (["n", "a", "b", "n"], "n", "'n'")],
    ids=["feature", "id-column"],
)
def test_a_column_the_run_reads_twice_is_refused(
    tmp_path: Path, fmt: str, names: list[str], id_column: str | None, twice: str
) -> None:
    path = tmp_path / f"in.{fmt}"
    table = _table_with_names(names)
    _write(table, path)

    error = _refusal(lambda: _open(path, fmt, id_column))

    _says(error, path, f"column(s) {twice} appear twice")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_column_the_run_does_not_read_may_appear_twice(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"in.{fmt}"
    table = _table_with_names(["n", "a", "b", "n"])
    _write(table, path)

    (chunk,) = _read(_open(path, fmt))

    assert [float(v) for v in chunk.table.column("a").to_pylist()] == [1.0, 1.5]
    assert [float(v) for v in chunk.table.column("b").to_pylist()] == [2.0, 2.5]


@pytest.mark.parametrize("first", [b"\n", b"\r\n", b" \t \n"], ids=["lf", "crlf", "blanks"])
def test_an_empty_first_line_is_refused(tmp_path: Path, first: bytes) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(first + b"a,b\n1,2\n")

    _says(_refusal(lambda: _open(path)), path, "the first line is empty (expected a header row)")


UNREADABLE_HEADERS = {
    "latin-1": ("café,a,b\n1,2,3\n".encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 3)"),
    "utf-16": ("a,b\n1,2\n".encode("utf-16"), "not UTF-8 text (byte 0xff at offset 0)"),
    "gzip": (gzip.compress(b"a,b\n1,2\n" * 50, mtime=0), "not UTF-8 text (byte 0x8b at offset 1)"),
    "sqlite": (b"SQLite format 3\x00\x10\x00\n" + bytes(100), "control character '\\x00'"),
    "escape": (b"\x1b[2J\x1b[31ma,b\n1,2\n", "control character '\\x1b' (character 1)"),
}


@pytest.mark.parametrize(
    ("data", "says"), UNREADABLE_HEADERS.values(), ids=list(UNREADABLE_HEADERS)
)
def test_a_header_that_is_not_text_is_refused(tmp_path: Path, data: bytes, says: str) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(data)

    _says(_refusal(lambda: _open(path)), path, says, "is it a CSV file?")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.mkdir()

    _says(_refusal(lambda: _open(path)), path, "is a directory")


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    os.mkfifo(path)

    _says(_refusal(lambda: _open(path)), path, "is not a regular file")


def test_the_command_refuses_a_fifo(model_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    os.mkfifo(path)

    result = CliRunner().invoke(main, ["batch", str(model_dir), str(path), "-o", "out.csv"])

    assert_refused(result, "INPUT", f"{path}: is not a regular file")


def _replace_with_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _replace_with_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


CHANGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "deleted": (Path.unlink, "cannot read (No such file or directory)"),
    "directory": (_replace_with_directory, "is a directory"),
    "fifo": (_replace_with_fifo, "is not a regular file"),
}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(("change", "says"), CHANGES.values(), ids=list(CHANGES))
def test_an_input_gone_since_it_was_opened_is_named(
    tmp_path: Path, fmt: str, change: Callable[[Path], None], says: str
) -> None:
    path = tmp_path / f"in.{fmt}"
    table = pa.table({"a": range(50), "b": [0.5] * 50})
    _write(table, path)
    source = _open(path, fmt)
    change(path)

    _says(_refusal(lambda: _read(source)), path, says)


def test_a_csv_file_cut_short_since_it_was_opened_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i}.25\n" for i in range(50)))
    source = _open(path)
    os.truncate(path, path.stat().st_size - 3)  # the last record now ends "49,49."

    error = _refusal(lambda: _read(source))

    _says(error, path, "the file is shorter than when the run started")


def test_a_parquet_file_with_fewer_rows_since_it_was_opened_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"a": range(50), "b": [0.5] * 50}), path, row_group_size=7)
    source = _open(path, "parquet")
    pq.write_table(pa.table({"a": range(45), "b": [0.5] * 45}), path, row_group_size=7)

    error = _refusal(lambda: _read(source))

    _says(error, path, "the file has fewer rows than when the run started", "5 of them missing")


@pytest.mark.parametrize("keep", [0, 3, 8, 0.5, -1], ids=lambda k: f"keep{k}")
def test_a_truncated_parquet_file_is_refused(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"a": range(50), "b": [0.5] * 50}), path, row_group_size=7)
    size = path.stat().st_size
    os.truncate(path, int(size * keep) if isinstance(keep, float) else keep % size)

    _says(_refusal(lambda: _open(path, "parquet")), path, "not a readable Parquet file")


def test_a_parquet_file_with_corrupt_pages_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"a": range(50), "b": [0.5] * 50}), path, row_group_size=7)
    data = bytearray(path.read_bytes())
    footer = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    data[4:footer] = b"\xab" * (footer - 4)  # every page; the footer still says where they were
    path.write_bytes(bytes(data))
    source = _open(path, "parquet")

    _says(_refusal(lambda: _read(source)), path)
