"""Consumer lag as Kafka sees it: log-end offsets minus the group's committed offsets.

Measured from outside the consumer (an admin client and a metadata-only consumer), so it is
the same figure whichever worker reports it and it keeps growing when a worker is stuck.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from streams.adapters.kafka.client import client_options, start_client
from streams.adapters.kafka.read import topic_partitions
from streams.metrics import Metrics
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)


class LagMonitor:
    """Exports ``creditline_consumer_lag_records{topic}`` for the worker's consumer group."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        topics = Topics.from_settings(settings)
        #: Each consumed topic and the group that commits its offsets.
        self.group_of = {
            "all": {t: settings.events_group for t in topics.events}
            | {topics.loan_requests: settings.decisions_group},
            "events": {t: settings.events_group for t in topics.events},
            "decisions": {topics.loan_requests: settings.decisions_group},
        }[settings.worker_role]
        self.topics = tuple(self.group_of)
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Connect the admin client and the metadata consumer."""
        self._admin = AIOKafkaAdminClient(**client_options(self.settings))
        await start_client(self._admin, self.settings)
        self._consumer = AIOKafkaConsumer(**client_options(self.settings), enable_auto_commit=False)
        await start_client(self._consumer, self.settings)

    async def measure(self) -> dict[str, int]:
        """Lag per input topic (summed over partitions); also sets the gauge."""
        assert self._admin is not None and self._consumer is not None
        tps = await topic_partitions(self._consumer, self.topics)
        ends = await self._consumer.end_offsets(tps)
        committed: dict[TopicPartition, OffsetAndMetadata] = {}
        for group in set(self.group_of.values()):
            offsets = await self._admin.list_consumer_group_offsets(group)
            mine = {tp: o for tp, o in offsets.items() if self.group_of.get(tp.topic) == group}
            committed |= mine
        lag: dict[str, int] = defaultdict(int)
        for tp in tps:
            done = committed.get(tp)
            offset = done.offset if done is not None and done.offset >= 0 else 0
            lag[tp.topic] += max(0, ends[tp] - offset)
        for topic in self.topics:
            self.metrics.consumer_lag.labels(topic).set(lag[topic])
        return dict(lag)

    async def stop(self) -> None:
        """Close the clients."""
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.close()
