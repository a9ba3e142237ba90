"""Reading the dead-letter topic and re-driving records to their source topics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import dead_letter
from streams.adapters.kafka_client import client_options, producer_options, start_client
from streams.adapters.kafka_read import topic_partitions
from streams.core.dead_letters import ParsedHeaders, parse_headers
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
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

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


async def read_dead_letters(
    settings: Settings, *, code: str | None = None, limit: int | None = None
) -> list[DeadLetter]:
    """Dead letters from the beginning of the topic (optionally one code, at most ``limit``)."""
    topic = Topics.from_settings(settings).dead_letter
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        enable_auto_commit=False,
        max_partition_fetch_bytes=settings.max_message_bytes + 1024 * 1024,
        fetch_max_bytes=settings.max_message_bytes * 4,
    )
    await start_client(consumer, settings)
    letters: list[DeadLetter] = []
    try:
        tps = await topic_partitions(consumer, [topic])
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, batch in batches.items():
                for r in batch:
                    letter = DeadLetter(
                        r.partition,
                        r.offset,
                        r.key,
                        r.value,
                        tuple((k, bytes(v)) for k, v in (r.headers or ())),
                    )
                    if code is None or letter.code == code:
                        letters.append(letter)
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    letters.sort(key=lambda letter: (letter.header(dead_letter.HEADER_REJECTED_AT), letter.id))
    return letters[:limit] if limit is not None else letters


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
