"""An XGBoost or LightGBM model compiled to ONNX with onnxmltools, and the rows its
parity gate checks (:func:`flaskserve.compiler.compile_booster` runs the gate).

What is compiled is what the artifact stores: the booster read back from its own
file (``model.json``, ``model.txt``), so ``save_model`` and ``flaskserve compile``
convert the same thing. onnxmltools turns its trees into ONNX's tree ensemble, one
float32 matrix input, which ONNX Runtime evaluates (:mod:`flaskserve.runtime.compiled`).
onnxmltools with ONNX Runtime was chosen over Treelite (its checkpoint, run by GTIL) by
measurement (docs/performance.md): 13-16 µs a row against 91-142 µs, and 10,000 rows in
66-109 ms against 445-627 ms, for 300 trees on one thread.

The gate is the scikit-learn one (:mod:`flaskserve.compiler`), the library's own
answers taken as truth: the training and held-out rows, 100,000 random rows over ±10%
of each feature's range, 20,000 of those again with 10% of their cells missing
(``NaN``), blocks with each feature exactly 0 (LightGBM's ``zero_as_missing``), and
rows on and one float32 step either side of every split threshold of the booster's
own dump. Class labels must be identical, probabilities (and regression values,
relatively) within :data:`flaskserve.parity.TOLERANCE`.

Compiled: a booster taking a matrix of numbers, with nothing in front of it. Not yet:
Pipeline steps in front of the booster, and DataFrame input with category, text or
boolean columns; those are recorded ``unsupported`` with the reason and served by
the booster's library.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .artifact import ModelManifest
from .runtime.boosters import BoosterModel, NativeModel, import_library, read_native

#: random rows checked again with cells missing, and the share of missing cells
MISSING_ROWS = 20_000
_MISSING_SHARE = 0.1
#: rows per feature with that feature exactly 0
ZERO_ROWS = 200
_SEED = 4321
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def not_compiled(head: Any, manifest: ModelManifest) -> str | None:
    """Why this booster artifact is not compiled, or ``None`` if it may be.

    :param head: the Pipeline steps before the booster, or ``"passthrough"`` without any.
    """
    try:
        import onnxmltools  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return f"{e.name} is not installed (pip install onnxmltools onnxruntime)"
    record = manifest.booster
    library = record.get("library")
    if not isinstance(head, str):
        return f"Pipeline steps before the {library} model are not compiled yet"
    if manifest.input != "matrix":
        return (
            f"a {library} model taking category, text or boolean columns is not compiled yet"
            " (one taking a matrix of numbers is)"
        )
    if record.get("missing") is not None:
        return f"XGBoost's missing={record['missing']} is not compiled (ONNX trees take NaN)"
    return None


def read_booster(manifest: ModelManifest, files: dict[str, bytes]) -> NativeModel:
    """The booster the artifact stores, read back from its own file in *files*.

    :raises ArtifactError: the file is not a readable model of its library.
    """
    record = manifest.booster
    name = str(record["file"])
    return read_native(str(record["library"]), files[name], name)


def gate_rows(
    base: np.ndarray, rows: np.ndarray | None, holdout: np.ndarray | None, probes: np.ndarray
) -> tuple[np.ndarray, dict[str, int]]:
    """Every row the gate checks, stacked, and how many of each kind.

    :param base: the training, held-out and random rows, stacked in that order.
    :param probes: the rows on and beside each split threshold.
    """
    width = base.shape[1]
    parts = {"training": len(rows) if rows is not None else 0}
    parts["holdout"] = len(holdout) if holdout is not None else 0
    parts["random"] = len(base) - parts["training"] - parts["holdout"]
    rng = np.random.default_rng(_SEED)
    random = base[len(base) - parts["random"] :]
    missing = random[:MISSING_ROWS].copy()
    missing[rng.random(missing.shape) < _MISSING_SHARE] = np.nan
    zeros = np.repeat(random[:ZERO_ROWS], width, axis=0)  # each row once per feature
    zeros[np.arange(len(zeros)), np.arange(len(zeros)) % width] = 0.0
    parts |= {"missing": len(missing), "zeros": len(zeros), "thresholds": len(probes)}
    return np.vstack([base, missing, zeros, probes]), parts


def booster_splits(native: NativeModel) -> list[tuple[int, float]]:
    """Each numeric split of the booster's trees: its feature's index and threshold."""
    frame = native.booster.trees_to_dataframe()
    if native.library == "xgboost":
        names = native.feature_names or tuple(f"f{i}" for i in range(native.n_features))
        keep = frame["Split"].notna() & (frame["Feature"] != "Leaf")
        features, thresholds = frame["Feature"][keep], frame["Split"][keep]
    else:
        names = tuple(native.booster.feature_name())
        keep = frame["decision_type"] == "<="
        features, thresholds = frame["split_feature"][keep], frame["threshold"][keep]
    index = {name: i for i, name in enumerate(names)}
    pairs = zip(features.tolist(), thresholds.tolist(), strict=True)
    # LightGBM writes 1e300 for "everything": beyond float32, which no request reaches
    return [(index[f], float(t)) for f, t in pairs if f in index and abs(t) <= _FLOAT32_MAX]


def served_trees(native: NativeModel) -> Any:
    """The booster as it answers: after early stopping, XGBoost uses its best trees only."""
    best = native.booster.attr("best_iteration") if native.library == "xgboost" else None
    return native.booster if best is None else native.booster[: int(best) + 1]


def convert_booster(native: NativeModel, trees: Any, width: int) -> bytes:
    """*trees* (the booster as it answers, :func:`served_trees`) as an ONNX tree ensemble
    taking one ``[N, width]`` float32 matrix.

    :raises Exception: whatever onnxmltools raises for what it cannot convert.
    """
    from onnxmltools import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [("input", FloatTensorType([None, width]))]
    if native.library == "xgboost":
        model = convert_xgboost(trees, initial_types=types)
    else:
        model = convert_lightgbm(trees, initial_types=types, zipmap=False)
    for output in model.graph.output:  # LightGBM's label says [1]: ONNX Runtime warns each call
        first = output.type.tensor_type.shape.dim[:1]
        if first and first[0].HasField("dim_value"):
            first[0].dim_param = "N"
    payload: bytes = model.SerializeToString()
    return payload


def reference(native: NativeModel, task: str, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The library's answers, classes as indices (as the ONNX graph gives them)."""
    model = BoosterModel(native)
    expected = {"predict": np.asarray(model.predict(rows))}
    if task == "classification":
        expected["proba"] = np.asarray(model.predict_proba(rows), dtype=np.float64)
    return expected


def failure(native: NativeModel, error: Exception) -> str:
    """The ``unsupported`` reason of a booster onnxmltools or ONNX Runtime refused."""
    said = f"{type(error).__name__}: {str(error)[:200]}"
    return f"onnxmltools cannot convert this {native.library} model ({said})"


def record_fields(native: NativeModel, task: str) -> dict[str, Any]:
    """What a booster's ``compiled`` record says beyond a scikit-learn model's."""
    import onnxmltools
    import onnxruntime

    return {
        "probabilities": task == "classification",
        "labels": "index",  # the graph answers class 0..k-1: the manifest's labels name them
        "converter": "onnxmltools",
        "versions": {
            "onnxruntime": onnxruntime.__version__,
            "onnxmltools": onnxmltools.__version__,
            native.library: str(import_library(native.library).__version__),
        },
    }
