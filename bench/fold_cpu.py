"""The fold alone, in the benchmark's own process: a quieter measure for comparing versions.

``make bench --only fold`` runs :class:`~streams.service.fold.EventFolder` over the benchmark's
records in batches against the stack's Redis, with no Kafka, no worker to start and no load
generator on the cores, and reports the CPU time per event. A full ingest moves ±10 % between
runs on a shared machine; this moved ±5 %. It measures the fold, not the system: the ingest
stays the figure the targets are judged by.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from prometheus_client import CollectorRegistry

from bench.workload import bench_records
from streams.adapters.redis.store import RedisStore
from streams.core import compiled
from streams.core.policy import load_default_policy
from streams.core.timeline import constant
from streams.metrics import Metrics
from streams.ports import InboundRecord
from streams.runtime.tuning import collection_deferred
from streams.service.fold import EventFolder
from streams.service.replay import NothingPublished
from streams.settings import Settings
from tests.conftest import cleanup, isolated

#: Records per batch: about what a worker's batches hold under a backlog of this size.
BATCH_RECORDS = 20_000
#: Partitions the records are spread over (as the event topics' default).
PARTITIONS = 12


async def fold_cpu(base: Settings, events: int, users: int, rounds: int) -> dict[str, Any]:
    """CPU microseconds per event of folding ``events`` over ``users`` from an empty store,
    ``rounds`` times (the median reported, with every round's figure)."""
    settings = isolated(base)
    compiled.use_compiled(settings.compiled_core)
    timeline = constant(load_default_policy())
    records = [
        InboundRecord(topic, i % PARTITIONS, i, key, value, time.time())
        for i, (topic, key, value) in enumerate(bench_records(events, users, 13, settings))
    ]
    cpu_us: list[float] = []
    wall_us: list[float] = []
    try:
        for _ in range(rounds):
            await cleanup(settings, topics=False)
            store = RedisStore.connect(settings, Metrics(CollectorRegistry()))
            try:
                await store.ensure_layout()
                folder = EventFolder(
                    settings,
                    store,
                    NothingPublished(),
                    Metrics(CollectorRegistry()),
                    lambda: timeline,
                )
                apply = collection_deferred(folder.process)
                cpu, wall, applied = time.process_time(), time.perf_counter(), 0
                for start in range(0, len(records), BATCH_RECORDS):
                    report = await apply(records[start : start + BATCH_RECORDS])
                    applied += sum(report.applied.values())
                if applied != events:  # a fold that refused records measured less work
                    raise RuntimeError(f"{applied} of {events} events applied")
                cpu_us.append(round((time.process_time() - cpu) / events * 1e6, 1))
                wall_us.append(round((time.perf_counter() - wall) / events * 1e6, 1))
            finally:
                await store.close()
    finally:
        await cleanup(settings, topics=False)
    return {
        "events": events,
        "users": users,
        "batch_records": BATCH_RECORDS,
        "redis_key_prefix": settings.redis_key_prefix,  # its own, deleted after
        "compiled_core": compiled.active(),
        "cpu_us_per_event": round(statistics.median(cpu_us), 1),
        "cpu_us_per_event_runs": cpu_us,
        "wall_us_per_event": round(statistics.median(wall_us), 1),
    }
