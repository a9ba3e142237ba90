"""Reading whole topics outside a consumer group (replay, dead letters, lag, history)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition


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
