"""The parity gate's figures: a compiled model's answers against the reference's.

Labels must be identical and probabilities (or, relatively, regression values)
within :data:`TOLERANCE`. The large-batch session (every usable core, see
:mod:`flaskserve.runtime.compiled`) is held to the same rules: summing a
booster's trees in another order changes the last bits of a score, so its
answers are scored too, not required to be bit for bit one thread's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .runtime.base import Prediction
from .runtime.compiled import parallel_threads

TOLERANCE = 1e-6


def score(task: str, got: Prediction, expected: dict[str, np.ndarray]) -> dict[str, Any]:
    """The gate's figures: *got* (the compiled model's answers) against *expected*."""
    labels = expected["predict"]
    if task == "classification":
        mismatches = int(np.sum(got.predictions != labels))
        diff = (
            float(np.abs(got.probabilities - expected["proba"]).max())
            if "proba" in expected and got.probabilities is not None
            else 0.0
        )
    else:
        gap = np.abs(got.predictions.astype(np.float64) - labels) / np.maximum(1.0, np.abs(labels))
        mismatches, diff = int(np.sum(gap > TOLERANCE)), float(gap.max())
    ties = _count_ties(expected.get("proba"))
    passed = mismatches == 0 and diff <= TOLERANCE
    return {
        "passed": passed,
        "rows": len(labels),
        "mismatches": mismatches,
        "max_difference": diff,
        "ties": ties,
    }


def _count_ties(proba: np.ndarray | None) -> int:
    if proba is None or proba.shape[1] < 2:
        return 0
    top = np.sort(proba, axis=1)[:, -2:]
    return int(np.sum(top[:, 0] == top[:, 1]))


def score_parallel(
    task: str, runs: list[Prediction], expected: dict[str, np.ndarray]
) -> dict[str, Any]:
    """The large-batch session's figures: the worst of its *runs* (whole batches, small ones)."""
    scores = [score(task, run, expected) for run in runs]
    worst = max(scores, key=lambda s: (s["mismatches"], s["max_difference"]))
    return {
        "threads": parallel_threads(),
        "passed": all(s["passed"] for s in scores),
        "mismatches": worst["mismatches"],
        "max_difference": worst["max_difference"],
    }


def gate_summary(record: dict[str, Any]) -> list[str]:
    """A manifest's ``compiled`` record as ``flaskserve compile`` prints it."""
    reason = f" ({record['reason']})" if "reason" in record else ""
    lines = [f"compiled: {record['status']}{reason}"]
    parity = record.get("parity") or {}
    if parity:
        lines.append(
            f"parity gate: {parity['rows']} rows, {parity['mismatches']} mismatches,"
            f" max difference {parity['max_difference']:.3g}, {parity['ties']} exact ties"
        )
    parallel = parity.get("parallel")
    if parallel:
        verdict = "passed" if parallel["passed"] else "failed: large batches run on one thread"
        lines.append(
            f"large batches on {parallel['threads']} threads: {verdict}"
            f" ({parallel['mismatches']} mismatches, max difference"
            f" {parallel['max_difference']:.3g})"
        )
    native = record.get("native")
    if native:
        figures = native.get("parity")
        detail = (
            f" ({figures['rows']} rows, {figures['mismatches']} mismatches, max difference"
            f" {figures['max_difference']:.3g})"
            if figures
            else f" ({native.get('reason')})"
        )
        lines.append(f"large batches on native code: {native['status']}{detail}")
    return lines
