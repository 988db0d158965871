"""What a batch run is asked to do, what it reports, and how it fails."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import FlaskServeError

FORMATS = ("csv", "parquet")
ENGINES = ("local", "dask")
#: 65,536 rows x 4 features x 8 bytes = 2 MiB of float64 per chunk for iris.
DEFAULT_CHUNK_ROWS = 65_536


class BatchError(FlaskServeError):
    """A batch run cannot start or had to stop; nothing is left under the output's name."""


class InputFileError(BatchError):
    """The input file cannot be read as the model's input (format, columns, syntax)."""


class TooManyRejects(BatchError):
    """More rows failed validation than ``--max-rejects`` allows."""


@dataclass(frozen=True)
class BatchOptions:
    """One ``flaskserve batch`` run.

    :param model_dir: the artifact to score with.
    :param input: a CSV (header row) or Parquet file.
    :param output: where the scored rows go; written under a temporary name, then renamed.
    :param input_format: ``csv`` or ``parquet``; default from *input*'s suffix.
    :param output_format: ``csv`` or ``parquet``; default from *output*'s suffix.
    :param id_column: an input column copied to the output and the rejects file.
    :param proba: add one ``proba_<class>`` column per class.
    :param labels: add a ``label`` column with the class names.
    :param explain: add ``base_value``, one ``contrib_<column>`` per input column and
        ``explained_output``: each row's exact explanation toward its predicted class (a
        regressor's value), as ``/explain`` gives by default.
    :param rejects: the rejects file (CSV); default *output* + ``.rejects.csv``.
    :param max_rejects: stop with an error when more rows than this are rejected.
    :param chunk_rows: rows read, validated and scored at a time.
    :param runtime: ``auto``, ``sklearn`` or ``compiled``, as for ``flaskserve serve``.
    :param engine: ``local`` (this process) or ``dask``.
    :param scheduler: a Dask scheduler address; ``None``: a local cluster.
    :param workers: worker processes of the local Dask cluster (one thread each).
    """

    model_dir: Path
    input: Path
    output: Path
    input_format: str | None = None
    output_format: str | None = None
    id_column: str | None = None
    proba: bool = False
    labels: bool = False
    explain: bool = False
    rejects: Path | None = None
    max_rejects: int | None = None
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    runtime: str = "auto"
    engine: str = "local"
    scheduler: str | None = None
    workers: int | None = None

    @property
    def rejects_path(self) -> Path:
        return self.rejects or self.output.with_name(self.output.name + ".rejects.csv")


@dataclass(frozen=True)
class BatchSummary:
    """What a finished run did: ``rows_read == rows_scored + rows_rejected``.

    :param space: with ``--explain``, what the explanation columns add up to:
        ``probability``, ``log_odds`` or ``raw``.
    """

    rows_read: int
    rows_scored: int
    rows_rejected: int
    seconds: float
    output: Path
    rejects: Path
    space: str | None = None

    def describe(self) -> str:
        """One line for the terminal."""
        rate = self.rows_read / self.seconds if self.seconds > 0 else 0.0
        explained = f"; contributions in {self.space} space" if self.space else ""
        return (
            f"read {self.rows_read:,} rows: {self.rows_scored:,} scored,"
            f" {self.rows_rejected:,} rejected ({self.rejects});"
            f" wrote {self.output} in {self.seconds:.1f} s ({rate:,.0f} rows/s){explained}"
        )


def format_of(path: Path, given: str | None, option: str) -> str:
    """The file format: *given*, or from *path*'s suffix.

    :raises BatchError: no format given and the suffix is not a known one.
    """
    if given is not None:
        return given
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise BatchError(
        f"{path}: cannot tell the format from the suffix {suffix or '(none)'!r}"
        f" (expected .csv or .parquet; or pass {option} csv|parquet)"
    )
