"""A JSON provider that writes NumPy values and never writes ``NaN``.

Flask's default provider emits ``NaN``/``Infinity`` (not JSON under RFC 8259)
and fails on ``np.int64``; a model server meets both on every response.
"""

from __future__ import annotations

import json
import typing as t

from flask.json.provider import DefaultJSONProvider

from .artifact import json_default


class NumpyJSONProvider(DefaultJSONProvider):
    """Compact, key order kept, NumPy-aware, strict about non-finite floats."""

    sort_keys = False

    @staticmethod
    def default(o: t.Any) -> t.Any:
        try:
            return json_default(o)
        except TypeError:
            return DefaultJSONProvider.default(o)

    def dumps(self, obj: t.Any, **kwargs: t.Any) -> str:
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)


#: One reusable encoder for the prediction hot path: compact, key order kept, no NaN.
COMPACT_ENCODER = json.JSONEncoder(
    separators=(",", ":"), allow_nan=False, ensure_ascii=True, default=json_default
)
