from __future__ import annotations

from typing import cast

import numpy as np
import pytest
from flask import Flask, Response

from flaskserve.json import NumpyJSONProvider


@pytest.fixture()
def provider() -> NumpyJSONProvider:
    return NumpyJSONProvider(Flask(__name__))


def test_numpy_values(provider: NumpyJSONProvider) -> None:
    value = {"i": np.int64(2), "f": np.float32(0.5), "a": np.array([[1, 2]]), "b": np.bool_(True)}
    assert provider.dumps(value) == '{"i": 2, "f": 0.5, "a": [[1, 2]], "b": true}'


def test_key_order_is_kept(provider: NumpyJSONProvider) -> None:
    assert provider.dumps({"result": 1, "labels": 2}) == '{"result": 1, "labels": 2}'


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), np.float64("-inf")], ids=["nan", "inf", "-inf"]
)
def test_never_writes_non_finite(provider: NumpyJSONProvider, value: float) -> None:
    with pytest.raises(ValueError):
        provider.dumps({"x": value})


def test_response_is_compact_with_newline() -> None:
    app = Flask(__name__)
    app.json = NumpyJSONProvider(app)
    with app.app_context():
        response = cast(Response, app.json.response(result=[np.int64(2)]))
        assert response.get_data() == b'{"result":[2]}\n'
