"""What an explanation is, and the error for a model that has none."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import numpy as np

from ..errors import FlaskServeError

#: the spaces an explanation adds up in
SPACES = ("probability", "log_odds", "raw")


class NotExplainable(FlaskServeError):
    """The model cannot be explained exactly; the message says why (KServe's 501)."""

    status_code = HTTPStatus.NOT_IMPLEMENTED


@dataclass(frozen=True)
class Explanation:
    """A batch's exact explanations, one output per class (one for a regressor).

    :ivar space: what the outputs are: ``probability``, ``log_odds`` or ``raw``.
    :ivar columns: the input columns, in the manifest's order.
    :ivar classes: the label each output explains; ``()`` for a regressor.
    :ivar base_values: ``(k,)``, the output for an average row.
    :ivar contributions: ``(n, columns, k)``.
    """

    space: str
    columns: tuple[str, ...]
    classes: tuple[Any, ...]
    base_values: np.ndarray
    contributions: np.ndarray

    @property
    def outputs(self) -> np.ndarray:
        """``(n, k)``: base value plus contributions, the model's output in :attr:`space`."""
        return np.asarray(self.base_values[None, :] + self.contributions.sum(axis=1))


@dataclass(frozen=True)
class Attribution:
    """An engine's answer over the columns its estimator sees: ``(k,)`` and ``(n, f, k)``."""

    base_values: np.ndarray
    contributions: np.ndarray


def two_sided(base: np.ndarray, contributions: np.ndarray) -> Attribution:
    """A binary model's single output (toward class 1) as two: toward class 0 it is negated."""
    base = np.atleast_1d(np.asarray(base, dtype=np.float64)).reshape(-1)[:1]
    values = np.asarray(contributions, dtype=np.float64).reshape(len(contributions), -1, 1)
    return Attribution(np.concatenate([-base, base]), np.concatenate([-values, values], axis=2))
