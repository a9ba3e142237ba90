"""Reading whole topics outside a consumer group (replay, dead letters, lag, history)."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition


async def topic_partitions(
    consumer: AIOKafkaConsumer, topics: Iterable[str]
) -> list[TopicPartition]:
    """Every partition of ``topics``, refreshing the consumer's metadata once if needed."""
    wanted = list(topics)
    if any(consumer.partitions_for_topic(t) is None for t in wanted):
        # A consumer without subscriptions has no metadata for these topics yet.
        await consumer._client.force_metadata_update()
    return [
        TopicPartition(t, p) for t in wanted for p in sorted(consumer.partitions_for_topic(t) or ())
    ]
