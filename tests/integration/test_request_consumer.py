"""The loan-request consumer on the real broker: a batch is committed (group
``APP_ID-decisions``) only once its answers are acknowledged, in order, and a batch whose
answers are not stops it with nothing after it committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from streams.adapters.kafka.admin import ensure_topics
from streams.adapters.kafka.requests import RequestConsumer
from streams.ports import InboundRecord
from streams.settings import Settings
from streams.topics import Topics
from tests.conftest import cleanup, isolated, stack_settings
from tests.support import committed_lag, produce, wait_for


@pytest.fixture
async def kafka_settings() -> AsyncIterator[Settings]:
    s = isolated(stack_settings(), partitions=2, batch_max_records=10)
    await ensure_topics(s)
    yield s
    await cleanup(s)


def requests(settings: Settings, count: int) -> list[tuple[str, bytes, bytes]]:
    topic = Topics.from_settings(settings).loan_requests
    return [(topic, f"u{i % 5}".encode(), f'{{"n":{i}}}'.encode()) for i in range(count)]


async def lag(settings: Settings) -> int:
    topic = Topics.from_settings(settings).loan_requests
    return await committed_lag(settings, [topic], settings.decisions_group)


async def counted(seen: Sequence[object], expected: int) -> bool:
    return len(seen) >= expected


async def all_committed(settings: Settings) -> bool:
    return await lag(settings) == 0


async def test_requests_are_committed_once_their_answers_are_acknowledged(
    kafka_settings: Settings,
) -> None:
    settings = kafka_settings
    await produce(settings, requests(settings, 30))
    answered: list[InboundRecord] = []
    published: list[asyncio.Future[None]] = []

    async def answer(records: Sequence[InboundRecord]) -> asyncio.Future[None]:
        answered.extend(records)
        done = asyncio.get_running_loop().create_future()
        published.append(done)
        return done

    consumer = RequestConsumer(settings, Topics.from_settings(settings).loan_requests, answer)
    stop = asyncio.Event()
    await consumer.start()
    run = asyncio.create_task(consumer.run(stop.is_set))
    try:
        await wait_for(lambda: counted(answered, 30), message="every request answered")
        # Every request answered, none of the answers acknowledged: nothing is committed.
        await asyncio.sleep(1.0)
        assert await lag(settings) == 30
        for done in published:
            done.set_result(None)
        await wait_for(lambda: all_committed(settings), message="all committed")
    finally:
        stop.set()
        await asyncio.wait_for(run, 30)
        await consumer.stop()
    assert len({(r.partition, r.offset) for r in answered}) == 30


async def test_an_answer_not_acknowledged_stops_the_consumer_with_its_batch_uncommitted(
    kafka_settings: Settings,
) -> None:
    settings = kafka_settings
    topic = Topics.from_settings(settings).loan_requests
    await produce(settings, requests(settings, 30))
    batches: list[int] = []

    async def answer(records: Sequence[InboundRecord]) -> asyncio.Future[None]:
        done = asyncio.get_running_loop().create_future()
        if batches:
            done.set_exception(ConnectionError("the decision was not acknowledged"))
        else:
            done.set_result(None)
        batches.append(len(records))
        return done

    consumer = RequestConsumer(settings, topic, answer)
    await consumer.start()
    try:
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(consumer.run(lambda: False), 60)
    finally:
        await consumer.stop()
    # The failed batch and everything after it are uncommitted (the first batch too, when
    # it was still queued with the second: its commit would have been merged with it).
    uncommitted = await lag(settings)
    assert uncommitted in (30, 30 - batches[0])

    again: list[InboundRecord] = []

    async def acknowledged(records: Sequence[InboundRecord]) -> asyncio.Future[None]:
        again.extend(records)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    stop = asyncio.Event()
    consumer = RequestConsumer(settings, topic, acknowledged)
    await consumer.start()
    run = asyncio.create_task(consumer.run(stop.is_set))
    try:
        await wait_for(lambda: counted(again, uncommitted), message="redelivered")
        await wait_for(lambda: all_committed(settings), message="all committed")
    finally:
        stop.set()
        await asyncio.wait_for(run, 30)
        await consumer.stop()
    assert len(again) == uncommitted  # everything uncommitted is redelivered, once
