"""How many workers `flaskserve serve` starts when not told: the cores it may really use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flaskserve.serving.gunicorn import default_workers


def _cores() -> int:
    cores = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        cores = min(cores, len(os.sched_getaffinity(0)))
    return cores


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", None),  # no quota: the cores
        ("100000 100000\n", 1),  # a limit of one CPU
        ("150000 100000\n", 2),  # 1.5 CPUs: rounded up
        ("50000 100000\n", 1),  # half a CPU: still one worker
        ("garbage\n", None),
    ],
)
def test_the_cgroup_quota_caps_the_workers(
    tmp_path: Path, cpu_max: str, expected: int | None
) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    want = _cores() if expected is None else min(expected, _cores())
    assert default_workers(path) == want


def test_without_a_cgroup_file_the_cores_count(tmp_path: Path) -> None:
    assert default_workers(tmp_path / "missing") == _cores()


def test_a_quota_above_the_cores_does_not_add_workers(tmp_path: Path) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(f"{(_cores() + 8) * 100000} 100000\n")
    assert default_workers(path) == _cores()
