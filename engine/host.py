"""What this process may use of the machine it runs on.

`os.cpu_count()` counts the host's CPUs: in a container limited to 2 CPUs on a 64-core host it says
64, and `tasks.max`'s default would start 64 workers per flow. The CPUs this process may use are the
fewest of its CPU affinity and its cgroup's CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` /
`cpu.cfs_period_us`, the tightest of the cgroup and its ancestors), rounded up, at least 1.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path


def usable_cpus(root: Path = Path("/"), affinity: Callable[[], set[int]] | None = None) -> int:
    if affinity is None:
        affinity = (lambda: os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
            (lambda: set(range(os.cpu_count() or 1)))
    cpus = len(affinity()) or 1
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def cgroup_cpu_quota(root: Path = Path("/")) -> float | None:
    """The cgroup's CPU limit in CPUs (quota / period), or None when there is none or it cannot be read."""
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            limits += [_v2_limit(d) for d in _with_ancestors(root / "sys/fs/cgroup", path)]
        elif "cpu" in controllers.split(","):
            for mount in ("sys/fs/cgroup/cpu,cpuacct", "sys/fs/cgroup/cpu"):
                if (root / mount).is_dir():
                    limits += [_v1_limit(d) for d in _with_ancestors(root / mount, path)]
                    break
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def _with_ancestors(mount: Path, path: str) -> list[Path]:
    parts = [p for p in path.strip("/").split("/") if p]
    return [mount.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def _v2_limit(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_limit(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period
