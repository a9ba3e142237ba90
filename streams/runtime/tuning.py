"""Process tuning for a worker that folds events."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


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
