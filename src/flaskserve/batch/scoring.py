"""Score pieces of an input file with the server's runtime code.

Everything here runs where the rows are scored: in the ``flaskserve batch``
process (local engine) or in a Dask worker, which imports this module by name.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..admission import admit
from ..artifact import ModelManifest, read_manifest
from ..codecs.records import class_names_of
from ..errors import ArtifactError
from ..explain import Explainer, build_explainer
from ..runtime.base import Runtime
from ..schema import Table
from .cells import decode_features, decode_typed, takes_typed_cells
from .explanations import explanation_columns, explanation_fields
from .sources import Piece, RawChunk, read_piece

_CACHE_SIZE = 4  # models a worker keeps loaded, for clusters shared by several runs
_runtimes: OrderedDict[ModelRef, Runtime] = OrderedDict()
_explainers: OrderedDict[ModelRef, Explainer] = OrderedDict()
_cache_lock = threading.Lock()
_Loaded = TypeVar("_Loaded")


@dataclass(frozen=True)
class ModelRef:
    """Which artifact to load: its absolute path and the manifest's SHA-256 the client read."""

    path: str
    sha256: str
    runtime: str = "auto"


@dataclass(frozen=True)
class ScoringJob:
    """What every piece of one run is scored with (picklable, sent to each task)."""

    model: ModelRef
    features: tuple[str, ...]
    id_column: str | None
    proba: bool
    labels: bool
    chunk_rows: int
    output_schema: Any  # pyarrow.Schema
    rejects_schema: Any
    explain: bool = False

    @property
    def columns(self) -> list[str]:
        names = [*self.features, self.id_column] if self.id_column else list(self.features)
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class ChunkResult:
    """One chunk scored: its valid rows' outputs and its rejects.

    ``rejects["row"]`` is the 0-based position in the chunk; the writer, which
    knows how many rows came before, makes it the file's 1-based row number.
    """

    rows_read: int
    output: Any  # pyarrow.Table, rows in input order
    rejects: Any


def output_schema(
    manifest: ModelManifest,
    id_column: str | None,
    id_type: Any,
    *,
    proba: bool,
    labels: bool,
    explain: bool = False,
) -> Any:
    """The output's columns: the id, ``prediction``, ``label``, ``proba_<class>``...,
    then ``base_value``, ``contrib_<column>``..., ``explained_output``."""
    import pyarrow as pa

    fields = [pa.field(id_column, id_type)] if id_column else []
    fields.append(pa.field("prediction", _prediction_type(manifest)))
    if labels:
        fields.append(pa.field("label", pa.string()))
    if proba:
        fields += [pa.field(f"proba_{name}", pa.float64()) for name in manifest.class_names]
    if explain:
        fields += explanation_fields(manifest)
    return pa.schema(fields)


def rejects_schema(id_column: str | None, id_type: Any) -> Any:
    """The rejects file's columns: ``row`` (1-based), the id, ``reason``."""
    import pyarrow as pa

    fields = [pa.field("row", pa.int64())]
    if id_column:
        fields.append(pa.field(id_column, id_type))
    return pa.schema([*fields, pa.field("reason", pa.string())])


def score_piece(piece: Piece, job: ScoringJob) -> list[ChunkResult]:
    """Read and score one piece with this process's cached runtime and explainer (a Dask task)."""
    explainer = cached_explainer(job.model) if job.explain else None
    return list(score_chunks(piece, job, cached_runtime(job.model), explainer))


def score_chunks(
    piece: Piece, job: ScoringJob, runtime: Runtime, explainer: Explainer | None = None
) -> Iterator[ChunkResult]:
    """Read *piece* chunk by chunk, and score each."""
    for raw in read_piece(piece, job.columns, job.chunk_rows):
        yield score_chunk(raw, job, runtime, explainer)


def score_chunk(
    raw: RawChunk, job: ScoringJob, runtime: Runtime, explainer: Explainer | None = None
) -> ChunkResult:
    """Validate one chunk, predict (and with *explainer*, explain) its valid rows, and
    describe the others."""
    manifest = runtime.manifest
    rows: np.ndarray | Table
    if takes_typed_cells(manifest):
        rows, valid, bad = decode_typed(raw.table, manifest, empty_is_missing=raw.empty_is_missing)
    else:
        rows, valid, bad = decode_features(raw.table, job.features)
    output = _outputs(raw.table, valid, rows, job, runtime, explainer)
    return ChunkResult(raw.rows_read, output, _rejects(raw, bad, job))


def load_checked_runtime(model: ModelRef) -> Runtime:
    """Admit *model* as ``serve`` would, and check it is the one the client read.

    :raises ArtifactError: refused by :func:`~flaskserve.admission.admit`, or its
        manifest changed since the client read it.
    """
    runtime = admit(model.path, model.runtime)
    if runtime.manifest.sha256 != model.sha256:
        raise ArtifactError(
            f"{model.path}: the model changed while the batch ran (manifest SHA-256"
            f" {runtime.manifest.sha256[:12]}..., expected {model.sha256[:12]}...)"
        )
    return runtime


def load_checked_explainer(model: ModelRef) -> Explainer:
    """The explainer of *model*, made from the same checked artifact as its runtime.

    :raises NotExplainable: the model has no exact explanation; the message says why.
    :raises ArtifactError: it does not load, or its manifest changed since the client read it.
    """
    directory = Path(model.path)
    explainer = build_explainer(directory, read_manifest(directory))
    found = read_manifest(directory).sha256  # after loading: what was loaded is still the model
    if found != model.sha256:
        raise ArtifactError(
            f"{model.path}: the model changed while the batch ran (manifest SHA-256"
            f" {found[:12]}..., expected {model.sha256[:12]}...)"
        )
    return explainer


def cached_runtime(model: ModelRef) -> Runtime:
    """This process's runtime for *model*, loaded on first use."""
    return _cached(_runtimes, model, load_checked_runtime)


def cached_explainer(model: ModelRef) -> Explainer:
    """This process's explainer for *model*, made on first use.

    :raises NotExplainable: the model has no exact explanation (tried again on the next use).
    """
    return _cached(_explainers, model, load_checked_explainer)


def _cached(
    cache: OrderedDict[ModelRef, _Loaded], model: ModelRef, load: Callable[[ModelRef], _Loaded]
) -> _Loaded:
    with _cache_lock:
        loaded = cache.get(model)
        if loaded is None:
            loaded = load(model)
            cache[model] = loaded
            while len(cache) > _CACHE_SIZE:
                cache.popitem(last=False)
        cache.move_to_end(model)
        return loaded


def _outputs(
    table: Any,
    valid: np.ndarray,
    rows: np.ndarray | Table,
    job: ScoringJob,
    runtime: Runtime,
    explainer: Explainer | None,
) -> Any:
    import pyarrow as pa

    schema = job.output_schema
    if not len(rows):
        return schema.empty_table()
    columns = [table.column(job.id_column).filter(pa.array(valid))] if job.id_column else []
    prediction = runtime.predict(rows, proba=job.proba)
    columns.append(pa.array(prediction.predictions).cast(schema.field("prediction").type))
    if job.labels:
        names = class_names_of(prediction.predictions.tolist(), runtime.manifest)
        columns.append(pa.array(names, pa.string()))
    if job.proba and prediction.probabilities is not None:
        columns += [pa.array(p) for p in prediction.probabilities.T]
    if explainer is not None:
        columns += explanation_columns(explainer, rows, prediction.predictions)
    return pa.Table.from_arrays(columns, schema=schema)


def _rejects(raw: RawChunk, bad: Sequence[tuple[int, str]], job: ScoringJob) -> Any:
    import pyarrow as pa

    schema = job.rejects_schema
    if not bad and not raw.malformed:
        return schema.empty_table()
    rows = [i for i, _ in bad]
    positions = raw.positions[rows] if raw.positions is not None else np.array(rows, np.int64)
    positions = np.concatenate([positions, [where for where, _ in raw.malformed]])
    reasons = [reason for _, reason in bad] + [reason for _, reason in raw.malformed]
    columns = [pa.array(positions, pa.int64())]
    if job.id_column:
        ids = raw.table.column(job.id_column).take(pa.array(rows, pa.int64()))
        columns.append(pa.concat_arrays([*ids.chunks, pa.nulls(len(raw.malformed), ids.type)]))
    columns.append(pa.array(reasons, pa.string()))
    order = pa.array(np.argsort(positions, kind="stable"))
    return pa.Table.from_arrays(columns, schema=schema).take(order)


def _prediction_type(manifest: ModelManifest) -> Any:
    import pyarrow as pa

    labels = manifest.labels
    if manifest.task != "classification" or not labels:
        return pa.float64()
    if all(isinstance(v, bool) for v in labels):
        return pa.bool_()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        return pa.int64()
    if all(isinstance(v, str) for v in labels):
        return pa.string()
    return pa.float64()
