"""The light audit agrees with skops' own on what flaskserve saves, and refuses what it must."""

from __future__ import annotations

import operator
import os
import pickle
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from flaskserve.artifact import TRUSTED_TYPES, untrusted_types
from flaskserve.audit import named_types, refused_types

X = np.random.default_rng(0).random((60, 4))
Y = np.array([0, 1, 2] * 20)


@pytest.mark.parametrize(
    "estimator",
    [
        RandomForestClassifier(n_estimators=3, random_state=0),
        LogisticRegression(),
        make_pipeline(StandardScaler(), LogisticRegression()),
        HistGradientBoostingClassifier(max_iter=3),
        KNeighborsClassifier(n_neighbors=3),
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=5),
        make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()),
    ],
    ids=["forest", "logistic", "pipeline", "hist-gradient-boosting", "knn", "mlp", "log1p"],
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_what_flaskserve_trusts_passes(estimator: Any) -> None:
    estimator.fit(X, Y)
    assert untrusted_types(estimator) == []  # skops' audit with flaskserve's trusted list
    assert refused_types(sio.dumps(estimator), TRUSTED_TYPES) == []


@pytest.mark.parametrize(
    ("function", "name"),
    [(os.system, f"{os.name}.system"), (operator.attrgetter, "operator.attrgetter")],
)
def test_a_function_or_type_from_elsewhere_is_refused(function: Any, name: str) -> None:
    estimator = make_pipeline(FunctionTransformer(function), LogisticRegression())
    payload = sio.dumps(estimator)
    assert name in named_types(payload)
    assert name in refused_types(payload, TRUSTED_TYPES)


@pytest.mark.parametrize(
    ("function", "name"),
    [(np.save, "function numpy.save"), (np.frombuffer, "numpy.frombuffer")],
)
def test_a_numpy_function_that_is_not_a_ufunc_is_refused(function: Any, name: str) -> None:
    estimator = make_pipeline(FunctionTransformer(function), LogisticRegression())
    assert refused_types(sio.dumps(estimator), TRUSTED_TYPES) == [name]


@pytest.mark.parametrize(
    "payload",
    [b"", b"not a zip", pickle.dumps({"a": 1}), b"PK\x03\x04" + b"\x00" * 40],
    ids=["empty", "text", "pickle", "broken-zip"],
)
def test_anything_but_a_skops_file_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError, match="not a skops file"):
        refused_types(payload, TRUSTED_TYPES)


def test_the_audit_imports_neither_scikit_learn_nor_skops() -> None:
    import subprocess
    import sys

    code = (
        "import sys, flaskserve.audit; "
        "print(sorted(m for m in ('sklearn', 'skops') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
