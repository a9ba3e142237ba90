"""Process tuning for a worker that folds events."""

from __future__ import annotations

import gc


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
