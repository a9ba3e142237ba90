"""Process tuning for a worker that folds events."""

from __future__ import annotations

import ctypes
import gc
import os
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


#: The kernel's page size, in which ``/proc/self/statm`` counts resident memory.
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
PROC_STATM = Path("/proc/self/statm")

#: Where the kernel mounts the cgroup hierarchies, and which groups this process is in.
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def usable_cores(root: Path = CGROUP_ROOT, membership: Path = PROC_CGROUP) -> int:
    """The cores this process may keep busy: its CPU affinity, lowered to the tightest CPU
    quota of its cgroup and the groups above it (a container's CPU limit, a systemd
    ``CPUQuota=``), rounded down; at least 1. The cores a machine has over-count in a
    container, where the quota, not the cores seen, bounds the work."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quotas = [q for q in _cgroup_cpu_quotas(root, membership) if q is not None]
    return max(1, min([cores or 1, *(int(q) for q in quotas)]))


def _cgroup_cpu_quotas(root: Path, membership: Path) -> list[float | None]:
    """The CPU quotas (in cores) of this process's cgroup and its ancestors, v2 (``cpu.max``)
    or v1 (the ``cpu`` controller's ``cpu.cfs_quota_us``); None where a group sets none."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return []
    quotas: list[float | None] = []
    for line in lines:
        fields = line.split(":", 2)  # hierarchy-ID:controller-list:cgroup-path
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if controllers == "":  # v2: the unified hierarchy
            base, read = root if (root / "cgroup.controllers").exists() else root / "unified", _v2
        elif "cpu" in controllers.split(","):
            base, read = root / controllers, _v1
        else:
            continue
        group = base / path.lstrip("/")
        quotas.extend(read(d) for d in [group, *group.parents] if d.is_relative_to(base))
    return quotas


def _v2(group: Path) -> float | None:
    try:
        quota, period = (group / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1(group: Path) -> float | None:
    try:
        quota = int((group / "cpu.cfs_quota_us").read_text())
        period = int((group / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def tune_garbage_collector() -> None:
    """Fewer, cheaper cyclic-GC passes for a process that folds events.

    A batch allocates hundreds of thousands of short-lived objects; at Python's default
    thresholds the collector runs every 700 allocations and keeps re-scanning the long-lived
    objects of Faust, aiokafka and pydantic (a large share of a busy worker's CPU, measured
    in docs/sizing.md). Objects built at start-up are frozen out of collection, and young
    objects are collected less often (cycles are rare on the hot path; their memory is
    reclaimed a little later).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def collection_deferred(
    handle: Callable[[T], Awaitable[R]],
) -> Callable[[T], Coroutine[Any, Any, R]]:
    """``handle`` with the cyclic garbage collector paused while it runs.

    A batch's records, states and writes all live until the batch ends, so each collection
    inside it re-scans them without freeing any (5 % of a backfill's CPU, docs/sizing.md).
    Once it ends, reference counting has freed them: the collector, resumed, counts only
    what is left, and collects as usual when that is enough. Cycles made inside wait for the
    batch's end. A collector already paused (by someone else) is left paused.
    """

    async def deferred(argument: T) -> R:
        if not gc.isenabled():
            return await handle(argument)
        gc.disable()
        try:
            return await handle(argument)
        finally:
            gc.enable()

    return deferred


def resident_bytes(statm: Path = PROC_STATM) -> int:
    """This process's resident memory (0 where ``/proc`` is not there)."""
    try:
        return int(statm.read_text().split()[1]) * PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def memory_returner() -> Callable[[], int] | None:
    """A function that hands the free pages of the C heap back to the operating system and
    says how many bytes of resident memory that gave back; None where the C library has no
    ``malloc_trim`` (it is glibc's).

    glibc keeps what a process frees for reuse: after a burst (a 5,000-record batch) a
    fold held 5.5 MiB more for good, and each larger batch than any before raised its
    resident memory by another step (the soak in docs/sizing.md). ``malloc_trim(0)`` also
    releases free pages inside the heap, not only at its top. It walks the heap (0.2 ms with
    nothing to give back, 6-12 ms releasing tens of MiB of a fragmented one), so it runs
    every few seconds, not per batch.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def give_back() -> int:
        before = resident_bytes()
        trim(0)
        return max(0, before - resident_bytes())

    return give_back
