"""What the manifest keeps about explaining a model, made when the artifact is saved.

``method`` and ``space``; for a linear model the mean of the training rows as it
sees them (its explanation is relative to that mean); and the model card's global
importance: each input column's mean absolute contribution toward each row's
predicted class (its value, for a regressor) over the held-out rows, else over the
training rows: at most :data:`IMPORTANCE_ROWS` of them, and no more batches than fit in
:data:`IMPORTANCE_SECONDS` (the record says how many rows it used).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from ..artifact import ModelManifest
from ..errors import FlaskServeError
from .base import NotExplainable
from .columns import column_map
from .engines import LINEAR_KINDS, engine_for
from .explainer import Explainer, split_pipeline

logger = logging.getLogger(__name__)

IMPORTANCE_ROWS = 1_000
#: explaining stops after the batch that passes this; a deep forest takes ~35 ms a row
IMPORTANCE_SECONDS = 3.0
_BATCH = 25


def explanation_record(
    estimator: Any, booster: Any, manifest: ModelManifest, sample: Any, holdout: Any
) -> dict[str, Any]:
    """The manifest's ``explanation`` field for *estimator*; never raises.

    :param booster: the :class:`~flaskserve.runtime.boosters.BoosterModel` of an
        XGBoost or LightGBM artifact (with its pipeline's steps), else ``None``.
    :param sample: the training rows, as given to ``save_model``.
    """
    head, last = (booster.head, booster) if booster is not None else split_pipeline(estimator)
    try:
        mapping = column_map(head, len(manifest.features))
        mean = _training_mean(head, last, sample)
        engine = engine_for(last, mean)
        explainer = Explainer(head, engine, mapping, manifest)
    except NotExplainable as e:
        return {"reason": e.message}
    record: dict[str, Any] = {"method": engine.method, "space": engine.space}
    if mean is not None:
        record["mean"] = mean
    rows, kind = (holdout, "held-out") if holdout is not None else (sample, "training")
    if rows is not None and len(rows):
        try:
            record |= _importance(explainer, rows, kind)
        except FlaskServeError as e:  # the record says why; the artifact is still good
            record["importance_reason"] = e.message
    return record


def _training_mean(head: Any, last: Any, sample: Any) -> list[float] | None:
    if type(last).__name__ not in LINEAR_KINDS:
        return None
    if sample is None or not len(sample):
        raise NotExplainable(
            f"{type(last).__name__} is explained from the training rows' mean:"
            " save it with sample=<training rows>"
        )
    seen = head.transform(sample) if head is not None else sample
    seen = seen.toarray() if hasattr(seen, "toarray") else np.asarray(seen, dtype=np.float64)
    return [float(v) for v in np.nanmean(seen, axis=0)]


def _importance(explainer: Explainer, rows: Any, kind: str) -> dict[str, Any]:
    deadline = time.monotonic() + IMPORTANCE_SECONDS
    toward, columns = [], explainer.columns
    for start in range(0, min(len(rows), IMPORTANCE_ROWS), _BATCH):
        stop = min(start + _BATCH, len(rows))
        batch = rows.iloc[start:stop] if hasattr(rows, "iloc") else rows[start:stop]
        explanation = explainer.explain(batch)
        chosen = np.argmax(explanation.outputs, axis=1)  # the class the model predicts
        toward.append(explanation.contributions[np.arange(len(chosen)), :, chosen])
        if time.monotonic() > deadline:
            break
    magnitude = np.abs(np.concatenate(toward)).mean(axis=0)
    return {
        "importance": {c: float(v) for c, v in zip(columns, magnitude, strict=True)},
        "importance_rows": sum(len(t) for t in toward),
        "importance_over": kind,
    }
