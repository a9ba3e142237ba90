"""The soak scenario: the README's worker under steady load for a long time, its resident
memory sampled throughout (``make bench-soak``; 30 minutes at 2,000 events/s by default).

Memory that grows with time under a steady load is a leak whatever the absolute figure, so
the result is the growth over the run after a warm-up (caches filling, the allocator reaching
its working set), per process and as a least-squares slope, beside the peak. A process's
memory also rises in steps to the working set of the largest batch it has folded, which it
keeps: each step is reported with the largest batch folded since the sample before it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.echo import REPLY_FETCH_WAIT_MS
from bench.process import child_pids, rss_kib
from bench.run import Pacer, group_is, summary_ms
from bench.workload import Record, bench_records, bench_request
from streams.adapters.kafka.admin import ensure_topics
from streams.adapters.kafka.client import client_options, producer_options
from streams.runtime.fold_process import fold_count
from streams.settings import Settings
from streams.topics import Topics
from tests.conftest import cleanup, isolated
from tests.e2e.conftest import WorkerProcess, free_port
from tests.support import committed_lag, wait_for

#: A rise of the folds' resident memory between two samples reported as a step (MiB).
STEP_MIB = 1.0
#: The worker's histogram of records per batch (every fold's, summed on its /metrics).
BATCH_SIZE_BUCKETS = "creditline_batch_size_records_bucket"


@dataclass(frozen=True)
class RssSample:
    """Resident memory of the worker and its fold process at one instant of the run, and the
    largest batch folded since the sample before (a bucket's upper bound; None: no batch or
    not read; ``inf``: above the last bucket)."""

    minute: float
    worker_mib: float
    fold_mib: float
    largest_batch: float | None = None

    @property
    def total_mib(self) -> float:
        """Both processes (pages still shared since the fork count twice)."""
        return self.worker_mib + self.fold_mib


def slope_per_10_minutes(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (minute, MiB) points, in MiB per 10 minutes (0 for fewer than
    two distinct minutes)."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return 10 * sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def rss_trend(samples: Sequence[RssSample], warmup_minutes: float) -> dict[str, Any]:
    """How resident memory moved after the warm-up: first and last sample, peak, growth and
    slope, per process and for both."""
    settled = [s for s in samples if s.minute >= warmup_minutes] or list(samples)
    if not settled:
        return {}
    first, last = settled[0], settled[-1]
    trend: dict[str, Any] = {"warmup_minutes": warmup_minutes, "samples": len(settled)}
    for name in ("worker", "fold", "total"):
        values = [(s.minute, getattr(s, f"{name}_mib")) for s in settled]
        start, end = getattr(first, f"{name}_mib"), getattr(last, f"{name}_mib")
        trend[name] = {
            "after_warmup_mib": round(start, 1),
            "at_end_mib": round(end, 1),
            "peak_mib": round(max(v for _, v in values), 1),
            "growth_mib": round(end - start, 1),
            "growth_ratio": round(end / start, 3) if start else None,
            "slope_mib_per_10_min": round(slope_per_10_minutes(values), 2),
        }
    return trend


def largest_batch_bound(
    before: Mapping[float, float], after: Mapping[float, float]
) -> float | None:
    """The upper bound of the largest batch folded between two readings of the cumulative
    batch-size histogram (bucket bound → count): the least bound whose count rose by as
    many batches as the whole; None when no batch was folded."""
    total = after.get(math.inf, 0.0) - before.get(math.inf, 0.0)
    if total <= 0:
        return None
    return next(le for le in sorted(after) if after[le] - before.get(le, 0.0) >= total)


def rss_steps(samples: Sequence[RssSample], least_mib: float = STEP_MIB) -> list[dict[str, Any]]:
    """Where the folds' resident memory rose by ``least_mib`` or more from one sample to the
    next, with the largest batch folded in between: a step that follows a larger batch than
    the windows before is the allocator's high-water mark, not a leak."""
    return [
        {
            "minute": round(now.minute, 1),
            "fold_mib": [round(before.fold_mib, 1), round(now.fold_mib, 1)],
            "largest_batch_at_most": _bound_text(now.largest_batch),
        }
        for before, now in pairwise(samples)
        if now.fold_mib - before.fold_mib >= least_mib
    ]


def _bound_text(bound: float | None) -> str | None:
    if bound is None:
        return None
    return "above the last bucket" if math.isinf(bound) else f"{bound:,.0f}"


def batch_size_buckets(worker: WorkerProcess) -> dict[float, float]:
    """The worker's batch-size histogram, cumulative: bucket bound → batches (empty when its
    /metrics does not answer)."""
    try:
        samples = worker.samples().get(BATCH_SIZE_BUCKETS, {})
    except OSError:
        return {}
    return {float(dict(labels)["le"]): count for labels, count in samples.items()}


def by_window(points: Sequence[tuple[float, float]], width_minutes: float) -> list[dict[str, Any]]:
    """Latency summaries of (minute sent, seconds) points per window of ``width_minutes``
    from the start: a tail that grows as the run goes on shows here, not in the totals."""
    if width_minutes <= 0:
        raise ValueError("the window must be positive")
    windows: dict[int, list[float]] = {}
    for minute, seconds in points:
        windows.setdefault(int(minute // width_minutes), []).append(seconds)
    return [
        {"from_minute": round(i * width_minutes, 2), **summary_ms(values)}
        for i, values in sorted(windows.items())
    ]


def _sample(worker: WorkerProcess, started: float, largest_batch: float | None) -> RssSample:
    assert worker.process is not None
    pid = worker.process.pid
    folds = child_pids(pid)
    return RssSample(
        minute=(time.perf_counter() - started) / 60,
        worker_mib=rss_kib(pid) / 1024,
        fold_mib=sum(rss_kib(child) for child in folds) / 1024,
        largest_batch=largest_batch,
    )


async def soak(
    base: Settings,
    minutes: float,
    event_rate: float,
    request_rate: float,
    users: int,
    logs: Path,
    sample_seconds: float = 30.0,
    warmup_minutes: float = 5.0,
) -> dict[str, Any]:
    """Run ``creditline worker`` (role ``all``) for ``minutes`` under events and loan requests,
    sampling its resident memory; then the trend, the decisions' latency and the lag."""
    settings = isolated(base, partitions=12, web_port=free_port())
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    seconds = minutes * 60
    events = bench_records(int(event_rate * seconds) + 1000, users, seed=17, settings=settings)
    worker = WorkerProcess(settings, logs / "soak.log")
    producer = AIOKafkaProducer(**producer_options(settings), linger_ms=2)
    replies = AIOKafkaConsumer(
        topics.loan_decisions,
        **client_options(settings),
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=REPLY_FETCH_WAIT_MS,
    )
    samples: list[RssSample] = []
    latencies: list[tuple[float, float]] = []  # (minute sent, seconds to the answer)
    sent_at: dict[str, float] = {}
    try:
        await producer.start()
        await replies.start()
        worker.start()
        await wait_for(
            lambda: group_is(settings, ("Stable", fold_count(settings))),
            timeout=120,
            message="fold",
        )
        started = time.perf_counter()

        def request(i: int) -> Record:
            sent_at[f"soak-{i}"] = time.perf_counter()
            return bench_request(topics.loan_requests, f"soak-{i}", f"b{i % users:07d}")

        async def sample() -> None:
            buckets = await asyncio.to_thread(batch_size_buckets, worker)
            while True:
                read = await asyncio.to_thread(batch_size_buckets, worker)
                largest = largest_batch_bound(buckets, read) if buckets and read else None
                buckets = read or buckets
                samples.append(_sample(worker, started, largest))
                if (elapsed := time.perf_counter() - started) >= seconds:
                    return
                await asyncio.sleep(min(sample_seconds, max(0.0, seconds - elapsed)))

        async def collect() -> None:
            deadline = started + seconds + 10
            while time.perf_counter() < deadline:
                for batch in (await replies.getmany(timeout_ms=100)).values():
                    arrived = time.perf_counter()
                    for r in batch:
                        sent = sent_at.pop(json.loads(r.value)["request_id"], None)
                        if sent is not None:
                            latencies.append(((sent - started) / 60, arrived - sent))

        event_pacer, request_pacer = Pacer(producer, event_rate), Pacer(producer, request_rate)
        await asyncio.gather(
            event_pacer.run(lambda _: next(events), seconds),
            request_pacer.run(request, seconds),
            sample(),
            collect(),
        )
        lag = await committed_lag(settings, topics.events)
        return {
            "minutes": minutes,
            "event_rate": event_rate,
            "request_rate": request_rate,
            "users": users,
            "events_sent": event_pacer.sent,
            "rss": rss_trend(samples, warmup_minutes),
            "rss_steps": rss_steps(samples),
            "rss_samples": [
                [
                    round(s.minute, 2),
                    round(s.worker_mib, 1),
                    round(s.fold_mib, 1),
                    _bound_text(s.largest_batch),
                ]
                for s in samples
            ],
            "decisions": summary_ms([seconds for _, seconds in latencies]),
            "decisions_by_window": by_window(latencies, max(1.0, minutes / 6)),
            "requests_answered": f"{len(latencies)} of {request_pacer.sent}",
            "lag_at_end": lag,
        }
    finally:
        worker.stop()
        await replies.stop()
        await producer.stop()
        await cleanup(settings)
