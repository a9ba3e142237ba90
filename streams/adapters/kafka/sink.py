"""Publishing records to Kafka, and the dead-letter record format."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from streams.ports import InboundRecord

#: Kafka's timestamp type of a record stamped by the broker when appended.
LOG_APPEND_TIME = 1


def inbound_headers(headers: Iterable[tuple[str, Any]] | None) -> list[tuple[str, bytes]]:
    """A consumed record's headers with every value as bytes, by every reader alike: a header
    without a value (null, as ``kcat -H name`` writes it) has an empty one."""
    return [(name, b"" if value is None else bytes(value)) for name, value in headers or ()]


def _writable_name(name: str) -> str:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        # Read with bytes that are not UTF-8: written with those bytes as \xNN escapes.
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return name


def writable_headers(headers: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Headers as aiokafka can write them (it encodes names as UTF-8): a consumed name that
    was not UTF-8 (only ever in a dead letter) gets its invalid bytes as ``\\xNN`` escapes."""
    return [(name if name.isascii() else _writable_name(name), value) for name, value in headers]


def inbound_from_aiokafka(record: Any) -> InboundRecord:
    """An ``aiokafka`` ConsumerRecord as an :class:`InboundRecord`."""
    return InboundRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        timestamp=record.timestamp / 1000 if record.timestamp else None,
        headers=inbound_headers(record.headers),
        log_append_time=record.timestamp_type == LOG_APPEND_TIME,
    )


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
            topic, value=value, key=key, headers=writable_headers(headers)
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
            topic, key, value, None, None, writable_headers(headers)
        )
        return future
