"""Model runtimes: load an artifact, predict on arrays. Nothing here knows HTTP."""

from __future__ import annotations

from .base import Prediction, Runtime
from .loader import load_runtime

__all__ = ["Prediction", "Runtime", "load_runtime"]
