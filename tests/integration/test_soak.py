"""Soak: 40 s at concurrency 16, 10% invalid bodies (the long run is a benchmark).

The test runs ``benchmarks/soak.py`` as a user would, against its own ``flaskserve serve``
with two workers, and reads the ``SOAK_RESULT`` line it prints last. Gates: no 5xx, no
transport error, no wrong answer to a valid row, every invalid body a 4xx JSON error, the
same two worker PIDs from start to end, and each worker's RSS growing less than 2 MB over
the 30 s after a 10 s warm-up (a leak of 100 bytes a request grows about 3 MB). The long
run is on demand: ``python benchmarks/soak.py --duration 900``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from liveserver import on_both_servers

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"
DURATION_S = 40
WARMUP_S = 10


def _soak_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flaskserve_soak", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_slope_is_a_least_squares_fit() -> None:
    soak = _soak_module()
    minutes = [i / 60 for i in range(50)]
    assert soak.slope(minutes, [75.0 + 0.5 * m for m in minutes]) == pytest.approx(0.5)
    assert soak.slope(minutes, [75.0 + (i % 2) * 0.1 for i in range(50)]) == pytest.approx(
        0.0, abs=0.05
    )  # allocator noise around a flat line is not growth
    assert soak.slope([1.0], [75.0]) == 0.0


def _run_soak(model_dir: Path, http_server: str) -> tuple[dict[str, Any], str]:
    command = [sys.executable, str(SCRIPT), "--duration", str(DURATION_S)]
    command += ["--server", http_server]
    command += ["--concurrency", "16", "--invalid", "0.10", "--workers", "2"]
    command += ["--warmup", str(WARMUP_S), "--model-dir", str(model_dir)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=DURATION_S + 120, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("SOAK_RESULT ")]
    assert lines, f"no SOAK_RESULT line (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("SOAK_RESULT "))
    result["exit_code"] = done.returncode
    report = "\n".join(line for line in done.stdout.splitlines() if line not in lines)
    return result, report


@on_both_servers(in_ci=False)  # 60 s
def test_soak(model_dir: Path, http_server: str) -> None:
    result, report = _run_soak(model_dir, http_server)
    print(f"\n{report}")
    assert result["server_errors"] == 0, result["examples"]
    assert result["transport_errors"] == 0, result["examples"]
    assert result["wrong_answers"] == 0, result["examples"]
    assert result["unexpected"] == 0, result["examples"]
    kinds = result["by_kind"]
    assert set(kinds) == {"ok", "rejected"}, kinds
    assert 0.05 < kinds["rejected"] / result["requests"] < 0.15, kinds  # ~10% invalid
    # the load really ran: ~400 req/s here (the report above says), 2 req/s is the floor
    assert result["requests"] >= 2 * DURATION_S
    assert result["duration_s"] >= DURATION_S
    workers = result["workers"]
    assert len(result["workers_before"]) == 2, result
    assert result["workers_before"] == result["workers_after"] == result["workers_seen"]
    for pid, figures in workers.items():
        assert figures["samples_after_warmup"] >= DURATION_S - WARMUP_S - 2, (pid, figures)
        # 30 s is too short for a slope (a 0.5 MB step read as 1.4 MB/min in one run): the
        # growth is gated; the 900 s benchmark run gates the slope
        assert figures["rss_mb_end"] - figures["rss_mb_after_warmup"] < 2.0, (pid, figures)
        assert figures["fds_end"] - figures["fds_after_warmup"] <= 2, (pid, figures)  # no leak
    assert result["server_exit_code"] == 0
    assert result["failures"] == []
    assert result["exit_code"] == 0
