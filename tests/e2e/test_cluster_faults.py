"""Kafka-side faults with worker processes: several workers and rebalances, a broker restart."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.devtools.simulation import population_events, to_record
from streams.settings import Settings
from streams.topics import Topics
from tests.conftest import cleanup, isolated
from tests.e2e.conftest import WorkerProcess, free_port, private_kafka, running_worker
from tests.support import (
    assert_redis_matches_reference,
    committed_lag,
    group_members,
    produce,
    wait_for,
)

pytestmark = pytest.mark.slow


async def stream_in_chunks(
    settings: Settings,
    records: Sequence[tuple[str, bytes | None, bytes | None]],
    chunk: int,
    pause: float,
    release: asyncio.Event | None = None,
) -> None:
    """Publish in chunks with a pause between them; the second half only once ``release``
    is set (so what happens before that is mid-stream, however slow this machine is)."""
    for start in range(0, len(records), chunk):
        if release is not None and start >= len(records) // 2:
            await release.wait()
        await produce(settings, records[start : start + chunk])
        await asyncio.sleep(pause)


async def test_two_workers_with_rebalances_lose_nothing(
    base_settings: Settings, tmp_path: Path
) -> None:
    from streams.adapters.kafka.admin import ensure_topics

    settings = isolated(base_settings, partitions=12)
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    events = population_events(600, seed=51, now=datetime.now(UTC))
    records = [(topics.topic_for(r.kind), r.key, r.value) for r in map(to_record, events)]

    def worker(name: str) -> WorkerProcess:
        own = settings.model_copy(update={"web_port": free_port()})
        return WorkerProcess(own, tmp_path / f"{name}.log")

    a, b, c = worker("a"), worker("b"), worker("c")
    release = asyncio.Event()
    try:
        a.start()
        b.start()
        producing = asyncio.create_task(stream_in_chunks(settings, records, 1000, 0.4, release))

        async def a_working() -> bool:
            return a.counter("creditline_records_consumed_total") > 0

        await wait_for(a_working, message="the first worker consuming")
        a.kill()  # one dies mid-stream...
        await asyncio.sleep(1.0)
        # Started in threads: the stream's producer keeps running meanwhile (a blocked event
        # loop would stall its requests for as long as a slow machine takes to start workers).
        await asyncio.to_thread(a.start)  # ...and comes back
        await asyncio.to_thread(c.start)  # another joins...

        async def three_members() -> bool:
            return await group_members(settings) == ("Stable", 3)

        await wait_for(three_members, timeout=120, message="three members in a stable group")
        await asyncio.to_thread(c.stop)  # ...and leaves gracefully
        release.set()  # the rest of the stream goes to the two survivors
        await producing
        await assert_redis_matches_reference(settings, events, timeout=120)

        async def committed() -> bool:
            return await committed_lag(settings, topics.events) == 0

        await wait_for(committed, timeout=60, message="committed offsets at the log end")
        # Both survivors did part of the work.
        assert a.counter("creditline_records_consumed_total") > 0
        assert b.counter("creditline_records_consumed_total") > 0
    finally:
        for w in (a, b, c):
            if w.process is not None:
                w.stop()
        await cleanup(settings)


async def test_a_broker_restart_mid_stream_loses_nothing(
    base_settings: Settings, tmp_path: Path
) -> None:
    # A broker of the test's own: restarting the shared one would cut every test running
    # beside this one (the suite runs on several processes).
    kafka = private_kafka(tmp_path, nodes=1)
    try:
        await asyncio.to_thread(kafka.start)
        settings = isolated(
            base_settings,
            partitions=12,
            web_port=free_port(),
            log_level="info",
            kafka_bootstrap_servers=kafka.bootstrap_servers,
        )
        async with running_worker(settings, tmp_path / "worker.log") as worker:
            topics = Topics.from_settings(settings)
            events = population_events(300, seed=53, now=datetime.now(UTC))
            records = [(topics.topic_for(r.kind), r.key, r.value) for r in map(to_record, events)]
            half = len(records) // 2
            await produce(settings, records[:half])
            [node] = kafka.nodes
            await asyncio.to_thread(kafka.stop_node, node.node_id)
            await asyncio.sleep(3)
            await asyncio.to_thread(kafka.start_node, node.node_id)
            await produce(settings, records[half:])
            await assert_redis_matches_reference(settings, events, timeout=120)
            assert worker.process is not None
            assert worker.process.poll() is None  # recovered by itself, no restart

            async def committed() -> bool:
                return await committed_lag(settings, topics.events) == 0

            await wait_for(committed, timeout=60, message="committed offsets at the log end")
    finally:
        await asyncio.to_thread(kafka.stop)
