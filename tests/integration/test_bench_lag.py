"""The benchmark's lag watch (bench/lag.py) on the real broker: the same figure as a fresh
consumer's committed lag, and the group's state as the broker describes it."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.lag import BacklogLag
from streams.adapters.kafka.client import client_options
from streams.settings import Settings
from streams.topics import Topics
from tests.support import committed_lag, produce, wait_for


async def test_the_watch_reads_the_committed_lag_of_a_preloaded_backlog(
    kafka_settings: Settings,
) -> None:
    settings = kafka_settings
    topics = Topics.from_settings(settings).events
    await produce(
        settings,
        [(topics[i % 3], f"u{i % 7}".encode(), f'{{"n":{i}}}'.encode()) for i in range(90)],
    )
    group = f"{settings.events_group}-watched"
    async with BacklogLag(settings, topics, group) as lag:
        assert await lag.look() == 90  # nothing committed yet
        assert (await lag.members())[1] == 0
        # Commit part of each partition of the first topic, all of the second: as a fold would.
        consumer = AIOKafkaConsumer(
            **client_options(settings), group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            first = [TopicPartition(topics[0], p) for p in range(4)]
            second = [TopicPartition(topics[1], p) for p in range(4)]
            ends = await consumer.end_offsets([*first, *second])
            consumer.assign([*first, *second])
            await consumer.commit(
                {tp: ends[tp] // 2 for tp in first} | {tp: ends[tp] for tp in second}
            )
            expected = 90 - sum(ends[tp] // 2 for tp in first) - sum(ends[tp] for tp in second)
        finally:
            await consumer.stop()
        assert await lag.look() == expected
        assert await committed_lag(settings, topics, group) == expected
        # A member joins: the watch sees the group formed, as the ingest waits for it.
        member = AIOKafkaConsumer(
            *topics, **client_options(settings), group_id=group, enable_auto_commit=False
        )
        await member.start()
        try:
            await wait_for(lambda: joined(member), timeout=30, message="the member")
            assert await lag.members() == ("Stable", 1)
        finally:
            await member.stop()


async def joined(member: AIOKafkaConsumer) -> bool:
    await member.getmany(timeout_ms=100)
    return bool(member.assignment())
