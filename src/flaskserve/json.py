"""A JSON provider that writes NumPy values and never writes ``NaN``.

Flask's default provider emits ``NaN``/``Infinity`` (not JSON under RFC 8259)
and fails on ``np.int64``; a model server meets both on every response.
"""

from __future__ import annotations

import typing as t

import numpy as np
from flask.json.provider import DefaultJSONProvider


class NumpyJSONProvider(DefaultJSONProvider):
    """Compact, key order kept, NumPy-aware, strict about non-finite floats."""

    sort_keys = False

    @staticmethod
    def default(o: t.Any) -> t.Any:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        return DefaultJSONProvider.default(o)

    def dumps(self, obj: t.Any, **kwargs: t.Any) -> str:
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)
