"""The exact methods, each over the columns its estimator sees.

- scikit-learn tree ensembles: TreeSHAP from ``shap`` (path-dependent, so no
  background rows are needed and the values are exact for the trees as fitted);
- XGBoost and LightGBM: their own contributions (``pred_contribs``/``pred_contrib``);
- linear models: ``coef * (x - mean)``, the exact Shapley values of a linear function
  of independent features, with the mean of the training rows the artifact keeps.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import numpy as np

from .base import Attribution, NotExplainable, two_sided

_FORESTS = {
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "DecisionTreeClassifier",
    "ExtraTreeClassifier",
}
_TREE_REGRESSORS = {
    "RandomForestRegressor",
    "ExtraTreesRegressor",
    "DecisionTreeRegressor",
    "ExtraTreeRegressor",
    "GradientBoostingRegressor",
    "HistGradientBoostingRegressor",
}
_BOOSTING_CLASSIFIERS = {"GradientBoostingClassifier", "HistGradientBoostingClassifier"}
LINEAR_KINDS = {
    "LogisticRegression",
    "LinearRegression",
    "Ridge",
    "RidgeClassifier",
    "Lasso",
    "ElasticNet",
    "SGDClassifier",
    "SGDRegressor",
    "LinearSVC",
    "LinearSVR",
    "BayesianRidge",
    "HuberRegressor",
}


class Engine(Protocol):
    method: str
    space: str

    def attribute(self, x: Any) -> Attribution: ...


def engine_for(estimator: Any, mean: list[float] | None) -> Engine:
    """The exact method for *estimator* (a pipeline's last step).

    :param mean: the training rows' mean as the estimator sees them (linear models).
    :raises NotExplainable: no exact method for it; the message says why.
    """
    kind = type(estimator).__name__
    if kind == "BoosterModel":
        return BoosterEngine(estimator)
    if kind in _FORESTS | _TREE_REGRESSORS | _BOOSTING_CLASSIFIERS:
        return TreeEngine(estimator)
    if kind in LINEAR_KINDS:
        if mean is None:
            raise NotExplainable(
                f"{kind} is explained from the training rows' mean, which this artifact does"
                " not record (save it again with this version of flaskserve)"
            )
        return LinearEngine(estimator, np.asarray(mean, dtype=np.float64))
    raise NotExplainable(
        f"{kind} has no exact explanation: flaskserve explains tree ensembles, XGBoost,"
        " LightGBM and linear models (and pipelines ending in one), never by approximation"
    )


def import_shap() -> Any:
    """:raises NotExplainable: ``shap`` is not installed; the message names the extra."""
    try:
        return importlib.import_module("shap")
    except ImportError as e:
        raise NotExplainable(
            "explaining a scikit-learn tree model needs shap: pip install 'flaskserve[explain]'"
        ) from e


class TreeEngine:
    """TreeSHAP over a scikit-learn tree model, in the space its trees add up in."""

    method = "tree_shap"

    def __init__(self, estimator: Any) -> None:
        kind = type(estimator).__name__
        classes = len(getattr(estimator, "classes_", []))
        if kind == "GradientBoostingClassifier" and classes > 2:
            raise NotExplainable(
                "TreeSHAP does not support a multiclass GradientBoostingClassifier"
                " (use HistGradientBoostingClassifier, XGBoost or LightGBM)"
            )
        categorical = getattr(estimator, "is_categorical_", None)
        if categorical is not None and np.any(categorical):
            raise NotExplainable(
                "TreeSHAP gives wrong values for HistGradientBoosting's native categorical"
                " splits (shap issue 3436): one-hot encode the categories instead"
            )
        self._binary_margin = kind in _BOOSTING_CLASSIFIERS and classes == 2
        self.space = (
            "probability" if kind in _FORESTS else "log_odds" if self._binary_margin else "raw"
        )
        self._explainer = import_shap().TreeExplainer(estimator)

    def attribute(self, x: Any) -> Attribution:
        # scikit-learn's trees compare float32(x) with their thresholds; so must TreeSHAP
        rows = np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64)
        values = np.asarray(self._explainer.shap_values(rows, check_additivity=False))
        base = np.atleast_1d(np.asarray(self._explainer.expected_value, dtype=np.float64))
        if self._binary_margin:
            return two_sided(base, values)
        return Attribution(base, values.reshape(len(rows), rows.shape[1], -1))


class LinearEngine:
    """A linear model's exact contributions: ``coef * (x - mean)``."""

    method = "linear"

    def __init__(self, estimator: Any, mean: np.ndarray) -> None:
        coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))
        intercept = np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64))
        if coef.shape[1] != len(mean):
            raise NotExplainable(
                f"the artifact's training mean has {len(mean)} columns, the model {coef.shape[1]}"
            )
        self._coef, self._mean = coef, mean
        self._base = intercept + coef @ mean
        classifier = hasattr(estimator, "classes_")
        self._binary = classifier and coef.shape[0] == 1
        probabilistic = type(estimator).__name__ == "LogisticRegression"
        self.space = "log_odds" if self._binary and probabilistic else "raw"

    def attribute(self, x: Any) -> Attribution:
        centred = np.asarray(x, dtype=np.float64) - self._mean
        values = centred[:, :, None] * self._coef.T[None, :, :]
        if self._binary:
            return two_sided(self._base, values[:, :, 0])
        return Attribution(self._base, values)


class BoosterEngine:
    """XGBoost's or LightGBM's own exact contributions, in margin space."""

    method = "booster"

    def __init__(self, model: Any) -> None:
        self._model = model
        native = model.native
        binary = native.n_classes == 2
        self._binary = binary
        self.space = "log_odds" if binary else "raw"

    def attribute(self, x: Any) -> Attribution:
        raw = np.asarray(self._model.contributions(x), dtype=np.float64)
        n, classes = len(raw), max(self._model.native.n_classes, 1)
        if self._binary or classes == 1:
            values = raw.reshape(n, -1)
            base = values[0, -1:]
            if self._binary:
                return two_sided(base, values[:, :-1])
            return Attribution(base, values[:, :-1, None])
        blocks = raw.reshape(n, classes, -1)  # XGBoost (n, k, f+1); LightGBM k blocks of f+1
        return Attribution(blocks[0, :, -1], np.transpose(blocks[:, :, :-1], (0, 2, 1)))
