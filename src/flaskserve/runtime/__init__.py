"""Model runtimes: predict on arrays. Nothing here knows HTTP.

A directory becomes a runtime through :func:`flaskserve.admission.admit` only.
"""

from __future__ import annotations

from .base import Prediction, Runtime

__all__ = ["Prediction", "Runtime"]
