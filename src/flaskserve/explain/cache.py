"""One explainer per served model version, made on its first explanation and kept with it."""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Any

from .base import NotExplainable
from .explainer import Explainer, build_explainer

# keyed by the runtime object: a new version (or a reload) has a new one, and an unloaded
# version's explainer goes with its runtime
_EXPLAINERS: weakref.WeakKeyDictionary[Any, Explainer | NotExplainable] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def explainer_for(runtime: Any, directory: Path) -> Explainer:
    """The explainer of the model *runtime* serves from *directory*, made once.

    Made on first use, not at load: ``/predict`` never pays for it (``shap`` alone takes
    a second to import), and a model that cannot be explained still serves.

    :raises NotExplainable: the model has no exact explanation (remembered, not retried).
    """
    with _LOCK:
        found = _EXPLAINERS.get(runtime)
        if found is None:
            try:
                found = build_explainer(directory, runtime.manifest)
            except NotExplainable as e:
                found = e
            _EXPLAINERS[runtime] = found
    if isinstance(found, NotExplainable):
        raise NotExplainable(found.message)
    return found
