"""Input files cut into pieces: record boundaries, row ranges, column checks."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from flaskserve.batch import InputFileError, sources

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
