"""How far a consumer group is behind on a preloaded backlog, looked at cheaply and alike for
creditline and its peer.

The ingest scenario preloads its topics before anything consumes them, so their end offsets
never move while it is timed: they are read once. Each look is then one offset-fetch request
on one long-lived admin client, instead of a new consumer and a request per partition (36
for three topics of twelve): the benchmark's process and the broker run on the cores being
measured, and the peer was looked at five times a second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from streams.adapters.kafka.client import client_options
from streams.adapters.kafka.read import topic_partitions
from streams.settings import Settings
from tests.support import described_group


def behind(ends: Mapping[TopicPartition, int], committed: Mapping[TopicPartition, int]) -> int:
    """Records before ``ends`` not committed yet (a partition never committed: all of it)."""
    return sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())


#: How often the ingest scenario looks at a group's lag (creditline's and the peer's alike).
LOOK_SECONDS = 0.2


class BacklogLag:
    """The lag of ``group`` on ``topics`` that no longer grow: ``async with`` it, then
    :meth:`look` as often as needed."""

    def __init__(self, settings: Settings, topics: Sequence[str], group: str) -> None:
        self.settings = settings
        self.topics = list(topics)
        self.group = group
        self._ends: dict[TopicPartition, int] = {}
        self._admin: AIOKafkaAdminClient | None = None

    async def __aenter__(self) -> BacklogLag:
        reader = AIOKafkaConsumer(**client_options(self.settings), enable_auto_commit=False)
        await reader.start()
        try:
            tps = await topic_partitions(reader, self.topics)
            self._ends = dict(await reader.end_offsets(tps))
        finally:
            await reader.stop()
        admin = AIOKafkaAdminClient(**client_options(self.settings))
        await admin.start()
        self._admin = admin
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._admin is not None:
            admin, self._admin = self._admin, None
            await admin.close()

    async def members(self) -> tuple[str, int]:
        """The group's state (``Stable``, ``PreparingRebalance``, …) and member count."""
        assert self._admin is not None, "async with first"
        [response] = await self._admin.describe_consumer_groups([self.group])
        return described_group(response)

    async def look(self) -> int:
        """Records not committed by the group yet (one request)."""
        assert self._admin is not None, "async with first"
        offsets: dict[
            TopicPartition, OffsetAndMetadata
        ] = await self._admin.list_consumer_group_offsets(self.group, partitions=list(self._ends))
        committed = {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
        return behind(self._ends, committed)
