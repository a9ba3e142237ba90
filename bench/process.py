"""What a benchmarked process used, read from /proc, its child processes included (a role-all
worker's fold process)."""

from __future__ import annotations

import os
from pathlib import Path


def child_pids(pid: int) -> list[int]:
    """The direct children of a process."""
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def _status_kib(pid: int, field: str) -> int:
    """A KiB figure of /proc/PID/status (``VmRSS``, ``VmHWM``), 0 when absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def peak_rss_kib(pid: int) -> int:
    """VmHWM of a process and its children, KiB (pages shared after a fork count twice)."""
    return _status_kib(pid, "VmHWM") + sum(peak_rss_kib(child) for child in child_pids(pid))


def rss_kib(pid: int) -> int:
    """VmRSS of one process now, KiB."""
    return _status_kib(pid, "VmRSS")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (all its threads) and its children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(tree_cpu_seconds(child) for child in child_pids(pid))
