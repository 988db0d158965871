"""flaskserve: serve scikit-learn models over HTTP, safely and fast.

Importing this package does not import Flask; the server lives in
``flaskserve.app`` and the command line in ``flaskserve.cli``.
"""

from __future__ import annotations

from .artifact import LoadedModel, ModelManifest, load_model
from .packaging import save_model
from .version import __version__

__all__ = ["LoadedModel", "ModelManifest", "__version__", "load_model", "save_model"]
