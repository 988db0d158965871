"""Which compiler for XGBoost and LightGBM models: onnxmltools with ONNX Runtime, or Treelite.

300-tree iris classifiers, each evaluated on one thread by its library, by ONNX Runtime from
the onnxmltools graph, by Treelite's GTIL from a Treelite model, and by that model compiled
to C with TL2cgen (as flaskserve's native batches are, ``flaskserve[native]``): microseconds per
single-row call, milliseconds per 10,000-row call, and the largest probability difference
from the library. Prints a Markdown table (docs/performance.md quotes it).

    pip install -e '.[xgboost,lightgbm,native]' onnxmltools && python benchmarks/booster_compilers.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _per_call(predict: Callable[[np.ndarray], Any], rows: np.ndarray, seconds: float) -> float:
    predict(rows)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predict(rows)
        calls += 1
    return (time.perf_counter() - start) / calls


def _onnx(model: Any) -> Callable[[np.ndarray], Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    return lambda rows: session.run(outputs, {"input": rows.astype(np.float32)})[1]


def _gtil(model: Any) -> Callable[[np.ndarray], Any]:
    import treelite

    return lambda rows: treelite.gtil.predict(model, rows.astype(np.float32), nthread=1)


def _tl2cgen(model: Any) -> Callable[[np.ndarray], Any]:
    """The trees as C, built by flaskserve's native-batch builder (gcc), on one thread."""
    import tl2cgen

    from flaskserve.runtime.native import build

    predictor = tl2cgen.Predictor(str(build(model.serialize_bytes())), nthread=1, verbose=False)
    return lambda rows: predictor.predict(tl2cgen.DMatrix(rows.astype(np.float32)))


def main() -> None:
    import lightgbm as lgb
    import onnxruntime
    import treelite
    import xgboost as xgb
    from onnxmltools import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    rows = np.random.default_rng(1).uniform(x.min(0), x.max(0), size=(10_000, 4))
    types = [("input", FloatTensorType([None, 4]))]
    xgb_model = xgb.XGBClassifier(n_estimators=300, max_depth=6, n_jobs=1).fit(x, y)
    lgb_model = lgb.LGBMClassifier(n_estimators=300, verbose=-1, n_jobs=1).fit(x, y)
    xgb_booster, lgb_booster = xgb_model.get_booster(), lgb_model.booster_
    cases: dict[str, tuple[Any, Any, Any]] = {
        "XGBoost": (
            xgb_model,
            convert_xgboost(xgb_booster, initial_types=types),
            treelite.frontend.from_xgboost_json(xgb_booster.save_raw("json").decode()),
        ),
        "LightGBM": (
            lgb_model,
            convert_lightgbm(lgb_booster, initial_types=types, zipmap=False),
            treelite.frontend.from_lightgbm(lgb_booster),
        ),
    }
    print(
        f"xgboost {xgb.__version__}, lightgbm {lgb.__version__}, onnxruntime"
        f" {onnxruntime.__version__}, treelite {treelite.__version__}; one thread\n"
    )
    print("| model | evaluated by | 1 row, µs | 10,000 rows, ms | max prob. difference |")
    print("|---|---|---|---|---|")
    for name, (model, graph, tree) in cases.items():
        expected = model.predict_proba(rows)
        runs: dict[str, Callable[[np.ndarray], Any]] = {
            "the library": model.predict_proba,
            "ONNX Runtime (onnxmltools)": _onnx(graph),
            "Treelite GTIL": _gtil(tree),
            "TL2cgen (C, gcc)": _tl2cgen(tree),
        }
        for label, predict in runs.items():
            got = np.asarray(predict(rows)).reshape(len(rows), -1)
            single, batch = _per_call(predict, rows[:1], 1.0), _per_call(predict, rows, 2.0)
            print(
                f"| {name} | {label} | {single * 1e6:,.0f} | {batch * 1e3:,.1f} |"
                f" {np.abs(got - expected).max():.1e} |"
            )
        blob = tree.serialize_bytes()
        print(
            f"| {name} | Treelite checkpoint: {len(blob):,} bytes, starts {blob[:8].hex()} | | | |"
        )


if __name__ == "__main__":
    main()
