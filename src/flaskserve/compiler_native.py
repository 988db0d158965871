"""The parity gate of native batches: a tree ensemble's library, built here, against its model.

:func:`gate_native` keeps the trees of a scikit-learn forest or an XGBoost booster as a
Treelite checkpoint, builds its library (:mod:`flaskserve.runtime.native`) and runs it on
the parity gate's rows, whole and in :data:`~flaskserve.runtime.compiled.PARALLEL_ROWS`-row
pieces, by the gate's rules (labels identical, probabilities or values within 1e-6). The
manifest records the result as ``compiled.native``; the checkpoint is kept in the
artifact only where it passed.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .parity import score
from .runtime.compiled import PARALLEL_ROWS
from .runtime.native import (
    CHECKPOINT_FILE,
    NativeForest,
    build,
    checkpoint_of,
    is_xgboost_booster,
    unavailable,
)

#: the scikit-learn estimators the native library may evaluate (and XGBoost's ``Booster``)
TREE_ENSEMBLES = (
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
)


def gate_native(
    estimator: Any,
    task: str,
    labels: np.ndarray | None,
    rows: np.ndarray,
    expected: dict[str, np.ndarray],
) -> tuple[dict[str, Any], bytes | None]:
    """The ``compiled.native`` record, and the checkpoint to keep where the gate passed.

    :param estimator: a scikit-learn forest, or an XGBoost ``Booster`` as it answers.
    """
    refused = _unsupported(estimator)
    if refused is not None:
        return {"status": "unsupported", "reason": refused}, None
    missing = unavailable()
    if missing is not None:
        return {"status": "unavailable", "reason": missing}, None
    try:
        checkpoint = checkpoint_of(estimator)
        forest = NativeForest(build(checkpoint), labels, threads=2)
        runs = [forest.run(rows)]
        runs += [
            forest.run(rows[s : s + PARALLEL_ROWS]) for s in range(0, len(rows), PARALLEL_ROWS)
        ]
    except Exception as e:  # Treelite, TL2cgen and the compiler raise many kinds
        return {"status": "failed", "reason": f"{type(e).__name__}: {str(e)[:200]}"}, None
    whole = score(task, runs[0], expected)
    pieces = score(task, _joined(runs[1:]), expected)
    worst = max((whole, pieces), key=lambda s: (s["mismatches"], s["max_difference"]))
    passed = whole["passed"] and pieces["passed"]
    import tl2cgen
    import treelite

    record = {
        "status": "passed" if passed else "failed",
        "file": CHECKPOINT_FILE,
        "sha256": hashlib.sha256(checkpoint).hexdigest(),
        "parity": {k: worst[k] for k in ("rows", "mismatches", "max_difference")},
        "versions": {"treelite": treelite.__version__, "tl2cgen": tl2cgen.__version__},
    }
    return record, checkpoint if passed else None


def _unsupported(estimator: Any) -> str | None:
    """Why *estimator*'s trees do not go to native code, or ``None`` when they do."""
    kind = type(estimator).__name__
    if kind in TREE_ENSEMBLES or is_xgboost_booster(estimator):
        return None
    # benchmarks/booster_compilers.py: 122 ms against 109
    if type(estimator).__module__.startswith("lightgbm"):
        return "LightGBM's trees measured no faster on native code than on ONNX Runtime"
    return f"{kind} is not a forest"


def _joined(runs: list[Any]) -> Any:
    from .runtime.base import Prediction

    probabilities = [r.probabilities for r in runs]
    joined = None if probabilities[0] is None else np.concatenate(probabilities)
    return Prediction(np.concatenate([r.predictions for r in runs]), joined)
