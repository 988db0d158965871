"""An artifact's explainer: its pipeline's steps, the exact method for its last one, and the
map from the columns that method sees back to the input columns."""

from __future__ import annotations

import logging
import time
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import ModelManifest, load_model
from ..errors import ModelError
from ..schema import Table, rows_input
from .base import Explanation, NotExplainable
from .columns import column_map
from .engines import Engine, engine_for

logger = logging.getLogger(__name__)


class Explainer:
    """Explains rows of one model exactly.

    :param head: the pipeline's steps before the last (``None``: none).
    :param engine: the exact method for the last step.
    :param mapping: ``(columns the engine sees, input columns)``, from :func:`column_map`.
    """

    def __init__(
        self, head: Any, engine: Engine, mapping: np.ndarray, manifest: ModelManifest
    ) -> None:
        self._head, self._engine, self._mapping = head, engine, mapping
        self._manifest = manifest
        self.space = engine.space
        self.columns = tuple(f.name for f in manifest.features)

    def explain(self, rows: np.ndarray | Table) -> Explanation:
        """Each row's base value and per-column contributions, for every class.

        :raises ModelError: the model or its library failed on these rows.
        """
        frame = rows.to_frame() if isinstance(rows, Table) else rows
        try:
            seen = self._head.transform(frame) if self._head is not None else frame
            if hasattr(seen, "toarray"):  # a sparse one-hot matrix
                seen = seen.toarray()
            attribution = self._engine.attribute(seen)
        except NotExplainable:
            raise
        except Exception as e:  # the model's failure, never the client's
            logger.exception("explaining model %r failed", self._manifest.name)
            raise ModelError(f"model {self._manifest.name!r} failed to explain these rows") from e
        contributions = np.einsum("nok,oi->nik", attribution.contributions, self._mapping)
        return Explanation(
            space=self.space,
            columns=self.columns,
            classes=self._classes(attribution.base_values.shape[0]),
            base_values=attribution.base_values,
            contributions=contributions,
        )

    @cached_property
    def seconds_per_row(self) -> float | None:
        """What one row costs to explain, timed on the manifest's smoke rows once (the second
        of two runs); ``None`` without smoke rows. A deep forest costs milliseconds a row."""
        sample = self._manifest.sample.get("inputs")
        if not sample:
            return None
        rows = rows_input(self._manifest, sample, "smoke row {}: ".format)
        self.explain(rows)
        start = time.perf_counter()
        self.explain(rows)
        return (time.perf_counter() - start) / len(rows)

    def _classes(self, outputs: int) -> tuple[Any, ...]:
        labels = tuple(self._manifest.labels)
        if self._manifest.task != "classification":
            return ()
        if len(labels) != outputs:
            raise ModelError(f"the explanation has {outputs} outputs for {len(labels)} classes")
        return labels


def build_explainer(directory: Path, manifest: ModelManifest) -> Explainer:
    """The explainer of the artifact in *directory* (its files verified as for serving).

    :raises NotExplainable: the model has no exact explanation; the message says why.
    :raises ArtifactError: the artifact does not load.
    """
    if manifest.booster:
        from ..runtime.boosters import load_booster_runtime

        model = load_booster_runtime(directory, manifest).model
        head, last = model.head, model
    else:
        estimator = load_model(directory).estimator
        head, last = split_pipeline(estimator)
    mapping = column_map(head, len(manifest.features))
    engine = engine_for(last, (manifest.explanation or {}).get("mean"))
    return Explainer(head, engine, mapping, manifest)


def split_pipeline(estimator: Any) -> tuple[Any, Any]:
    """``(the steps before the last, the last)``; ``(None, estimator)`` for a lone estimator."""
    if type(estimator).__name__ != "Pipeline":
        return None, estimator
    steps = [step for _, step in estimator.steps if step not in (None, "passthrough")]
    if not steps:
        raise NotExplainable("the pipeline has no estimator")
    head = estimator[:-1] if len(estimator.steps) > 1 else None
    return head, estimator.steps[-1][1]
