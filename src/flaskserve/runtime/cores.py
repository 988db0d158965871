"""How many cores this process may really use."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The smallest of the machine's cores, the process's affinity and its cgroup quota.

    In a container ``os.cpu_count()`` sees every core of the host; the cores the
    process is pinned to and the cgroup's CPU quota (a Kubernetes CPU limit) are
    what it really gets, so the smallest of the three counts, rounded up.
    """
    cores = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        cores = min(cores, len(os.sched_getaffinity(0)))
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):  # no cgroup v2 here, or a format this does not know
        pass
    return max(cores, 1)
