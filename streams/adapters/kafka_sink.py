"""Publishing records to Kafka, and the dead-letter record format."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
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
    #: Names with bytes that are not UTF-8 hold them as lone surrogates (tolerant_records).
    headers: Sequence[tuple[str, bytes]] = ()
    #: The timestamp is the broker's append time (trusted), not the producer's create time.
    log_append_time: bool = False


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


#: What a record needs beyond its key, value and headers (batch and record framing), and
#: each header beyond its name and value (generously).
_RECORD_FRAMING = 512
_HEADER_FRAMING = 10


def _size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
    framing = _RECORD_FRAMING + _HEADER_FRAMING * len(headers)
    names = sum(len(name.encode("utf-8", "backslashreplace")) for name, _ in headers)
    return framing + len(key or b"") + len(value or b"") + names + sum(len(v) for _, v in headers)


def fit_dead_letter(
    record: InboundRecord, headers: Sequence[tuple[str, bytes]], max_bytes: int
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """Key, value and headers of ``record``'s dead letter, within ``max_bytes``.

    ``headers`` are :func:`dead_letter_headers`: the worker's six, then the record's own. A
    record can be larger than any topic accepts when it arrived compressed (20 MiB of zeros
    fit in a 1 KiB zstd batch), and dead letters are published as they are: publishing it
    whole would fail and stop the worker. Such a dead letter leaves out its value, then if
    need be its key and its own headers, and names what it left out in
    :data:`~schemas.dead_letter.HEADER_OMITTED`, right after the worker's six headers.

    aiokafka sends no record without both a key and a value, which the Java client and
    librdkafka do send (a keyless tombstone): its dead letter has an empty value.
    """
    key, value = record.key, record.value
    cut = len(dead_letter.DEAD_LETTER_HEADERS)
    ours, theirs = list(headers[:cut]), list(headers[cut:])
    if key is None and value is None:
        value = b""
    if _size(key, value, headers) <= max_bytes:
        return key, value, list(headers)
    omitted = [f"value:{len(value or b'')}"]
    value = None
    if _size(key, value, headers) + _HEADER_FRAMING + 64 > max_bytes:  # room for omitted
        omitted += [f"key:{len(key or b'')}", f"headers:{len(record.headers)}"]
        key, theirs = None, []
    value = b"" if key is None else value
    return key, value, [*ours, (dead_letter.HEADER_OMITTED, ",".join(omitted).encode()), *theirs]


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
