"""The events consumer and the consumer groups on the real broker."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from streams.adapters.kafka import events as events_module
from streams.adapters.kafka.admin import (
    GroupHeldByOlderWorkers,
    adopt_loan_request_offsets,
    assert_groups_joinable,
    ensure_topics,
)
from streams.adapters.kafka.client import client_options, producer_options
from streams.adapters.kafka.events import EventConsumer, consumer_options
from streams.errors import BatchInterrupted
from streams.ports import InboundRecord
from streams.settings import Settings
from streams.topics import Topics
from tests.conftest import cleanup, isolated, stack_settings
from tests.support import committed_lag, group_members, produce, wait_for

Seen = tuple[str, int, int]


@pytest.fixture
async def kafka_settings() -> AsyncIterator[Settings]:
    """Isolated topics on the real broker (Kafka only: runs once, not per Redis kind)."""
    s = isolated(stack_settings(), partitions=4, batch_max_records=40)
    await ensure_topics(s)
    yield s
    await cleanup(s)


def events(settings: Settings, count: int, first: int = 0) -> list[tuple[str, bytes, bytes]]:
    topics = Topics.from_settings(settings).events
    return [
        (topics[i % 3], f"u{i % 17}".encode(), f'{{"n":{i}}}'.encode())
        for i in range(first, first + count)
    ]


def identity(record: InboundRecord) -> Seen:
    return (record.topic, record.partition, record.offset)


def collecting(
    total: int,
) -> tuple[
    list[int], list[Seen], asyncio.Event, Callable[[Sequence[InboundRecord]], Awaitable[None]]
]:
    """A handler that notes each batch's size and records, and is done after ``total``."""
    sizes: list[int] = []
    seen: list[Seen] = []
    done = asyncio.Event()

    async def applying(batch: Sequence[InboundRecord]) -> None:
        sizes.append(len(batch))
        seen.extend(identity(r) for r in batch)
        if len(seen) >= total:
            done.set()

    return sizes, seen, done, applying


async def run_until(consumer: EventConsumer, done: asyncio.Event, timeout: float = 120) -> None:
    await consumer.start()
    try:
        await asyncio.wait_for(consumer.run(done.is_set), timeout)
    finally:
        await consumer.stop()


async def test_nothing_is_committed_when_the_handler_fails(kafka_settings: Settings) -> None:
    settings = kafka_settings
    topics = Topics.from_settings(settings).events
    await produce(settings, events(settings, 60))

    async def failing(records: Sequence[InboundRecord]) -> None:
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError, match="store down"):
        await run_until(EventConsumer(settings, topics, failing), asyncio.Event())
    assert await committed_lag(settings, topics) == 60

    seen: list[Seen] = []
    done = asyncio.Event()

    async def applying(records: Sequence[InboundRecord]) -> None:
        seen.extend(identity(r) for r in records)
        if len(seen) >= 60:
            done.set()

    await run_until(EventConsumer(settings, topics, applying), done)
    assert len(seen) == len(set(seen)) == 60  # every record, including the failed batch
    assert await committed_lag(settings, topics) == 0


async def test_a_failing_batch_keeps_the_commit_of_the_batch_before(
    kafka_settings: Settings,
) -> None:
    """A batch's commit runs while the next batch is folded: when that next batch fails, the
    run stops only once the commit before it has landed — the failed batch alone is read
    again, nothing applied before it."""
    settings = kafka_settings
    topics = Topics.from_settings(settings).events
    await produce(settings, events(settings, 100))
    batches: list[int] = []

    async def second_fails(records: Sequence[InboundRecord]) -> None:
        if batches:
            raise RuntimeError("store down")
        batches.append(len(records))

    consumer = EventConsumer(settings, topics, second_fails)
    await consumer.start()
    assert consumer._consumer is not None
    commit = consumer._consumer.commit

    async def slow_commit(offsets: dict[TopicPartition, object]) -> None:
        await asyncio.sleep(0.5)  # a slow broker: the failure comes while it is under way
        await commit(offsets)

    consumer._consumer.commit = slow_commit
    try:
        with pytest.raises(RuntimeError, match="store down"):
            await asyncio.wait_for(consumer.run(asyncio.Event().is_set), 120)
    finally:
        await consumer.stop()
    assert 0 < batches[0] <= settings.batch_max_records < 100
    assert await committed_lag(settings, topics) == 100 - batches[0]


async def test_a_record_larger_than_a_fetch_arrives_among_the_others(
    kafka_settings: Settings,
) -> None:
    """A fetch asks little of each partition (``fetch_partition_bytes``), yet a record
    larger than that — one to dead-letter — still arrives, in its place, on a busy topic."""
    settings = kafka_settings
    topics = Topics.from_settings(settings).events
    large = (
        b'{"pad": "' + bytes(range(33, 127)) * (4 * settings.fetch_partition_bytes // 94) + b'"}'
    )
    assert len(large) > 3 * settings.fetch_partition_bytes
    records = events(settings, 300)
    records[150] = (records[150][0], records[150][1], large)
    await produce(settings, records, partition_of=lambda i: i % 4)
    seen: list[InboundRecord] = []
    done = asyncio.Event()

    async def collecting(batch: Sequence[InboundRecord]) -> None:
        seen.extend(batch)
        if len(seen) >= 300:
            done.set()

    await run_until(EventConsumer(settings, topics, collecting), done, timeout=60)
    assert len({identity(r) for r in seen}) == len(seen) == 300
    assert [r.value for r in seen if r.value == large] == [large]
    assert await committed_lag(settings, topics) == 0


async def test_a_backlog_is_read_in_batches_of_several_fetch_rounds(
    kafka_settings: Settings,
) -> None:
    """Under a backlog batches grow past what one fetch round returns, up to the ceiling;
    every record is handed over once and committed."""
    settings = kafka_settings.model_copy(
        update={"batch_max_records": 4000, "fetch_partition_bytes": 16 * 1024}
    )
    topics = Topics.from_settings(settings).events
    total = 16_000
    pad = "x" * 100
    records = [(t, k, v[:-1] + f',"pad":"{pad}"}}'.encode()) for t, k, v in events(settings, total)]
    await produce(settings, records, partition_of=lambda i: i % 4)

    # What one round returns with these options: far less than a batch may take.
    probe = AIOKafkaConsumer(
        *topics, **(consumer_options(settings) | {"group_id": f"{settings.events_group}-probe"})
    )
    await probe.start()
    try:
        round_sizes: list[int] = []
        while not round_sizes or not round_sizes[-1]:
            round_sizes.append(
                sum(
                    len(m)
                    for m in (await probe.getmany(timeout_ms=1000, max_records=4000)).values()
                )
            )
    finally:
        await probe.stop()
    one_round = round_sizes[-1]
    assert 0 < one_round < 2000, one_round

    sizes, seen, done, applying = collecting(total)

    consumer = EventConsumer(settings, topics, applying)
    consumer.sizer.target_seconds = 3600.0  # a fast pace: the limit grows to the ceiling
    await run_until(consumer, done)
    assert len(seen) == len(set(seen)) == total
    assert sizes[0] <= 1000 and max(sizes) == 4000, sizes
    assert await committed_lag(settings, topics) == 0


async def test_a_deep_backlog_takes_backfill_batches_and_its_tail_the_usual_ones(
    kafka_settings: Settings,
) -> None:
    """While more than a usual batch is left behind, batches take what is left up to the
    backfill target, so the backlog's tail is one batch; then the usual target again. With
    the two targets equal, never more than the usual one."""
    settings = kafka_settings.model_copy(
        update={
            "batch_max_records": 50_000,
            "batch_target_seconds": 0.1,
            "batch_backfill_target_seconds": 0.4,
        }
    )
    topics = Topics.from_settings(settings).events
    total = 24_000
    await produce(settings, events(settings, total), partition_of=lambda i: i % 4)

    async def read(settings: Settings, group: str) -> tuple[list[int], EventConsumer, int]:
        sizes, seen, done, collect = collecting(total)
        counted: list[int] = []  # the batches the sizer counts as sized by the backfill target

        async def paced(batch: Sequence[InboundRecord]) -> None:
            await collect(batch)
            await asyncio.sleep(len(batch) / 10_000)  # at most 10,000 records a second

        consumer = EventConsumer(settings.model_copy(update={"app_id": group}), topics, paced)
        consumer.sizer.on_backfill_batch = lambda: counted.append(len(counted))
        await run_until(consumer, done)
        assert len(seen) == len(set(seen)) == total
        return sizes, consumer, len(counted)

    # The usual limit is the first batch's 1,000 (0.1 s at <= 10,000 a second); a backfill
    # batch holds up to 4,000 (0.4 s).
    sizes, consumer, backfill_batches = await read(settings, f"{settings.app_id}-deep")
    assert sizes[0] <= 1000 and 2500 < max(sizes) <= 4000, sizes
    deep = [i for i, size in enumerate(sizes) if size > 1000]
    # Batches of about 4,000 while more than that was left; then the rest, at most two
    # batches (what was left after the last full one, and what a short round left of it).
    assert len(deep) >= 4 and len(sizes) - deep[0] <= len(deep) + 2, sizes
    assert backfill_batches >= len(deep), sizes  # each counted
    assert not consumer.sizer.backfilling

    same = settings.model_copy(update={"batch_backfill_target_seconds": 0.1})
    sizes, consumer, backfill_batches = await read(same, f"{settings.app_id}-shallow")
    assert max(sizes) <= 1000, sizes
    assert backfill_batches == 0


async def test_a_batch_is_handed_over_without_the_clients_records_and_may_be_taken(
    kafka_settings: Settings,
) -> None:
    """The handler gets the batch as the only copy of its records (of the client's records
    only the one each partly read partition's iterator stopped at is alive meanwhile) and
    may empty the list to let each go early (the fold does): every record is still
    committed, and the batch still counts for the next one's size."""
    settings = kafka_settings.model_copy(update={"batch_max_records": 2_000})
    topics = Topics.from_settings(settings).events
    total = 3_000
    await produce(settings, events(settings, total), partition_of=lambda i: i % 4)

    alive: list[int] = []
    sizes: list[int] = []
    seen: list[Seen] = []
    done = asyncio.Event()

    async def taking(batch: list[InboundRecord]) -> None:
        alive.append(sum(isinstance(o, ConsumerRecord) for o in gc.get_objects()))
        sizes.append(len(batch))
        seen.extend(identity(r) for r in batch)
        batch.clear()
        if len(seen) >= total:
            done.set()

    consumer = EventConsumer(settings, topics, taking)
    consumer.sizer.target_seconds = 3600.0  # a fast pace: counted batches grow the limit
    await run_until(consumer, done)
    assert len(seen) == len(set(seen)) == total
    partitions_read = 3 * 4
    assert max(alive) <= partitions_read < min(sizes), (alive, sizes)
    assert consumer.sizer.limit == 2_000  # grown from the first 1,000: the counts were seen
    assert await committed_lag(settings, topics) == 0


async def test_a_rebalance_waits_for_the_batch_in_flight(kafka_settings: Settings) -> None:
    """A second worker joins while the first is inside a slow batch: the partitions move
    only after that batch is committed, so no record is handled twice and none is lost."""
    settings = kafka_settings
    topics = Topics.from_settings(settings).events
    total = 400
    await produce(settings, events(settings, 200))
    handled: dict[str, list[Seen]] = {"first": [], "second": []}
    later: dict[str, set[int]] = {"first": set(), "second": set()}  # partitions after joining
    in_slow_batch = asyncio.Event()
    slow_batch_done = asyncio.Event()
    done = asyncio.Event()

    async def rebalancing() -> bool:
        state, _ = await group_members(settings)
        return state == "PreparingRebalance"

    async def both_members() -> bool:
        for task in (first, second):
            if task.done():
                task.result()  # a consumer that stopped early says why (e.g. its assertion)
        return await group_members(settings) == ("Stable", 2)

    def handler(name: str) -> object:
        async def handle(records: Sequence[InboundRecord]) -> None:
            if name == "first" and not in_slow_batch.is_set():
                in_slow_batch.set()
                # The second worker joins meanwhile (however long that takes here); the batch
                # then goes on for a while, in which a handover without the lock would happen.
                await wait_for(rebalancing, message="the second worker joining the group")
                await asyncio.sleep(4)
                slow_batch_done.set()
            if name == "second":
                assert slow_batch_done.is_set(), "partitions moved during the batch in flight"
            handled[name].extend(identity(r) for r in records)
            later[name] |= {r.partition for r in records if json.loads(r.value or b"")["n"] >= 200}
            if sum(len(h) for h in handled.values()) >= total:
                done.set()

        return handle

    first = asyncio.create_task(
        run_until(EventConsumer(settings, topics, handler("first")), done)  # type: ignore[arg-type]
    )
    await asyncio.wait_for(in_slow_batch.wait(), 30)
    second = asyncio.create_task(
        run_until(EventConsumer(settings, topics, handler("second")), done)  # type: ignore[arg-type]
    )
    # The rest is produced once both own partitions: each must get a share of it.
    await wait_for(both_members, message="a stable group of two")
    await produce(settings, events(settings, 200, first=200))
    await asyncio.gather(first, second)

    everything = handled["first"] + handled["second"]
    assert len(everything) == total
    assert len(set(everything)) == total  # no record handled twice
    assert handled["second"], "the second worker got partitions"
    # Co-partitioned: after the rebalance, partition p of all three topics has one owner.
    assert later["first"] and later["second"]
    assert not later["first"] & later["second"]
    assert await committed_lag(settings, topics) == 0


async def test_a_rebalance_ends_a_batch_that_can_stop_after_a_part(
    kafka_settings: Settings,
) -> None:
    """A handler that works in parts and ends its batch when the consumer is being revoked
    (as the event folder does): the rebalance waits for one part, not the batch; the batch
    is not committed, and its records are read again (those of the parts done come back as
    duplicates), so none is lost."""
    settings = kafka_settings
    topics = Topics.from_settings(settings).events
    total = 400
    await produce(settings, events(settings, 200))
    handled: list[Seen] = []
    interrupted: list[Seen] = []  # the interrupted batch's records, done parts or not
    interrupted_after: list[float] = []
    rebalance_seen: list[float] = []
    done = asyncio.Event()
    consumers: dict[str, EventConsumer] = {}

    async def rebalancing() -> bool:
        state, _ = await group_members(settings)
        if state == "PreparingRebalance" and not rebalance_seen:
            rebalance_seen.append(asyncio.get_running_loop().time())
        return bool(rebalance_seen)

    def handler(name: str) -> object:
        async def handle(records: Sequence[InboundRecord]) -> None:
            consumer = consumers[name]
            slow = name == "first" and not interrupted
            for start in range(0, len(records), 2):
                if slow and consumer.revoking():
                    interrupted.extend(identity(r) for r in records)
                    interrupted_after.append(asyncio.get_running_loop().time())
                    raise BatchInterrupted(f"after {start} of {len(records)} records")
                handled.extend(identity(r) for r in records[start : start + 2])
                if slow:
                    await asyncio.sleep(1)  # a part: a batch of 40 would take 20 s
            if len(set(handled)) >= total:
                done.set()

        return handle

    consumers["first"] = EventConsumer(settings, topics, handler("first"))  # type: ignore[arg-type]
    consumers["second"] = EventConsumer(settings, topics, handler("second"))  # type: ignore[arg-type]
    first = asyncio.create_task(run_until(consumers["first"], done))

    async def under_way() -> bool:
        return bool(handled)

    async def ended() -> bool:
        return bool(interrupted)

    await wait_for(under_way, interval=0.05, message="the first batch under way")
    second = asyncio.create_task(run_until(consumers["second"], done))
    await wait_for(rebalancing, interval=0.05, message="the second worker joining")
    await wait_for(ended, message="the first batch interrupted")
    # Ended within a heartbeat (at most 3 s: the member learns of the rebalance) and a part
    # of the rebalance's start, where the batch's 20 s would have run on.
    assert interrupted_after[0] - rebalance_seen[0] < 5.0
    await produce(settings, events(settings, 200, first=200))
    await asyncio.gather(first, second)
    everything = set(handled)
    assert len(everything) == total  # every record, the interrupted batch's included
    twice = {seen for seen in everything if handled.count(seen) > 1}
    assert twice <= set(interrupted)  # only the interrupted batch's parts done come back
    assert await committed_lag(settings, topics) == 0


async def test_an_interrupted_batch_is_read_again_from_its_first_records(
    kafka_settings: Settings,
) -> None:
    """A batch its handler ends early is not committed and the consumer seeks back to its
    first records, rebalance or not: the next batch starts with them, where the fetch
    position would otherwise go on after them."""
    settings = kafka_settings
    topics = Topics.from_settings(settings).events
    await produce(settings, events(settings, 120))
    batches: list[list[Seen]] = []
    done = asyncio.Event()

    async def second_interrupted(records: Sequence[InboundRecord]) -> None:
        batches.append([identity(r) for r in records])
        if len(batches) == 2:
            raise BatchInterrupted("a part done, then stopped")
        if len({seen for batch in batches[:1] + batches[2:] for seen in batch}) >= 120:
            done.set()

    await run_until(EventConsumer(settings, topics, second_interrupted), done, timeout=60)
    interrupted = set(batches[1])
    assert interrupted and not interrupted & set(batches[0])
    again = {seen for batch in batches[2:] for seen in batch}
    assert interrupted <= again  # read again, not skipped
    assert len({seen for batch in batches for seen in batch}) == 120
    assert await committed_lag(settings, topics) == 0


async def committed_offsets(settings: Settings, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: o.offset for tp, o in offsets.items() if o.offset >= 0}


async def test_an_upgrade_carries_loan_request_offsets_to_the_decisions_group(
    kafka_settings: Settings,
) -> None:
    """`all` workers used to commit loan requests in the events group: the first upgraded
    worker starts the decisions group there instead of answering every request again."""
    settings = kafka_settings
    requests = Topics.from_settings(settings).loan_requests
    old = {TopicPartition(requests, p): 10 + p for p in range(4)}
    old_events = {TopicPartition(settings.topic_spending, 0): 99}
    consumer = AIOKafkaConsumer(
        **client_options(settings), group_id=settings.events_group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([*old, *old_events])
        await consumer.commit({**old, **old_events})
    finally:
        await consumer.stop()

    events_only = settings.model_copy(update={"worker_role": "events"})
    assert await adopt_loan_request_offsets(events_only) == 0
    assert await adopt_loan_request_offsets(settings) == 4
    assert await committed_offsets(settings, settings.decisions_group) == old
    # Once the decisions group has its own offsets, they are never overwritten.
    assert await adopt_loan_request_offsets(settings) == 0


async def test_a_new_deployment_has_nothing_to_carry_over(kafka_settings: Settings) -> None:
    assert await adopt_loan_request_offsets(kafka_settings) == 0
    assert await committed_offsets(kafka_settings, kafka_settings.decisions_group) == {}


async def joined(consumer: AIOKafkaConsumer) -> None:
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=200)


async def test_a_group_held_by_older_workers_is_refused_in_one_line(
    kafka_settings: Settings,
) -> None:
    """Workers that read through Faust assign partitions with Faust's assignor: a new worker
    could never join their group, so it refuses to start, naming the group."""
    from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    settings = kafka_settings
    topics = Topics.from_settings(settings)
    await assert_groups_joinable(settings)  # nobody in the groups yet
    current = AIOKafkaConsumer(
        topics.loan_requests,
        **consumer_options(settings, settings.decisions_group, "requests"),
    )
    await joined(current)
    try:
        await assert_groups_joinable(settings)  # a worker of this version: join it
    finally:
        await current.stop()
    older = AIOKafkaConsumer(
        *topics.events,
        **client_options(settings),
        group_id=settings.events_group,
        enable_auto_commit=False,
        partition_assignment_strategy=(RoundRobinPartitionAssignor,),
    )
    await joined(older)
    try:
        with pytest.raises(GroupHeldByOlderWorkers, match=f"'{settings.events_group}'.*roundrobin"):
            await assert_groups_joinable(settings)
        decisions_only = settings.model_copy(update={"worker_role": "decisions"})
        await assert_groups_joinable(decisions_only)  # it joins another group only
    finally:
        await older.stop()


async def test_records_that_arrive_during_a_short_batch_join_the_next_one(
    kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiokafka fetches nothing more from a broker for 100 ms once a fetched partition's
    records wait unread. A record that arrived during a shorter batch, after the first
    fetch response, is brought into the next batch by one more round, not left for the
    batch after it."""
    # Generous bounds: what is tested is the extra round, not how fast this machine is.
    monkeypatch.setattr(events_module, "CATCH_UP_WAIT_MS", 2000)
    monkeypatch.setattr(events_module, "BUFFERED_SECONDS", 0.05)
    settings = kafka_settings
    topics = Topics.from_settings(settings).events
    producer = AIOKafkaProducer(**producer_options(settings), linger_ms=0)
    await producer.start()
    batches: list[list[bytes]] = []
    done = asyncio.Event()

    async def later(delay: float, partition: int, value: bytes) -> None:
        await asyncio.sleep(delay)
        await producer.send_and_wait(topics[0], value, key=b"u", partition=partition)

    async def handling(records: Sequence[InboundRecord]) -> None:
        values = [r.value or b"" for r in records]
        batches.append(values)
        if values == [b"first"]:
            # During this batch: one record early (fetched at once), one after it.
            await asyncio.gather(later(0.005, 0, b"early"), later(0.05, 1, b"after"))
            await asyncio.sleep(0.03)  # the batch ends well within aiokafka's 100 ms
        if b"after" in values:
            done.set()

    consumer = EventConsumer(settings, topics, handling)
    try:
        await consumer.start()
        running = asyncio.ensure_future(consumer.run(done.is_set))
        await producer.send_and_wait(topics[0], b"first", key=b"u", partition=2)
        await asyncio.wait_for(running, 60)
    finally:
        await consumer.stop()
        await producer.stop()
    assert batches[0] == [b"first"]
    assert sorted(batches[1]) == [b"after", b"early"], batches


async def test_held_fetches_gather_live_records_and_hand_each_over_once(
    kafka_settings: Settings,
) -> None:
    """With ``events_fetch_min_bytes`` above what arrives, the broker holds each fetch for
    the wait: a trickle of records comes in fuller batches, each record once, all committed."""
    settings = kafka_settings.model_copy(
        update={"events_fetch_min_bytes": 64 * 1024, "events_fetch_wait_seconds": 0.1}
    )
    topics = Topics.from_settings(settings).events
    total = 300
    sizes, seen, done, applying = collecting(total)

    async def trickle() -> None:
        producer = AIOKafkaProducer(**producer_options(settings), linger_ms=0)
        await producer.start()
        try:
            for i, (topic, key, value) in enumerate(events(settings, total)):
                await producer.send(topic, value, key=key, partition=i % 4)
                await asyncio.sleep(0.002)  # ~ 500 records a second, one at a time
            await producer.flush()
        finally:
            await producer.stop()

    consumer = EventConsumer(settings, topics, applying)
    await asyncio.gather(run_until(consumer, done), trickle())
    assert len(seen) == len(set(seen)) == total
    # Unheld, a fetch answers with the one or two records that arrived since the last.
    assert total / len(sizes) >= 8, sizes
    assert await committed_lag(settings, topics) == 0
