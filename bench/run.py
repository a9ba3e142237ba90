"""The benchmark scenarios. Run with ``make bench`` (or ``python -m bench --help``)."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.echo import REPLY_FETCH_WAIT_MS, echo_process
from bench.lag import LOOK_SECONDS, BacklogLag
from bench.peers.quix import quix_ingest
from bench.probes import POLL_SECONDS, ProbeSchedule
from bench.process import (
    child_pids,
    cores_used,
    peak_rss_kib,
    pids_running,
    read_cpu,
    tree_cpu_seconds,
)
from bench.workload import Record, bench_records, bench_request
from streams.adapters.kafka.admin import ensure_topics
from streams.adapters.kafka.client import client_options, producer_options
from streams.adapters.kafka.read import topic_partitions
from streams.adapters.redis.client import redis_client
from streams.adapters.redis.keys import KeyLayout
from streams.core import compiled
from streams.runtime.fold_process import fold_count
from streams.settings import Settings
from streams.topics import Topics
from tests.conftest import cleanup, isolated
from tests.e2e.conftest import WorkerProcess, free_port
from tests.support import group_members, produce, wait_for


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max of seconds, in milliseconds."""
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 0.50) * 1000, 1),
        "p95_ms": round(percentile(values, 0.95) * 1000, 1),
        "p99_ms": round(percentile(values, 0.99) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1) if values else float("nan"),
    }


def histogram_quantile(
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]],
    name: str,
    q: float,
    **labels: str,
) -> float | None:
    """The q-quantile of a Prometheus histogram scraped from a worker, interpolated within
    its bucket as PromQL's ``histogram_quantile`` does; None without observations."""
    buckets: dict[float, float] = {}
    for key, value in samples.get(f"{name}_bucket", {}).items():
        found = dict(key)
        if all(found.get(k) == v for k, v in labels.items()):
            bound = float(found["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] == 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower
            share = (rank - below) / (buckets[bound] - below) if buckets[bound] > below else 1
            return lower + (bound - lower) * share
        lower, below = bound, buckets[bound]
    return lower


#: Where a decision's time goes, from the worker's own histograms: (figure, metric, labels).
STAGES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("decision_sent", "creditline_decision_latency_seconds", {}),
    ("redis_read_state", "creditline_redis_operation_seconds", {"operation": "read_state"}),
    (
        "redis_remember_decision",
        "creditline_redis_operation_seconds",
        {"operation": "remember_decision"},
    ),
    ("fold_batch", "creditline_batch_processing_seconds", {}),
    ("fold_redis_save", "creditline_redis_operation_seconds", {"operation": "save"}),
)


def stages_ms(worker: WorkerProcess) -> dict[str, str]:
    """p50 / p99 of each of :data:`STAGES` as the worker measured them (bucket-interpolated),
    and how many batches its folds handled, of how many records on average."""
    samples = worker.samples()
    result: dict[str, str] = {}
    for figure, metric, labels in STAGES:
        p50, p99 = (histogram_quantile(samples, metric, q, **labels) for q in (0.5, 0.99))
        if p50 is not None and p99 is not None:
            result[figure] = f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
    batches = fold_batches(samples)
    if batches is not None:
        backfill = int(sum(samples.get("creditline_backfill_batches_total", {}).values()))
        result["fold_batches"] = (
            f"{batches[0]:,}, {batches[1]:.1f} records each on average, "
            f"{backfill:,} by the backfill target"
        )
    return result


def fold_batches(
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]],
) -> tuple[int, float] | None:
    """How many batches the folds handled and their mean size, from the batch-size
    histogram's count and sum (every fold process's, summed); None before the first."""
    count = sum(samples.get("creditline_batch_size_records_count", {}).values())
    if not count:
        return None
    records = sum(samples.get("creditline_batch_size_records_sum", {}).values())
    return int(count), records / count


async def baseline_read(settings: Settings, count: int, parse_and_store: bool) -> float:
    """Records/s of a plain aiokafka consumer over the event topics: (a) read only, or
    (b) parse each value as JSON and write one pipelined Redis update per batch."""
    topics = Topics.from_settings(settings).events
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 << 20,
    )
    client = redis_client(settings)
    prefix = f"{settings.redis_key_prefix}:baseline"
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topics)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        started = time.perf_counter()
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            records = [r for batch in batches.values() for r in batch]
            seen += len(records)
            if parse_and_store and records:
                async with client.pipeline(transaction=False) as pipe:
                    for r in records:
                        doc = json.loads(r.value)
                        pipe.hincrby(f"{prefix}:{{{doc['user_id']}}}", "events", 1)
                    await pipe.execute()
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=2000)]
        for i in range(0, len(keys), 5000):
            await client.delete(*keys[i : i + 5000])
        await client.aclose()


async def used_memory(settings: Settings) -> int:
    client = redis_client(settings)
    try:
        info = await client.info("memory")
        return int(info["used_memory"])
    finally:
        await client.aclose()


#: A consumer group's states once a member has joined it.
JOINED_STATES = ("PreparingRebalance", "CompletingRebalance", "Stable")


async def ingest(
    base: Settings,
    events: int,
    users: int,
    workers: int,
    logs: Path,
    with_baselines: bool,
    with_peer: bool = False,
) -> dict[str, Any]:
    """Preload the topics, then time baselines, the worker(s) (each with the settings' fold
    processes) and (``with_peer``) the Quix Streams peer running creditline's core over the
    same records."""
    settings = isolated(base, partitions=12)
    folds = fold_count(settings)
    await ensure_topics(settings)
    try:
        records = list(bench_records(events, users, seed=11, settings=settings))
        started = time.perf_counter()
        await produce(settings, records)
        load_s = time.perf_counter() - started
        result: dict[str, Any] = {
            "events": events,
            "users": users,
            "workers": workers,
            "folds": folds,
            "load_seconds": round(load_s, 1),
        }
        if with_baselines:
            result["baseline_a_read_per_s"] = round(await baseline_read(settings, events, False))
            result["baseline_b_parse_store_per_s"] = round(
                await baseline_read(settings, events, True)
            )
        memory_before = await used_memory(settings)
        procs = [
            WorkerProcess(
                settings.model_copy(update={"web_port": free_port()}),
                logs / f"ingest-{workers}-{i}.log",
            )
            for i in range(workers)
        ]
        topics = Topics.from_settings(settings).events
        async with BacklogLag(settings, topics, settings.events_group) as lag:
            started = time.perf_counter()
            wall_started = time.time()
            for p in procs:
                p.start()
            # Watched as the peer is, by the group's committed offsets (a scrape of the
            # merged /metrics costs the worker CPU: both processes render a page). The end
            # is the workers' own instant of applying their last batch, read once after.
            # CPU spent before the group is formed is the processes' start (imports, clients):
            # per event it is counted apart, or a small run would look dearer than it is.
            startup_cpu = None
            while await lag.look() > 0:
                if any(p.process is not None and p.process.poll() is not None for p in procs):
                    raise RuntimeError(f"a worker exited before the backlog was folded ({logs})")
                # The start ends when the first member joins the group (its state leaves
                # Empty). Not when it is first Stable: with several folds the next one's join
                # comes milliseconds later and holds the group until the first batch is done.
                if startup_cpu is None and (await lag.members())[0] in JOINED_STATES:
                    startup_cpu = sum(tree_cpu_seconds(p.process.pid) for p in procs if p.process)
                await asyncio.sleep(LOOK_SECONDS)
        while sum(p.counter("creditline_records_applied_total") for p in procs) < events:  # noqa: ASYNC110 - polling another process
            await asyncio.sleep(1.0)  # committed: applied too (none is duplicate or rejected)
        # The newest batch of any fold: the worker's own page shows its stalest fold's.
        finished = max(
            stored
            for p in procs
            for stored in p.gauge_per_fold("creditline_last_batch_timestamp_seconds")
        )
        elapsed = (
            finished - wall_started if finished > wall_started else time.perf_counter() - started
        )
        result["scorer_per_s"] = round(events / elapsed)
        result["scorer_seconds"] = round(elapsed, 1)
        result["worker_peak_rss_mib"] = round(
            max(peak_rss_kib(p.process.pid) for p in procs if p.process) / 1024, 1
        )
        cpu = sum(tree_cpu_seconds(p.process.pid) for p in procs if p.process)
        result["scorer_cpu_seconds"] = round(cpu, 1)
        result["scorer_startup_cpu_seconds"] = round(startup_cpu or 0.0, 1)
        result["scorer_cpu_us_per_event"] = round((cpu - (startup_cpu or 0.0)) / events * 1e6, 1)
        batches = sum(p.counter("creditline_batch_size_records_count") for p in procs)
        batched = sum(p.counter("creditline_batch_size_records_sum") for p in procs)
        result["scorer_mean_batch_records"] = round(batched / batches) if batches else 0
        result["scorer_backfill_batches"] = round(
            sum(p.counter("creditline_backfill_batches_total") for p in procs)
        )
        result["scorer_batches"] = round(batches)
        result["scorer_compiled_core"] = settings.compiled_core and compiled.available()
        for p in procs:
            p.stop()
        memory_after = await used_memory(settings)
        result["redis_bytes_per_user"] = round((memory_after - memory_before) / users)
        if with_peer:
            peer = await quix_ingest(settings, events, logs, limit=max(600.0, 20 * elapsed))
            result |= peer
            result["ratio_vs_quix"] = round(result["scorer_per_s"] / peer["quix_per_s"], 2)
            result["cpu_ratio_vs_quix"] = round(peer["quix_cpu_seconds"] / cpu, 2)
        if with_baselines:
            result["ratio_vs_a"] = round(
                result["scorer_per_s"] / result["baseline_a_read_per_s"], 3
            )
            result["ratio_vs_b"] = round(
                result["scorer_per_s"] / result["baseline_b_parse_store_per_s"], 3
            )
        return result
    finally:
        await cleanup(settings)


class Pacer:
    """Sends records at a steady rate from a background task."""

    def __init__(self, producer: AIOKafkaProducer, rate: float) -> None:
        self.producer = producer
        self.rate = rate
        self.sent = 0

    async def run(self, make: Any, seconds: float) -> None:
        tick = 0.01
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            due = int(elapsed * self.rate) - self.sent
            for _ in range(max(0, due)):
                topic, key, value = make(self.sent)
                await self.producer.send(topic, value, key=key)
                self.sent += 1
            await asyncio.sleep(tick)


async def _start_at_end(settings: Settings, group: str, topics: Sequence[str]) -> None:
    """Commit ``group``'s offsets at the log end of ``topics``: the events produced during
    the echo baseline are not the scorer's to fold (a backlog would be measured instead)."""
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=group)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topics)
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.commit({tp: ends[tp] for tp in tps})
    finally:
        await consumer.stop()


async def _collect_replies(
    consumer: AIOKafkaConsumer,
    sent_at: dict[bytes, float],
    reply_id: Callable[[Any], bytes],
    latencies: list[float],
    *,
    deadline: float,
    finished: Callable[[], bool],
) -> None:
    """Each reply's latency (from its request's entry in ``sent_at``, popped when the reply
    arrives) into ``latencies``, until ``deadline`` or ``finished()``."""
    while time.perf_counter() < deadline and not finished():
        for batch in (await consumer.getmany(timeout_ms=50)).values():
            arrived = time.perf_counter()
            for r in batch:
                started = sent_at.pop(reply_id(r), None)
                if started is not None:
                    latencies.append(arrived - started)


async def _echo_beside(
    settings: Settings,
    asking: AIOKafkaProducer,
    topics: tuple[str, str],
    rate: float,
    seconds: float,
) -> list[float]:
    """The echo again, at ``rate``, while the scorer runs: a baseline that shares the cores
    with the fold and the decider, as the scorer's requests do (the first echo runs before
    the scorer starts)."""
    source, target = topics
    consumer = await _reply_consumer(settings, target)
    sent_at: dict[bytes, float] = {}
    latencies: list[float] = []

    def make(i: int) -> Record:
        value = f"beside-{i}".encode()
        sent_at[value] = time.perf_counter()
        return source, b"u", value

    pacing = asyncio.create_task(Pacer(asking, rate).run(make, seconds))
    collect = _collect_replies(
        consumer,
        sent_at,
        lambda r: r.value,
        latencies,
        deadline=time.perf_counter() + seconds + 10,
        finished=lambda: not sent_at and pacing.done(),
    )
    try:
        await asyncio.gather(pacing, collect)
    finally:
        await consumer.stop()
    return latencies


#: Requests per second of the echo run beside the scorer (few: it adds to the load it
#: measures).
ECHO_BESIDE_RATE = 20.0
#: How the scorer runs in the latency scenarios: ``default`` is the README's command
#: (``creditline worker``: role ``all``, the fold in a process of its own), ``inline`` the
#: same with the fold on the worker's event loop (``WORKER_FOLD=inline``), ``split`` an
#: events worker and a decisions worker started separately.
LAYOUTS = ("default", "inline", "split")
#: Freshness is reported for every probe and, apart, for those sent after the load's first
#: seconds: a worker that has just joined the group reads its first events with cold caches
#: and connections, and those few probes (up to ~0.5 s late) would otherwise be the p99.
WARMUP_SECONDS = 3.0


def _scorer_processes(
    settings: Settings, layout: str, logs: Path, event_workers: int, events_nice: int
) -> tuple[list[WorkerProcess], list[WorkerProcess]]:
    """The worker processes of a layout, and those whose /metrics count the fold."""
    if layout == "split":
        folders = [
            WorkerProcess(
                settings.model_copy(
                    update={
                        "worker_role": "events",
                        "web_port": free_port(),
                        "worker_nice": events_nice,
                    }
                ),
                logs / f"latency-split-events-{i}.log",
            )
            for i in range(event_workers)
        ]
        decider = WorkerProcess(
            settings.model_copy(update={"worker_role": "decisions", "web_port": free_port()}),
            logs / "latency-split-decisions.log",
        )
        return [*folders, decider], folders
    fold = "inline" if layout == "inline" else "process"
    one = WorkerProcess(
        settings.model_copy(update={"web_port": free_port(), "worker_fold": fold}),
        logs / f"latency-{layout}.log",
    )
    return [one], [one]


async def latency(
    base: Settings,
    seconds: float,
    event_rate: float,
    request_rate: float,
    logs: Path,
    layout: str = "default",
    event_workers: int = 1,
    events_nice: int = 0,
    drain_limit: float = 900.0,
) -> dict[str, Any]:
    """Decision latency and freshness while events stream in, next to a Kafka echo under the
    same event load; then how long the fold takes to catch up, and whether every event sent
    is accounted for (applied, duplicate or dead-lettered)."""
    settings = isolated(base, partitions=12, web_port=free_port())
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    echo_in, echo_out = f"{topics.loan_requests}.echo-in", f"{topics.loan_requests}.echo-out"
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    await admin.create_topics([NewTopic(echo_in, 12, 1), NewTopic(echo_out, 12, 1)])
    await admin.close()
    load = list(bench_records(int(event_rate * seconds * 2.2), 20000, seed=5, settings=settings))
    producer = AIOKafkaProducer(**producer_options(settings), linger_ms=2)
    await producer.start()
    # Requests come from a service of their own, as a lending app's backend sends them: an
    # aiokafka producer has one request in flight per broker, and requests sent beside the
    # event load waited for its batches to be acknowledged (tens of ms once the broker was
    # busy), in the client, before creditline or the echo could see them.
    asking = AIOKafkaProducer(**producer_options(settings), linger_ms=0)
    await asking.start()
    result: dict[str, Any] = {
        "layout": layout,
        "seconds": seconds,
        "event_rate": event_rate,
        "request_rate": request_rate,
    }
    if layout == "split":
        result |= {"event_workers": event_workers, "events_nice": events_nice}
    processes: list[WorkerProcess] = []
    echoing = AsyncExitStack()
    try:
        # 1. Echo baseline under the same event load, the echo in a process of its own (as
        # the worker is), here and beside the scorer.
        await echoing.enter_async_context(echo_process(settings, echo_in, echo_out))
        sent_at: dict[bytes, float] = {}
        latencies: list[float] = []
        echoed, _, _ = await _measure(
            settings,
            producer,
            asking,
            load,
            0,
            event_rate,
            request_rate,
            seconds,
            echo_out,
            lambda i: (echo_in, b"u", f"echo-{i}".encode()),
            lambda r: r.value,
            sent_at,
            latencies,
        )
        result["echo"] = summary_ms(echoed)
        # 2. The scorer, same load.
        processes, folders = _scorer_processes(settings, layout, logs, event_workers, events_nice)
        await _start_at_end(settings, settings.events_group, topics.events)
        for process in processes:
            process.start()
        # Measured once the fold consumes (its process starts beside the worker's loop).
        members = {"split": event_workers, "inline": 1}.get(layout, fold_count(settings))
        await wait_for(
            lambda: group_is(settings, ("Stable", members)), timeout=120, message="the fold"
        )
        sent_at, latencies = {}, []

        def request(i: int) -> Record:
            return bench_request(topics.loan_requests, f"lat-{i}", f"b{i % 20000:07d}")

        def decision_id(r: Any) -> bytes:
            return str(json.loads(r.value)["request_id"]).encode()

        start_offset = len(load) // 2
        watched = _cpu_groups(processes)
        cpu_before = read_cpu(watched)
        load_started = time.perf_counter()
        fresh: list[tuple[float, float]] = []
        probing = asyncio.create_task(_freshness(settings, producer, seconds, fresh))
        beside = asyncio.create_task(
            _echo_beside(settings, asking, (echo_in, echo_out), ECHO_BESIDE_RATE, seconds)
        )
        answered, events_sent, requests_sent = await _measure(
            settings,
            producer,
            asking,
            load,
            start_offset,
            event_rate,
            request_rate,
            seconds,
            topics.loan_decisions,
            request,
            decision_id,
            sent_at,
            latencies,
            key_of=lambda i: f"lat-{i}".encode(),
        )
        probes = await probing
        result["cpu_cores"] = cores_used(cpu_before, read_cpu(watched), os.cpu_count() or 1)
        result["scorer"] = summary_ms(answered)
        result["p99_over_echo_ms"] = round(result["scorer"]["p99_ms"] - result["echo"]["p99_ms"], 1)
        result["echo_beside"] = summary_ms(await beside)
        await echoing.aclose()
        result["p99_over_echo_beside_ms"] = round(
            result["scorer"]["p99_ms"] - result["echo_beside"]["p99_ms"], 1
        )
        result["requests_answered"] = f"{len(answered)} of {requests_sent}"
        result["freshness"] = summary_ms([delay for _, delay in fresh])
        result["freshness_after_warmup"] = summary_ms(
            [delay for sent, delay in fresh if sent >= WARMUP_SECONDS]
        )
        result["worker_stages"] = stages_ms(processes[-1])
        # 3. The fold catches up; every event sent is accounted for.
        result |= await _drain(settings, folders, events_sent + probes, drain_limit, load_started)
        # How far the arrivals outran the fold (the overload target asks for about 2): the
        # rate asked for is a guess until the run has measured the fold's pace beside it.
        pace = result["fold_per_s_under_load"]
        result["arrivals_over_fold_pace"] = round(event_rate / pace, 2) if pace > 0 else None
        return result
    finally:
        for process in processes:
            process.stop()
        await echoing.aclose()
        await producer.stop()
        await asking.stop()
        await cleanup(settings, also=(echo_in, echo_out))


def cost_growth(large: dict[str, Any], small: dict[str, Any]) -> float | None:
    """CPU per event of the larger ingest over the smaller one's (1.0: flat)."""
    big, little = large.get("scorer_cpu_us_per_event"), small.get("scorer_cpu_us_per_event")
    return round(big / little, 2) if big and little else None


def half_the_fold(results: dict[str, Any]) -> float:
    """Half the fold's capacity measured earlier in the run: its pace under overload (live
    events beside requests, what freshness is measured under), else its ingest rate (a
    backfill, alone), else 1,000 events/s. Over repeated overload runs, the median pace."""
    overload = results.get("overload") or {}
    repeated = (overload.get("repeated") or {}).get("fold_per_s_under_load") or {}
    pace = repeated.get("median", overload.get("fold_per_s_under_load"))
    if pace is None:
        pace = (results.get("ingest") or {}).get("scorer_per_s")
    return round(pace / 2) if pace else 1000.0


async def group_is(settings: Settings, state: tuple[str, int]) -> bool:
    """Whether the events group is in ``state`` (group state, member count)."""
    return await group_members(settings) == state


async def _drain(
    settings: Settings, folders: list[WorkerProcess], sent: int, limit: float, load_started: float
) -> dict[str, Any]:
    """Lag when the load stops (as Kafka sees it and as the workers report it), seconds until
    it is 0, and the events sent that the fold's counters do not account for. Also the fold's
    pace while the load ran (events folded per second of it, beside the requests): under
    overload, the fold's capacity on this machine, which the freshness scenario halves."""
    topics = Topics.from_settings(settings).events
    # The load has stopped: the topics' ends no longer move, and the drain is watched with one
    # request a look, not a new consumer and a request per partition.
    async with BacklogLag(settings, topics, settings.events_group) as watch:
        lag = await watch.look()
        load_seconds = time.perf_counter() - load_started
        # The workers' gauge (refreshed every LAG_INTERVAL_SECONDS): an operator's view of it.
        reported = max(
            sum(f.counter("creditline_consumer_lag_records", topic=t) for t in topics)
            for f in folders
        )
        started = time.perf_counter()
        while await watch.look() > 0:
            if time.perf_counter() - started > limit:
                break
            await asyncio.sleep(0.5)
    drained = time.perf_counter() - started
    counted = sum(
        f.counter(name, topic=t)
        for f in folders
        for t in topics
        for name in (
            "creditline_records_applied_total",
            "creditline_records_duplicate_total",
            "creditline_records_dead_lettered_total",
        )
    )
    return {
        "fold_per_s_under_load": round((sent - lag) / load_seconds),
        "lag_at_end_of_load": lag,
        "lag_reported_by_worker": round(reported),
        "drain_seconds": round(drained, 1),
        "events_sent": sent,
        "events_unaccounted": round(sent - counted),
        "applied_events": round(
            sum(
                f.counter("creditline_records_applied_total", topic=t)
                for f in folders
                for t in topics
            )
        ),
    }


async def _reply_consumer(settings: Settings, topic: str) -> AIOKafkaConsumer:
    """A started consumer of ``topic`` from its end, given a second to be assigned."""
    consumer = AIOKafkaConsumer(
        topic,
        **client_options(settings),
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=REPLY_FETCH_WAIT_MS,
    )
    await consumer.start()
    await asyncio.sleep(1.0)
    return consumer


def _cpu_groups(workers: Sequence[WorkerProcess]) -> dict[str, list[int]]:
    """The processes whose CPU a run reports, by what they are: the scorer's workers, their
    fold processes, the broker(s), Redis, and the benchmark itself with its helpers (the load
    generator, the echo) — on a 2-core machine they share, a slow run is told apart by which
    one took the cores."""
    worker_pids = [p.process.pid for p in workers if p.process is not None]
    own = os.getpid()
    return {
        "worker": worker_pids,
        "fold": [child for pid in worker_pids for child in child_pids(pid)],
        "kafka": pids_running("kafka.Kafka"),
        "redis": pids_running("redis-server"),
        "bench": [own, *(p for p in child_pids(own) if p not in worker_pids)],
    }


async def _measure(
    settings: Settings,
    producer: AIOKafkaProducer,
    asking: AIOKafkaProducer,
    load: list[Record],
    offset: int,
    event_rate: float,
    request_rate: float,
    seconds: float,
    reply_topic: str,
    make_request: Any,
    reply_id: Any,
    sent_at: dict[bytes, float],
    latencies: list[float],
    key_of: Any = None,
) -> tuple[list[float], int, int]:
    """Requests at ``request_rate`` (sent by ``asking``) beside events at ``event_rate`` (by
    ``producer``) for ``seconds``: the latency of each reply, and how many events and
    requests were sent."""
    consumer = await _reply_consumer(settings, reply_topic)
    events = Pacer(producer, event_rate)
    requests = Pacer(asking, request_rate)

    def make_event(i: int) -> Record:
        return load[(offset + i) % len(load)]

    def make_req(i: int) -> Record:
        record: Record = make_request(i)
        sent_at[key_of(i) if key_of else record[2]] = time.perf_counter()
        return record

    deadline = time.perf_counter() + seconds + 10
    collector = asyncio.create_task(
        _collect_replies(
            consumer,
            sent_at,
            reply_id,
            latencies,
            deadline=deadline,
            # Once the load has stopped, as soon as every request is answered.
            finished=lambda: not sent_at and time.perf_counter() > deadline - 10,
        )
    )
    await asyncio.gather(events.run(make_event, seconds), requests.run(make_req, seconds))
    await producer.flush()
    await asking.flush()
    await collector
    await consumer.stop()
    return latencies, events.sent, requests.sent


async def _freshness(
    settings: Settings,
    producer: AIOKafkaProducer,
    seconds: float,
    delays: list[tuple[float, float]],
) -> int:
    """Every 100 ms a first event for a new probe user; (when it was sent from the start,
    time until its state exists) in ``delays``, looked for as :mod:`bench.probes` says.
    Returns the number of probe events sent."""
    topics = Topics.from_settings(settings)
    keys = KeyLayout(settings.redis_key_prefix)
    client = redis_client(settings)
    pending = ProbeSchedule()
    started = time.perf_counter()
    n = 0
    try:
        while time.perf_counter() - started < seconds + 5:
            if time.perf_counter() - started < seconds and n < (time.perf_counter() - started) * 10:
                user = f"probe{n:06d}"
                doc = {
                    "event_id": f"probe-{n}",
                    "user_id": user,
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "amount": "1.00",
                    "category": "probe",
                }
                pending.sent(user, time.perf_counter())
                await producer.send(topics.spending, json.dumps(doc).encode(), key=user.encode())
                n += 1
            users = pending.due(time.perf_counter())
            if users:
                async with client.pipeline(transaction=False) as pipe:
                    for user in users:
                        pipe.exists(keys.state(user))
                    found = await pipe.execute()
                looked = dict(zip(users, map(bool, found), strict=True))
                for sent, delay in pending.looked(looked, time.perf_counter()):
                    delays.append((sent - started, delay))
            await asyncio.sleep(POLL_SECONDS)
        return n
    finally:
        await client.aclose()


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    from importlib.metadata import version

    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "faust": version("faust-streaming"),
        "aiokafka": version("aiokafka"),
        "redis_py": version("redis"),
        "kafka": Settings().kafka_version,
        "measured_at": datetime.now(UTC).isoformat(),
    }
