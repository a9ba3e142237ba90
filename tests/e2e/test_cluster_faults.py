"""Kafka-side faults with worker processes: several workers and rebalances, a broker restart."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.models import LoanDecision
from streams.devtools.simulation import loan_requests, population_events, to_record
from streams.runtime.fold_process import fold_count
from streams.settings import Settings
from streams.topics import Topics
from tests.conftest import cleanup, isolated
from tests.e2e.conftest import WorkerProcess, free_port, private_kafka, running_worker
from tests.support import (
    assert_redis_matches_reference,
    committed_lag,
    group_members,
    produce,
    read_to_end,
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


async def kill_restart_join_leave(
    first: WorkerProcess, joiner: WorkerProcess, working: str, group: str
) -> None:
    """Once ``first`` counts ``working``, SIGKILL it mid-stream and start it again; start
    ``joiner``, wait for the three workers' members of ``group`` to settle (each worker's
    folds in the events group), stop ``joiner``."""

    async def first_working() -> bool:
        return first.counter(working) > 0

    await wait_for(first_working, message="the first worker working")
    first.kill()
    await asyncio.sleep(1.0)
    # Started in threads: the stream's producer keeps running meanwhile (a blocked event
    # loop would stall its requests for as long as a slow machine takes to start workers).
    await asyncio.to_thread(first.start)
    await asyncio.to_thread(joiner.start)

    settings = first.settings
    members = 3 * (fold_count(settings) if group == settings.events_group else 1)

    async def three_workers() -> bool:
        return await group_members(settings, group) == ("Stable", members)

    await wait_for(three_workers, timeout=120, message=f"{members} members in a stable group")
    await asyncio.to_thread(joiner.stop)  # leaves gracefully


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

        await kill_restart_join_leave(
            a, c, "creditline_records_consumed_total", settings.events_group
        )
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


async def test_deciders_killed_and_rebalanced_answer_every_request_the_same(
    base_settings: Settings, tmp_path: Path
) -> None:
    """Loan requests read by the decisions group while a decider is SIGKILLed, comes back,
    and a third joins and leaves: every request is answered, every answer a redelivery
    publishes again is the same bytes, and the group's offsets end at the log end."""
    from streams.adapters.kafka.admin import ensure_topics

    settings = isolated(base_settings, partitions=12).model_copy(
        update={"worker_role": "decisions"}
    )
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    asks = loan_requests(600, 53, datetime.now(UTC))
    records = [(topics.loan_requests, r.key, r.value) for r in map(to_record, asks)]

    def decider(name: str) -> WorkerProcess:
        own = settings.model_copy(update={"web_port": free_port()})
        return WorkerProcess(own, tmp_path / f"{name}.log")

    a, b, c = decider("a"), decider("b"), decider("c")
    release = asyncio.Event()
    try:
        a.start()
        b.start()
        producing = asyncio.create_task(stream_in_chunks(settings, records, 25, 0.2, release))

        # Answers sent and not yet committed as ``a`` dies are sent again by the next owner.
        await kill_restart_join_leave(a, c, "creditline_decisions_total", settings.decisions_group)
        release.set()
        await producing

        async def committed() -> bool:
            lag = await committed_lag(settings, [topics.loan_requests], settings.decisions_group)
            return lag == 0

        await wait_for(committed, timeout=120, message="request offsets at the log end")
        published = await read_to_end(settings, topics.loan_decisions)
        by_request: dict[str, set[bytes]] = {}
        for record in published:
            rid = LoanDecision.model_validate_json(record.value).request_id
            by_request.setdefault(rid, set()).add(record.value)
        assert set(by_request) == {ask.request_id for ask in asks}
        assert all(len(payloads) == 1 for payloads in by_request.values())
        print(f"{len(published)} decisions published for {len(by_request)} requests")
        assert b.counter("creditline_decisions_total") > 0
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
