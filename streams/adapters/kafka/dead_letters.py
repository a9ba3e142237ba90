"""Reading the dead-letter topic (bounded ranges) and re-driving records to their source
topics (input topics only)."""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import dead_letter
from streams.adapters.kafka.client import client_options, producer_options, start_client
from streams.adapters.kafka.read import topic_partitions
from streams.core.dead_letters import ParsedHeaders, parse_headers, read_ranges
from streams.settings import Settings
from streams.topics import Topics

#: Header added to a re-driven record: where in the dead-letter topic it came from.
HEADER_REDRIVEN_FROM = "redriven.from"


@dataclass(frozen=True)
class DeadLetter:
    """One record of the dead-letter topic."""

    partition: int
    offset: int
    key: bytes | None
    #: None for a null record, or when read without values (``dlq list`` needs only ``size``).
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int = 0  # Kafka timestamp, ms (when the worker sent it)
    size: int = 0  # bytes of the value

    @property
    def id(self) -> str:
        """``partition:offset`` in the dead-letter topic."""
        return f"{self.partition}:{self.offset}"

    @cached_property
    def parsed(self) -> ParsedHeaders:
        """The worker's headers and the producer's, told apart by position."""
        return parse_headers(self.headers)

    def header(self, name: str) -> str:
        """One of the worker's headers as text ('' when absent): never a producer's."""
        return self.parsed.ours.get(name, "")

    @property
    def code(self) -> str:
        """The reject code."""
        return self.header(dead_letter.HEADER_ERROR_CODE)

    @property
    def source_topic(self) -> str:
        """The topic the record was read from ('' when the letter is not a worker's)."""
        return self.header(dead_letter.HEADER_SOURCE_TOPIC)

    @property
    def source(self) -> str:
        """``topic[partition]@offset`` the record was read from."""
        return (
            f"{self.source_topic}"
            f"[{self.header(dead_letter.HEADER_SOURCE_PARTITION)}]"
            f"@{self.header(dead_letter.HEADER_SOURCE_OFFSET)}"
        )

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The rejected record's own headers, exactly as its producer sent them."""
        return list(self.parsed.theirs)


@dataclass
class RedriveReport:
    """What ``redrive`` published, per topic, and which letters it would not publish."""

    sent: Counter[str] = field(default_factory=Counter)
    #: Ids of letters whose source is not one of this application's input topics.
    skipped: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Records published."""
        return sum(self.sent.values())


@dataclass(frozen=True)
class DeadLetterPage:
    """The newest ``limit`` dead letters of a window (rejected since ``since``) and those of
    them with the code asked for."""

    letters: list[DeadLetter]  # oldest first
    read: int  # dead letters read: the newest ``limit`` of the window, or all of it
    in_window: int  # dead letters in the window
    since: datetime | None
    limit: int

    @property
    def not_read(self) -> int:
        """Older dead letters of the window that were not read."""
        return self.in_window - self.read


def _letter(record: Any, keep_value: bool) -> DeadLetter:
    value = record.value
    return DeadLetter(
        record.partition,
        record.offset,
        record.key,
        value if keep_value else None,
        # A header value may be null on the wire; one written there directly must not stop
        # the listing.
        tuple((k, bytes(v or b"")) for k, v in (record.headers or ())),
        record.timestamp or 0,
        len(value or b""),
    )


def _by_time(letter: DeadLetter) -> tuple[int, int, int]:
    """Oldest first (by the time the worker sent it); ties in a fixed order."""
    return (letter.timestamp, letter.partition, letter.offset)


def _dead_letter_consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **client_options(settings),
        enable_auto_commit=False,
        max_partition_fetch_bytes=settings.max_message_bytes + 1024 * 1024,
        fetch_max_bytes=settings.max_message_bytes * 4,
    )


async def read_dead_letters(
    settings: Settings,
    *,
    since: datetime | None = None,
    limit: int = 100,
    code: str | None = None,
    values: bool = True,
) -> DeadLetterPage:
    """The newest ``limit`` dead letters rejected since ``since`` (the whole topic when None),
    optionally only those with ``code``; ``values=False`` keeps only their sizes.

    A bounded read whatever the topic holds: the window starts where Kafka's offsets-for-times
    says, and at most ``limit`` records per partition are read from its end (the newest
    ``limit`` overall are among them), keeping ``limit`` in memory.
    """
    topic = Topics.from_settings(settings).dead_letter
    consumer = _dead_letter_consumer(settings)
    await start_client(consumer, settings)
    newest: list[tuple[tuple[int, int, int], DeadLetter]] = []  # a min-heap
    try:
        tps = await topic_partitions(consumer, [topic])
        if not tps:
            return DeadLetterPage([], 0, 0, since, limit)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        if since is not None:
            found = await consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in tps}
            )
            starts = {tp: ends[tp] if at is None else at.offset for tp, at in found.items()}
        by_partition = {tp.partition: tp for tp in tps}
        ranges = read_ranges(
            {tp.partition: starts[tp] for tp in tps}, {tp.partition: ends[tp] for tp in tps}, limit
        )
        in_window = sum(ends[tp] - starts[tp] for tp in tps if starts[tp] < ends[tp])
        remaining = {by_partition[p]: end for p, (_, end) in ranges.items()}
        consumer.assign(list(remaining))
        for tp in remaining:
            consumer.seek(tp, ranges[tp.partition][0])
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, batch in batches.items():
                end = remaining[tp]
                for r in batch:
                    if r.offset >= end:  # written after this read began
                        break
                    letter = _letter(r, values)
                    heapq.heappush(newest, (_by_time(letter), letter))
                    if len(newest) > limit:
                        heapq.heappop(newest)
                if await consumer.position(tp) >= end:
                    del remaining[tp]
    finally:
        await consumer.stop()
    read = sorted((letter for _, letter in newest), key=_by_time)
    matching = [x for x in read if code is None or x.code == code]
    return DeadLetterPage(matching, len(read), in_window, since, limit)


async def read_dead_letters_at(
    settings: Settings, ids: Sequence[tuple[int, int]]
) -> dict[str, DeadLetter]:
    """The dead letters at these ``(partition, offset)``s, each read by seeking straight to
    it; ids with no record are absent from the result."""
    topic = Topics.from_settings(settings).dead_letter
    consumer = _dead_letter_consumer(settings)
    await start_client(consumer, settings)
    found: dict[str, DeadLetter] = {}
    try:
        tps = {tp.partition: tp for tp in await topic_partitions(consumer, [topic])}
        wanted = [(tps[p], o) for p, o in ids if p in tps]
        if not wanted:
            return found
        involved = list({tp for tp, _ in wanted})
        consumer.assign(involved)
        starts = await consumer.beginning_offsets(involved)
        ends = await consumer.end_offsets(involved)
        for tp, offset in wanted:
            if not starts[tp] <= offset < ends[tp]:
                continue
            consumer.seek(tp, offset)
            deadline = time.monotonic() + settings.kafka_request_timeout_seconds
            batch: list[Any] = []
            while not batch and time.monotonic() < deadline:
                batch = (await consumer.getmany(tp, timeout_ms=1000, max_records=1)).get(tp, [])
            if batch and batch[0].offset == offset:
                found[f"{tp.partition}:{offset}"] = _letter(batch[0], keep_value=True)
    finally:
        await consumer.stop()
    return found


async def redrive(
    settings: Settings,
    letters: Sequence[DeadLetter],
    *,
    replacements: dict[str, bytes] | None = None,
    on_progress: Callable[[int], None] = lambda done: None,
) -> RedriveReport:
    """Publish each dead letter again to its source topic (with a replacement value if one is
    given for its id), with its producer's headers and ``redriven.from``. Safe to repeat:
    events carry their event_id, so a record that is applied twice is recognised.

    Only this application's input topics are ever written: a letter whose source is anything
    else (the policy topic, an output, another application's topic, or no worker source at
    all) is skipped and reported, never published.
    """
    replacements = replacements or {}
    inputs = set(Topics.from_settings(settings).inputs)
    report = RedriveReport()
    targets = []
    for letter in letters:
        if letter.source_topic in inputs:
            targets.append(letter)
        else:
            report.skipped.append(letter.id)
    if not targets:
        return report
    producer = AIOKafkaProducer(
        **producer_options(settings),
        max_request_size=settings.max_message_bytes,
    )
    await start_client(producer, settings)
    try:
        for letter in targets:
            headers = [
                *letter.original_headers(),
                (HEADER_REDRIVEN_FROM, f"{letter.id}@{datetime.now(UTC).isoformat()}".encode()),
            ]
            value = replacements.get(letter.id, letter.value)
            await producer.send_and_wait(
                letter.source_topic, value, key=letter.key, headers=headers
            )
            report.sent[letter.source_topic] += 1
            on_progress(report.total)
    finally:
        await producer.stop()
    return report
