"""Publishing records to Kafka, and the dead-letter record format."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from schemas import dead_letter
from streams.core import dead_letters

#: Kafka's timestamp type of a record stamped by the broker when appended.
LOG_APPEND_TIME = 1


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """One consumed Kafka record, independent of the client library that read it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None  # seconds since the epoch
    headers: Sequence[tuple[str, bytes]] = ()
    #: The timestamp is the broker's append time (trusted), not the producer's create time.
    log_append_time: bool = False


def inbound_from_aiokafka(record: Any) -> InboundRecord:
    """An ``aiokafka`` ConsumerRecord as an :class:`InboundRecord`."""
    return InboundRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        timestamp=record.timestamp / 1000 if record.timestamp else None,
        headers=[(k, bytes(v)) for k, v in (record.headers or ())],
        log_append_time=record.timestamp_type == LOG_APPEND_TIME,
    )


class RecordSink(Protocol):
    """Something that publishes records; ``send`` returns when the record is queued and the
    awaitable it returns completes when the broker has acknowledged it."""

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Awaitable[Any]: ...


def dead_letter_headers(
    record: InboundRecord, code: str, message: str, rejected_at: datetime
) -> list[tuple[str, bytes]]:
    """Ours naming the error and where the record came from, then the record's own headers
    under ``original.`` (see :mod:`streams.core.dead_letters`: never confusable with ours)."""
    ours = [
        (dead_letter.HEADER_ERROR_CODE, code),
        (dead_letter.HEADER_ERROR_MESSAGE, message),
        (dead_letter.HEADER_SOURCE_TOPIC, record.topic),
        (dead_letter.HEADER_SOURCE_PARTITION, str(record.partition)),
        (dead_letter.HEADER_SOURCE_OFFSET, str(record.offset)),
        (dead_letter.HEADER_REJECTED_AT, rejected_at.isoformat()),
    ]
    return dead_letters.dead_letter_headers(ours, record.headers)


@dataclass
class AioKafkaSink:
    """A :class:`RecordSink` over a started ``aiokafka.AIOKafkaProducer`` (CLI, tests)."""

    producer: Any

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Awaitable[Any]:
        """Queue a record; await the result for the broker's acknowledgement."""
        future: Awaitable[Any] = await self.producer.send(
            topic, value=value, key=key, headers=list(headers)
        )
        return future


@dataclass
class FaustSink:
    """A :class:`RecordSink` over a Faust app's producer (flushed by Faust before commits)."""

    app: Any

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Awaitable[Any]:
        """Queue a record; await the result for the broker's acknowledgement."""
        future: Awaitable[Any] = await self.app.producer.send(
            topic, key, value, None, None, list(headers)
        )
        return future
