"""The runtime and codecs layers never pull in the web framework."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module", ["flaskserve", "flaskserve.runtime", "flaskserve.codecs.records"]
)
def test_no_flask_import(module: str) -> None:
    web = "('flask', 'werkzeug')"
    code = (
        f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in {web}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
