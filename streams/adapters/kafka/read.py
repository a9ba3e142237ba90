"""Reading whole topics outside a consumer group (replay, dead letters, lag, history)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from streams.adapters.kafka.client import client_options, start_client
from streams.adapters.kafka.sink import inbound_from_aiokafka
from streams.ports import InboundRecord
from streams.settings import Settings


async def topic_partitions(
    consumer: AIOKafkaConsumer, topics: Iterable[str], wait: float = 5.0
) -> list[TopicPartition]:
    """Every partition of ``topics``, refreshing the consumer's metadata until all are known
    (for at most ``wait`` seconds; a topic that does not exist has no partitions)."""
    wanted = list(topics)
    deadline = time.monotonic() + wait
    # A consumer without subscriptions has no metadata for these topics yet, and a topic
    # created a moment ago may not be in the answering broker's metadata yet.
    while any(consumer.partitions_for_topic(t) is None for t in wanted):
        await consumer._client.force_metadata_update()
        if time.monotonic() >= deadline:
            break
        if any(consumer.partitions_for_topic(t) is None for t in wanted):
            await asyncio.sleep(0.1)
    return [
        TopicPartition(t, p) for t in wanted for p in sorted(consumer.partitions_for_topic(t) or ())
    ]


async def read_to_end(
    settings: Settings,
    topics: Iterable[str],
    batch_records: int = 2000,
    on_total: Callable[[int], None] | None = None,
) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
    """Every record of ``topics`` from the beginning to the end they had when reading began
    (records arriving meanwhile are left out), in batches; no consumer group. ``on_total``
    is told how many records that is, before the first batch."""
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        enable_auto_commit=False,
        max_partition_fetch_bytes=settings.max_message_bytes + 1024 * 1024,
        fetch_max_bytes=max(52_428_800, settings.max_message_bytes * 4),
    )
    await start_client(consumer, settings)
    try:
        tps = await topic_partitions(consumer, topics)
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        if on_total is not None:
            on_total(sum(ends[tp] - starts[tp] for tp in tps))
        remaining = {tp for tp in tps if ends[tp] > starts[tp]}
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch_records)
            batch: list[ConsumerRecord[bytes, bytes]] = []
            for tp, records in fetched.items():
                batch.extend(r for r in records if r.offset < ends[tp])
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if batch:
                yield batch
    finally:
        await consumer.stop()


class Tail:
    """The records that reach ``topics`` from now on, without a consumer group (commands
    that watch decisions and status changes, or wait for the answer to their request).

    ``async with Tail(...) as tail`` fixes the positions at the current ends before anything
    else happens, so a record sent after entering cannot be missed.
    """

    def __init__(self, settings: Settings, topics: Iterable[str]) -> None:
        self.settings = settings
        self.topics = list(topics)
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> Tail:
        consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            enable_auto_commit=False,
            max_partition_fetch_bytes=self.settings.max_message_bytes + 1024 * 1024,
        )
        await start_client(consumer, self.settings)
        self._consumer = consumer
        tps = await topic_partitions(consumer, self.topics)
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)  # resolved now, not at the first fetch
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def batches(
        self, timeout_ms: int = 300
    ) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
        """Batches of new records, as they arrive (an empty one after each quiet wait)."""
        assert self._consumer is not None, "enter the Tail first"
        while True:
            fetched = await self._consumer.getmany(timeout_ms=timeout_ms)
            yield [record for records in fetched.values() for record in records]


class KafkaReader:
    """A :class:`~streams.ports.TopicReader` over Kafka: whole topics as library-independent
    records."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def read_to_end(
        self,
        topics: Iterable[str],
        batch_records: int = 2000,
        on_total: Callable[[int], None] | None = None,
    ) -> AsyncIterator[list[InboundRecord]]:
        """See :func:`read_to_end`; records as :class:`~streams.ports.InboundRecord`."""
        async for batch in read_to_end(self.settings, topics, batch_records, on_total):
            yield [inbound_from_aiokafka(r) for r in batch]
