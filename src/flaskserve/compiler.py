"""Compile a scikit-learn estimator to ONNX and prove it answers like scikit-learn.

ONNX Runtime evaluates the tutorial's 300-tree forest in about 15 µs per row,
against 20-45 ms for scikit-learn's ``predict``. It was chosen by measurement
(docs/performance.md has the figures) and because an ONNX file is data, not code: like
skops, loading it runs nothing. The compiled model is used only if it passes the
parity gate: identical labels and probabilities within :data:`~flaskserve.parity.TOLERANCE` on the
training rows, the held-out rows, random rows spread over ±10% of each
feature's training range, rows on and one float32 step either side of every
split threshold of a tree model, with the exact probability ties among them
counted. The gate's figures go into the manifest. A typed (``frame``) pipeline is
compiled with one input per column and checked on typed rows
(:mod:`flaskserve.compiler_typed` says which).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import ModelManifest, load_model, read_verified, write_artifact
from .errors import ArtifactError
from .parity import score, score_parallel
from .schema import Table, rows_input

logger = logging.getLogger(__name__)

COMPILED_FILE = "model.onnx"
RANDOM_ROWS = 100_000
_SEED = 1234


@dataclass(frozen=True)
class Compiled:
    """The ONNX bytes (``None`` if conversion failed) and the manifest's ``compiled`` record.

    :ivar gate: the parity gate's rows and the estimator's answers on them, where a
        matrix model passed (the native batches' gate runs on them too).
    :ivar trees: what the native batches' gate reads the trees from, where that is not
        the estimator (a booster artifact's booster).
    """

    payload: bytes | None
    record: dict[str, Any]
    gate: tuple[np.ndarray, dict[str, np.ndarray]] | None = None
    trees: Any = None


def compile_estimator(
    estimator: Any,
    task: str,
    width: int,
    rows: np.ndarray | None,
    holdout: np.ndarray | None = None,
) -> Compiled:
    """Convert *estimator* to ONNX and run the parity gate; never raises for an unsupported model.

    :param rows: training rows (their ranges bound the random rows); may be ``None``.
    :param holdout: held-out rows, checked too.
    """
    missing = _unavailable()
    if missing is not None:
        return missing
    gate_rows = parity_rows(estimator, width, rows, holdout)
    expected = _reference(estimator, task, gate_rows)
    failures = []
    for input_dtype in ("float64", "float32"):
        cast = "float32" if input_dtype == "float32" or _casts_to_float32(estimator) else "none"
        try:
            payload = _convert(estimator, task, width, input_dtype)
            parity = _compare(payload, task, gate_rows, expected, input_dtype, cast)
        except Exception as e:  # skl2onnx and ONNX Runtime raise many kinds for what they cannot do
            failures.append(f"{input_dtype}: {type(e).__name__}: {str(e)[:200]}")
            continue
        record = _record(estimator, task, payload, input_dtype, cast, parity)
        if parity["passed"] or input_dtype == "float32":
            return Compiled(payload, record, (gate_rows, expected) if parity["passed"] else None)
        failures.append(f"{input_dtype}: parity failed")
    return Compiled(None, {"status": "unsupported", "reason": "; ".join(failures)})


def _unavailable() -> Compiled | None:
    """The record of a compiler that is not installed, or ``None``."""
    try:
        import onnxruntime  # noqa: F401
        import skl2onnx  # noqa: F401
    except ImportError as e:
        return Compiled(None, {"status": "unavailable", "reason": f"{e.name} is not installed"})
    return None


def _record(
    estimator: Any, task: str, payload: bytes, input_dtype: str, cast: str, parity: dict[str, Any]
) -> dict[str, Any]:
    import onnxruntime
    import skl2onnx

    return {
        "status": "passed" if parity["passed"] else "failed",
        "format": "onnx",
        "file": COMPILED_FILE,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "input_dtype": input_dtype,
        "input_cast": cast,
        "probabilities": task == "classification" and hasattr(estimator, "predict_proba"),
        "parity": parity,
        "versions": {"onnxruntime": onnxruntime.__version__, "skl2onnx": skl2onnx.__version__},
    }


def compile_typed(
    estimator: Any, manifest: ModelManifest, rows: Table | None, holdout: Table | None
) -> Compiled:
    """:func:`compile_estimator` for a typed (``frame``) model: one ONNX input per feature.

    Numbers are tried as float32, then float64: skl2onnx's one-hot encoder gives
    float32, so a float64 graph of a pipeline with text seldom loads, and converting a
    300-tree forest takes seconds. The first graph that passes the gate is kept, else
    the last one that ran, as failed.

    :param rows: training rows as a :class:`Table`; may be ``None``.
    :param holdout: held-out rows, checked too.
    """
    from . import compiler_typed as typed

    missing = _unavailable()
    if missing is not None:
        return missing
    parts = typed.parity_parts(manifest.features, rows, holdout)
    expected: dict[str, np.ndarray] | None = None
    failures, last = [], None
    for dtype in ("float32", "float64"):
        try:
            payload, session = _typed_session(estimator, manifest, dtype)
        except Exception as e:  # skl2onnx and ONNX Runtime raise many kinds for what they cannot do
            failures.append(f"{dtype}: {type(e).__name__}: {str(e)[:200]}")
            continue
        if expected is None:  # only once a graph loads: scikit-learn's answers take seconds
            try:
                expected = typed.reference(estimator, manifest.task, parts)
            except Exception as e:  # the gate's rows must be answerable to be a gate
                reason = f"scikit-learn failed on the gate's rows: {type(e).__name__}: {e}"
                return Compiled(None, {"status": "unsupported", "reason": reason[:300]})
        try:
            got, parallel = typed.answers(session, parts)
            parity = score(manifest.task, got, expected)
            parity["parallel"] = score_parallel(manifest.task, parallel, expected)
        except Exception as e:  # ONNX Runtime refuses some inputs only when it runs
            failures.append(f"{dtype}: {type(e).__name__}: {str(e)[:200]}")
            continue
        parity["parts"] = _part_sizes(parts)
        record = _record(estimator, manifest.task, payload, dtype, "none", parity)
        last = Compiled(payload, {**record, "missing_text": typed.MISSING_TEXT})
        if parity["passed"]:
            return last
        failures.append(f"{dtype}: parity failed")
    return last or Compiled(None, {"status": "unsupported", "reason": _typed_reason(failures)})


def compile_booster(
    head: Any,
    manifest: ModelManifest,
    files: dict[str, bytes],
    rows: np.ndarray | Table | None,
    holdout: np.ndarray | Table | None,
) -> Compiled:
    """:func:`compile_estimator` for an XGBoost or LightGBM artifact: the booster in *files*
    converted by onnxmltools, the library's own answers taken as truth
    (:mod:`flaskserve.compiler_boosters` says which rows); never raises for a model it
    cannot compile.

    :param head: the Pipeline steps before the booster, or ``"passthrough"``.
    """
    from . import compiler_boosters as boosters

    reason = boosters.not_compiled(head, manifest)
    if reason is not None:
        return Compiled(None, {"status": "unsupported", "reason": reason})
    native, width = boosters.read_booster(manifest, files), len(manifest.features)
    matrix = rows if isinstance(rows, np.ndarray) else None
    held = holdout if isinstance(holdout, np.ndarray) else None
    base = parity_rows(None, width, matrix, held)
    probes = threshold_rows(None, base, boosters.booster_splits(native))
    gate, parts = boosters.gate_rows(base, matrix, held, probes)
    expected = boosters.reference(native, manifest.task, gate)
    trees = boosters.served_trees(native)  # converted, and kept for the native gate
    try:
        payload = boosters.convert_booster(native, trees, width)
        parity = _compare(payload, manifest.task, gate, expected, "float32", "none")
    except Exception as e:  # onnxmltools and ONNX Runtime raise many kinds for what they cannot do
        return Compiled(None, {"status": "unsupported", "reason": boosters.failure(native, e)})
    record = _record(None, manifest.task, payload, "float32", "none", {**parity, "parts": parts})
    record = {**record, **boosters.record_fields(native, manifest.task)}
    gated = (gate, expected) if parity["passed"] else None
    return Compiled(payload, record, gated, trees)


def _typed_reason(failures: list[str]) -> str:
    """Why no graph ran: each float type's error, once if they are the same."""
    causes = {f.split(": ", 1)[-1] for f in failures}
    said = causes.pop() if len(causes) == 1 else "; ".join(failures)
    return f"skl2onnx cannot convert this pipeline with one input per column ({said})"


def _typed_session(estimator: Any, manifest: ModelManifest, dtype: str) -> tuple[bytes, Any]:
    from .compiler_typed import MISSING_TEXT, convert_typed
    from .runtime.compiled import OnnxSession

    payload = convert_typed(estimator, manifest.features, manifest.task, dtype)
    session = OnnxSession(payload, input_dtype=dtype, input_cast="none", missing_text=MISSING_TEXT)
    return payload, session


def _part_sizes(parts: list[tuple[str, Table]]) -> dict[str, int]:
    """Rows of each part by name (the unseen-text blocks of one feature summed)."""
    sizes: dict[str, int] = {}
    for name, table in parts:
        sizes[name] = sizes.get(name, 0) + len(table)
    return sizes


def parity_rows(
    estimator: Any, width: int, rows: np.ndarray | None, holdout: np.ndarray | None
) -> np.ndarray:
    """Every row the gate checks, stacked."""
    parts = [r for r in (rows, holdout) if r is not None and len(r)]
    rng = np.random.default_rng(_SEED)
    if rows is not None and len(rows):
        low, high = np.nanmin(rows, axis=0), np.nanmax(rows, axis=0)
        margin = np.maximum((high - low) * 0.1, 1e-3)
        parts.append(rng.uniform(low - margin, high + margin, size=(RANDOM_ROWS, width)))
    else:  # no ranges known (an imported pickle): a wide spread around zero
        parts.append(rng.normal(0.0, 10.0, size=(RANDOM_ROWS, width)))
    base = parts[0]
    thresholds = threshold_rows(estimator, base)
    if len(thresholds):
        parts.append(thresholds)
    return np.vstack(parts)


def threshold_rows(
    estimator: Any, base: np.ndarray, splits: list[tuple[int, float]] | None = None
) -> np.ndarray:
    """Rows on, and one float32 step either side of, each split threshold of a tree model.

    :param splits: (feature, threshold) pairs; default the scikit-learn trees' own.
    """
    splits = sorted({(int(f), float(t)) for f, t in (splits or _splits(estimator))})
    if not splits or not len(base):
        return np.empty((0, base.shape[1]))
    out = np.repeat(base[np.arange(len(splits)) % len(base)], 3, axis=0)
    for i, (feature, threshold) in enumerate(splits):
        value = np.float32(threshold)
        below = np.nextafter(value, np.float32(-np.inf))
        above = np.nextafter(value, np.float32(np.inf))
        out[3 * i : 3 * i + 3, feature] = (threshold, below, above)
    return out


def _splits(estimator: Any) -> list[tuple[int, float]]:
    trees = [estimator] if hasattr(estimator, "tree_") else []
    for member in np.ravel(getattr(estimator, "estimators_", [])):
        if hasattr(member, "tree_"):
            trees.append(member)
    splits = []
    for tree in trees:
        inner = tree.tree_
        keep = inner.feature >= 0
        splits += list(zip(inner.feature[keep], inner.threshold[keep], strict=True))
    return splits


def _casts_to_float32(estimator: Any) -> bool:
    """scikit-learn's trees compare float32(x) with their thresholds; ONNX must see the same x."""
    return bool(_splits(estimator))


def _convert(estimator: Any, task: str, width: int, input_dtype: str) -> bytes:
    from skl2onnx import to_onnx

    options = {"zipmap": False} if task == "classification" else None
    sample = np.zeros((1, width), dtype=input_dtype)
    model = to_onnx(estimator, sample, options=options)
    payload: bytes = model.SerializeToString()
    return payload


def _reference(estimator: Any, task: str, rows: np.ndarray) -> dict[str, np.ndarray]:
    expected = {"predict": np.asarray(estimator.predict(rows))}
    if task == "classification" and hasattr(estimator, "predict_proba"):
        expected["proba"] = np.asarray(estimator.predict_proba(rows), dtype=np.float64)
    return expected


def _compare(
    payload: bytes,
    task: str,
    rows: np.ndarray,
    expected: dict[str, np.ndarray],
    dtype: str,
    cast: str,
) -> dict[str, Any]:
    from .runtime.compiled import OnnxSession, parallel_runs

    session = OnnxSession(payload, input_dtype=dtype, input_cast=cast)
    parity = score(task, session.run(rows, parallel=False), expected)
    return {**parity, "parallel": score_parallel(task, parallel_runs(session, [rows]), expected)}


def compile_artifact(path: str | os.PathLike[str]) -> ModelManifest:
    """(Re)build the compiled model of an existing artifact and rewrite it in place.

    The training rows are not stored, so the gate's random rows are spread over
    the ranges the manifest records, around its smoke rows.

    :raises ArtifactError: the artifact cannot be loaded.
    """
    directory = Path(path)
    loaded = load_model(directory)
    manifest = loaded.manifest
    files = {manifest.model_file: (directory / manifest.model_file).read_bytes()}
    if manifest.booster:  # compiled from the booster's own file, as save_model does
        name = str(manifest.booster.get("file"))
        if Path(name).name != name:
            raise ArtifactError(f"{directory}: the manifest's booster record is malformed")
        files[name] = read_verified(directory / name, str(manifest.booster.get("sha256")))
    known = [f for f in manifest.features if f.min is not None and f.max is not None]
    rows: np.ndarray | Table | None = None
    if manifest.input == "frame":
        rows = _smoke_table(manifest)
    elif len(known) == len(manifest.features):
        rows = np.array(  # a missing smoke cell (None) is NaN
            [[f.min for f in known], [f.max for f in known], *manifest.sample.get("inputs", [])],
            dtype=np.float64,
        )
    manifest, files = with_compiled(loaded.estimator, manifest, files, rows, None)
    write_artifact(directory, files, manifest)
    return manifest


def _smoke_table(manifest: ModelManifest) -> Table | None:
    inputs = manifest.sample.get("inputs")
    if not inputs:
        return None
    table = rows_input(manifest, inputs, "smoke row {}: ".format)
    return table if isinstance(table, Table) else None


def with_compiled(
    estimator: Any,
    manifest: ModelManifest,
    files: dict[str, bytes],
    rows: np.ndarray | Table | None,
    holdout: np.ndarray | Table | None,
) -> tuple[ModelManifest, dict[str, bytes]]:
    """*manifest* with its ``compiled`` record, and *files* with the compiled model if any.

    :param estimator: for a booster artifact, the Pipeline steps before the booster
        (``"passthrough"`` without any); the booster itself is read from *files*.
    """
    if manifest.booster:
        compiled = compile_booster(estimator, manifest, files, rows, holdout)
    elif manifest.input == "frame":
        typed_rows = rows if isinstance(rows, Table) else None
        typed_holdout = holdout if isinstance(holdout, Table) else None
        compiled = compile_typed(estimator, manifest, typed_rows, typed_holdout)
    else:
        matrix = rows if isinstance(rows, np.ndarray) else None
        held = holdout if isinstance(holdout, np.ndarray) else None
        compiled = compile_estimator(estimator, manifest.task, len(manifest.features), matrix, held)
    if compiled.payload is not None:
        files = {**files, compiled.record["file"]: compiled.payload}
    if compiled.gate is not None:
        files = _with_native(estimator, manifest, compiled, files)
    return replace(manifest, compiled=compiled.record), files


def _with_native(
    estimator: Any, manifest: ModelManifest, compiled: Compiled, files: dict[str, bytes]
) -> dict[str, bytes]:
    """Record the native batches' gate in *compiled*; *files* with their checkpoint if passed."""
    from .compiler_native import gate_native

    labels = np.asarray(manifest.labels) if manifest.task == "classification" else None
    assert compiled.gate is not None
    trees = estimator if compiled.trees is None else compiled.trees
    record, checkpoint = gate_native(trees, manifest.task, labels, *compiled.gate)
    compiled.record["native"] = record
    return files if checkpoint is None else {**files, record["file"]: checkpoint}
