"""What a benchmarked process used, read from /proc, its child processes included (a role-all
worker's fold process)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def child_pids(pid: int) -> list[int]:
    """The direct children of a process (a thread that ends while they are read had none
    that count: its entry is gone)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "children").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        children.extend(int(child) for child in text.split())
    return children


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
    own = own_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())
    return own + sum(tree_cpu_seconds(child) for child in child_pids(pid))


#: Fields of /proc/stat's ``cpu`` line, in order (jiffies): user nice system idle iowait irq
#: softirq steal (guest time is inside user already).
_IDLE, _IOWAIT, _STEAL = 3, 4, 7


def machine_jiffies(stat: str) -> tuple[int, ...]:
    """The machine's CPU time by kind (user … steal), from the text of /proc/stat."""
    first = stat.split("\n", 1)[0].split()
    if first[0] != "cpu":
        raise ValueError("not /proc/stat: its first line is the 'cpu' total")
    return tuple(int(v) for v in first[1:9])


def own_cpu_seconds(stat: str) -> float:
    """User + system CPU seconds of one process (all its threads), from /proc/PID/stat."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuReading:
    """CPU time used so far: the machine's by kind, and each named group's per process."""

    wall: float
    machine: tuple[int, ...]
    groups: Mapping[str, Mapping[int, float]]


def cores_used(before: CpuReading, after: CpuReading, cpus: int) -> dict[str, float]:
    """Cores busy between two readings: the machine's (``busy``, of ``cpus``; ``steal``: time
    the hypervisor took), then each group's, counting the processes seen at both readings
    (one that started or ended between them is left out). A figure per group lets a slow
    run say which process took the cores."""
    seconds = after.wall - before.wall
    spent = [b - a for a, b in zip(before.machine, after.machine, strict=True)]
    total = sum(spent)
    if seconds <= 0 or total <= 0:
        raise ValueError("the readings must be in order, time apart")
    idle = spent[_IDLE] + spent[_IOWAIT]
    used = {
        "busy": round(cpus * (total - idle) / total, 2),
        "steal": round(cpus * spent[_STEAL] / total, 2),
    }
    for name, pids in after.groups.items():
        earlier = before.groups.get(name, {})
        common = [pid for pid in pids if pid in earlier]
        if common:
            used[name] = round(sum(pids[p] - earlier[p] for p in common) / seconds, 2)
    return used


def pids_running(marker: str) -> list[int]:
    """Processes whose command line contains ``marker`` (a broker's main class, a server's
    name), this one's excluded."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:  # ended meanwhile, or not ours to read
            continue
        if marker.encode() in command:
            found.append(int(entry.name))
    return found


def read_cpu(groups: Mapping[str, Sequence[int]]) -> CpuReading:
    """Read the machine's CPU time and each group's processes' (one that has ended is
    skipped)."""
    wall = time.monotonic()
    machine = machine_jiffies(Path("/proc/stat").read_text())
    read: dict[str, dict[int, float]] = {}
    for name, pids in groups.items():
        read[name] = {}
        for pid in pids:
            try:
                read[name][pid] = own_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())
            except OSError:
                continue
    return CpuReading(wall, machine, read)
