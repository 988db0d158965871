"""Run a batch: plan the pieces, score them (here or on Dask), write in input order."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from ..artifact import ModelManifest, read_manifest
from ..codecs.records import require_classes
from ..explain import Explainer, NotExplainable
from .cells import takes_typed_cells
from .explanations import explanation_names
from .options import (
    BatchError,
    BatchOptions,
    BatchSummary,
    InputFileError,
    TooManyRejects,
    format_of,
)
from .scoring import (
    ChunkResult,
    ModelRef,
    ScoringJob,
    load_checked_explainer,
    load_checked_runtime,
    output_schema,
    rejects_schema,
    score_chunks,
)
from .sources import Source, open_source
from .writers import TableWriter


@dataclass
class _Counts:
    read: int = 0
    scored: int = 0
    rejected: int = 0
    first_reject: str = ""


def run_batch(options: BatchOptions, *, progress: bool = False) -> BatchSummary:
    """Score *options.input* with *options.model_dir* into *options.output*.

    :param progress: show a progress bar on standard error.
    :raises ArtifactError: the model cannot be loaded.
    :raises InputFileError: the input cannot be read as the model's input.
    :raises TooManyRejects: over ``max_rejects`` rows failed validation; the
        rejects file is written, the output is not.
    :raises NotExplainable: ``explain`` for a model with no exact explanation,
        found before any row is scored.
    :raises FlaskServeError: any other reason the run stopped (a
        :class:`BatchError`, or the runtime's own errors); nothing is left
        under the output's name.
    """
    _require("pyarrow", "tqdm", *(["distributed"] if options.engine == "dask" else []))
    started = time.perf_counter()
    output_format = format_of(options.output, options.output_format, "--output-format")
    source, job = _prepare(options)
    explainer = _explainer(job)  # a model that cannot be explained stops the run here
    results = _results(options, source, job, explainer)
    try:
        with contextlib.closing(results), _progress_bar(source.rows, progress) as bar:
            counts = _write(results, options, output_format, job, bar)
    except OSError as e:  # a full disk, a vanished input: nothing was left under the output's name
        where = f"{e.filename}: " if e.filename else ""
        raise BatchError(f"stopped: {where}{e.strerror or e}") from e
    return BatchSummary(
        counts.read,
        counts.scored,
        counts.rejected,
        time.perf_counter() - started,
        options.output,
        options.rejects_path,
        explainer.space if explainer is not None else None,
    )


def _prepare(options: BatchOptions) -> tuple[Source, ScoringJob]:
    input_format = format_of(options.input, options.input_format, "--input-format")
    _check_paths(options)
    manifest = read_manifest(options.model_dir)
    _check_outputs(options, manifest)
    split = options.engine == "dask"
    source = open_source(
        options.input,
        input_format,
        manifest.feature_names,
        options.id_column,
        options.chunk_rows,
        split=split,
        typed=takes_typed_cells(manifest),
    )
    model = ModelRef(str(options.model_dir.resolve()), manifest.sha256, options.runtime)
    schema = output_schema(
        manifest,
        options.id_column,
        source.id_type,
        proba=options.proba,
        labels=options.labels,
        explain=options.explain,
    )
    job = ScoringJob(
        model,
        tuple(manifest.feature_names),
        options.id_column,
        options.proba,
        options.labels,
        options.chunk_rows,
        schema,
        rejects_schema(options.id_column, source.id_type),
        options.explain,
    )
    return source, job


def _explainer(job: ScoringJob) -> Explainer | None:
    """The explainer the local engine uses; the Dask workers make their own.

    Made here for either engine, before the output is opened: it is the one sure
    way to know that the model can be explained.
    """
    if not job.explain:
        return None
    try:
        return load_checked_explainer(job.model)
    except NotExplainable as e:
        raise NotExplainable(f"--explain: {e.message}") from e


def _check_paths(options: BatchOptions) -> None:
    if not options.input.is_file():
        problem = "does not exist"
        if options.input.is_dir():
            problem = "is a directory"
        elif options.input.exists():  # a FIFO, socket or device: the input is read twice
            problem = "is not a regular file"
        raise InputFileError(f"{options.input}: {problem}")
    paths = [options.input.resolve(), options.output.resolve(), options.rejects_path.resolve()]
    if len(set(paths)) != 3:
        raise BatchError(
            f"the input ({options.input}), the output ({options.output}) and the rejects"
            f" file ({options.rejects_path}) must be three different files"
        )


def _check_outputs(options: BatchOptions, manifest: ModelManifest) -> None:
    if options.labels:
        require_classes(manifest)
    if options.proba and manifest.task != "classification":
        raise BatchError(
            f"model {manifest.name!r} is a regression model: it has no class probabilities"
        )
    names = ["prediction", "label", *(f"proba_{c}" for c in manifest.class_names)]
    names += explanation_names(manifest) if options.explain else []
    if options.id_column in names:
        raise BatchError(
            f"--id-column {options.id_column!r}: the output has its own column so named"
        )


def _results(
    options: BatchOptions, source: Source, job: ScoringJob, explainer: Explainer | None
) -> Generator[ChunkResult, None, None]:
    if options.engine == "dask":
        from .cluster import score_on_dask

        return score_on_dask(source, job, scheduler=options.scheduler, workers=options.workers)
    return _score_locally(source, job, explainer)


def _score_locally(
    source: Source, job: ScoringJob, explainer: Explainer | None
) -> Generator[ChunkResult, None, None]:
    runtime = load_checked_runtime(job.model)
    for piece in source.pieces:
        yield from score_chunks(piece, job, runtime, explainer)


def _write(
    results: Iterator[ChunkResult],
    options: BatchOptions,
    output_format: str,
    job: ScoringJob,
    bar: Any,
) -> _Counts:
    counts = _Counts()
    with (
        TableWriter(options.output, output_format, job.output_schema) as output,
        TableWriter(options.rejects_path, "csv", job.rejects_schema) as rejects,
    ):
        for result in results:
            output.write(result.output)
            _write_rejects(rejects, result.rejects, counts)
            counts.read += result.rows_read
            counts.scored += result.output.num_rows
            bar.update(result.rows_read)
            if options.max_rejects is not None and counts.rejected > options.max_rejects:
                rejects.commit()  # they say why the run stopped
                raise TooManyRejects(_too_many(options, counts))
        output.commit()
        rejects.commit()
    bar.total = counts.read  # the CSV scan counts blank lines too
    bar.refresh()
    return counts


def _write_rejects(writer: TableWriter, rejects: Any, counts: _Counts) -> None:
    import pyarrow.compute as pc

    if not rejects.num_rows:
        return
    # the chunk's 0-based positions become the file's 1-based row numbers
    rows = pc.add(rejects.column("row"), counts.read + 1)
    rejects = rejects.set_column(0, "row", rows)
    if not counts.first_reject:
        counts.first_reject = f"row {rows[0]}: {rejects.column('reason')[0]}"
    writer.write(rejects)
    counts.rejected += rejects.num_rows


def _too_many(options: BatchOptions, counts: _Counts) -> str:
    return (
        f"stopped after {counts.read:,} rows: {counts.rejected:,} rejected, over --max-rejects"
        f" {options.max_rejects} (first: {counts.first_reject}); {options.output} was not"
        f" written; the rejects are in {options.rejects_path}"
    )


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="rows",
        unit_scale=True,
        dynamic_ncols=True,
        mininterval=0.5,
        disable=not enabled,
        file=sys.stderr,
    )


def _require(*modules: str) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise BatchError(
            f"flaskserve batch needs {', '.join(missing)}: pip install 'flaskserve[batch]'"
        )
