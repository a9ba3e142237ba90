"""Process tuning for a worker that folds events."""

from __future__ import annotations

import gc
import os
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


#: cgroup v2's CPU bandwidth limit of this process's group: ``<quota> <period>`` or ``max``.
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The cores this process may keep busy: its CPU affinity, lowered to a cgroup v2 CPU
    quota (a container's CPU limit) rounded down; at least 1. A machine's core count alone
    over-counts in a container, where the quota, not the cores seen, bounds the work."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            cores = min(cores, int(quota) // int(period))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit readable: the affinity decides
    return max(1, cores)


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
