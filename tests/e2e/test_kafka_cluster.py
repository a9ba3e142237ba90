"""A 3-node Kafka cluster (replication factor 3, min.insync.replicas 2): partition leaders
killed mid-stream, and three workers sharing the partitions."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from streams.adapters.kafka.admin import ensure_topics
from streams.adapters.kafka.client import client_options
from streams.devtools.simulation import population_events, to_record
from streams.devtools.stack.kafka import KafkaCluster
from streams.runtime.fold_process import fold_count
from streams.settings import Settings
from streams.topics import Topics
from tests.conftest import cleanup, isolated
from tests.e2e.conftest import WorkerProcess, await_group_coordinators, free_port, private_kafka
from tests.support import (
    StreamGate,
    assert_redis_matches_reference,
    committed_lag,
    group_members,
    produce,
    wait_for,
)

pytestmark = pytest.mark.slow

Record = tuple[str, bytes | None, bytes | None]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Three combined broker+controller nodes, started once for this module."""
    kafka = private_kafka(tmp_path_factory.mktemp("cluster"), nodes=3)
    try:
        kafka.start()
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
async def cluster_settings(
    base_settings: Settings, cluster: KafkaCluster
) -> AsyncIterator[Settings]:
    """Isolated settings on the cluster: 12 partitions, 3 replicas, min ISR 2."""
    settings = isolated(
        base_settings,
        partitions=12,
        kafka_bootstrap_servers=cluster.bootstrap_servers,
        topic_replication_factor=3,
        topic_min_insync_replicas=2,
        web_port=free_port(),
    )
    await ensure_topics(settings)
    await await_group_coordinators(settings)
    yield settings
    await cleanup(settings)


async def describe(settings: Settings, topics: Sequence[str]) -> list[dict[str, Any]]:
    """Each partition of ``topics`` with its leader and in-sync replicas ([] when the node
    asked was the one just killed: the caller polls again)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        described = await admin.describe_topics(list(topics))
    except KafkaError:
        return []
    finally:
        await admin.close()
    return [p for t in described for p in t["partitions"]]


async def stream(
    settings: Settings,
    records: Sequence[Record],
    sent: list[int],
    paced: asyncio.Event,
    gate: StreamGate | None = None,
) -> None:
    """Publish in chunks (acks=all, idempotent), slowly while ``paced`` is set, and only as
    far as ``gate`` lets through."""
    for start in range(0, len(records), 400):
        chunk = records[start : start + 400]
        if gate is not None:
            await gate.admit(start + len(chunk))
        sent[0] += await produce(settings, chunk)
        if paced.is_set():
            await asyncio.sleep(0.4)


def workload(settings: Settings, users: int, seed: int) -> tuple[list[Any], list[Record]]:
    topics = Topics.from_settings(settings)
    events = population_events(users, seed=seed, now=datetime.now(UTC))
    return events, [(topics.topic_for(r.kind), r.key, r.value) for r in map(to_record, events)]


@pytest.mark.timeout(900)  # ~70 s here; three failovers take minutes on a slower machine
async def test_killing_partition_leaders_mid_stream_loses_nothing_acknowledged(
    cluster: KafkaCluster, cluster_settings: Settings, tmp_path: Path
) -> None:
    settings = cluster_settings
    topics = Topics.from_settings(settings)
    events, records = workload(settings, users=500, seed=61)
    started = time.monotonic()
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    sent = [0]
    paced = asyncio.Event()
    paced.set()
    # The stream is let through a quarter at a time: each kill comes halfway through its
    # quarter, the next quarter only once the killed node is back in sync, and the last one
    # only after the last kill. However long failovers take on this machine, every kill lands
    # mid-stream, with acknowledged records before it and the stream still flowing.
    quarter = len(records) // 4
    gate = StreamGate(quarter)
    producing = asyncio.create_task(stream(settings, records, sent, paced, gate))
    kills: list[tuple[int, int, int]] = []  # (node, partitions it led, records sent before)
    try:
        for kill in range(3):
            halfway = kill * quarter + quarter // 2

            async def reached(halfway: int = halfway) -> bool:
                return sent[0] >= halfway

            await wait_for(reached, timeout=120, message=f"{halfway} records acknowledged")
            leaders = Counter(p["leader"] for p in await describe(settings, topics.events))
            assert leaders, "no partition metadata"
            victim, led = leaders.most_common(1)[0]
            kills.append((victim, led, sent[0]))
            await asyncio.to_thread(cluster.kill_node, victim)

            async def re_elected(victim: int = victim) -> bool:
                partitions = await describe(settings, topics.events)
                return bool(partitions) and all(p["leader"] not in (victim, -1) for p in partitions)

            await wait_for(re_elected, timeout=60, message=f"new leaders after killing {victim}")
            await asyncio.to_thread(cluster.start_node, victim)

            async def in_sync() -> bool:
                partitions = await describe(settings, topics.events)
                return bool(partitions) and all(len(p["isr"]) == 3 for p in partitions)

            await wait_for(in_sync, timeout=90, message=f"node {victim} back in sync")
            gate.open_to(len(records) if kill == 2 else (kill + 2) * quarter)
        paced.clear()
        await producing
        # Every kill landed mid-stream, on a node leading busy partitions.
        assert all(0 < before < len(records) and led > 0 for _, led, before in kills), kills
        await assert_redis_matches_reference(settings, events, timeout=180)

        async def committed() -> bool:
            return await committed_lag(settings, topics.events) == 0

        await wait_for(committed, timeout=60, message="committed offsets at the log end")
        assert worker.process is not None
        assert worker.process.poll() is None  # the worker rode out every failover
    finally:
        producing.cancel()
        worker.stop()
    print(
        f"leader kills: {len(events)} events of 500 users, nodes killed (node, partitions led, "
        f"records sent before) {kills}, {time.monotonic() - started:.0f} s"
    )


async def test_three_workers_share_the_partitions_and_the_state_is_exact(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    settings = cluster_settings
    topics = Topics.from_settings(settings)
    events, records = workload(settings, users=300, seed=67)
    workers = [
        WorkerProcess(settings.model_copy(update={"web_port": free_port()}), tmp_path / f"w{i}.log")
        for i in range(3)
    ]
    try:
        for w in workers:
            w.start()

        async def balanced() -> bool:
            return await group_members(settings) == ("Stable", 3 * fold_count(settings))

        await wait_for(balanced, timeout=90, message="three workers' folds in a stable group")
        paced = asyncio.Event()
        paced.set()
        await stream(settings, records, [0], paced)
        await assert_redis_matches_reference(settings, events, timeout=120)

        async def committed() -> bool:
            return await committed_lag(settings, topics.events) == 0

        await wait_for(committed, timeout=60, message="committed offsets at the log end")
        shares = [
            sum(w.counter("creditline_records_consumed_total", topic=t) for t in topics.events)
            for w in workers
        ]
        assert sum(shares) >= len(records)
        # 12 partitions over 3 workers: each worker folded a real share of the stream.
        assert all(share >= 0.15 * len(records) for share in shares), shares
        print(f"three workers: {len(records)} events, consumed per worker {shares}")
    finally:
        for w in workers:
            w.stop()
