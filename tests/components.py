"""Optional components the tests need: skipped on a developer's machine, never in CI.

CI installs every extra the tests use (``.ci/run`` installs ``.[test]``). There (``CI``
set, as CI services do) a missing module fails the test that needs it, naming it: a
skip would leave CI green without the test having run. Elsewhere the test is skipped,
saying what to install.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def require_module(name: str, install: str) -> ModuleType:
    """The module *name*, or a skip (a failure in CI) saying ``install`` gets it."""
    if in_ci():
        try:
            return importlib.import_module(name)
        except ImportError as e:
            pytest.fail(f"{name} is not installed ({e}): {install}; CI must not skip", False)
    module: ModuleType = pytest.importorskip(name, reason=install)
    return module
