"""Exact explanations: how much each input column moved a model's answer, and in which space.

For a row, ``base_value + sum(contributions) == output`` to float rounding, where the
output is the model's probability (forests), log-odds (binary boosting and logistic
models) or raw score (regressors, multiclass boosting), as :attr:`Explanation.space`
says. Tree ensembles are explained by TreeSHAP (``shap``, path-dependent, exact),
XGBoost and LightGBM by their own libraries' contributions, linear models from their
coefficients and the training mean. Any other model is refused with the reason
(:class:`NotExplainable`); nothing is approximated. Columns a pipeline derived from
one input column (one-hot columns, an imputer's indicator) are summed back to it.
"""

from __future__ import annotations

from .base import Explanation, NotExplainable
from .cache import explainer_for
from .explainer import Explainer, build_explainer

__all__ = ["Explainer", "Explanation", "NotExplainable", "build_explainer", "explainer_for"]
