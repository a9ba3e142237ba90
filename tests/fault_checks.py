"""Checks shared by the network-fault and failover tests."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from schemas.dead_letter import (
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
)
from schemas.models import DisplayedStatus, InputEvent, LoanDecision, LoanRequest
from streams.devtools.simulation import to_record
from streams.settings import Settings
from streams.topics import Topics
from tests.e2e.conftest import WorkerProcess
from tests.support import committed_lag, decisions_for, headers_of, read_topic, wait_for

Record = tuple[str, bytes | None, bytes | None]


def as_records(topics: Topics, events: Sequence[InputEvent]) -> list[Record]:
    """Events as (topic, key, value) records to produce."""
    return [(topics.topic_for(r.kind), r.key, r.value) for r in map(to_record, events)]


def bad_records(topics: Sequence[str], per_topic: int) -> list[Record]:
    """Records every worker dead-letters (not JSON), ``per_topic`` on each topic."""
    return [(topic, b"u-bad", b"{not json") for topic in topics for _ in range(per_topic)]


def assert_every_record_accounted(
    worker: WorkerProcess, produced: Counter[str], dead: Counter[str]
) -> dict[str, tuple[int, int, int, int]]:
    """Per topic, the worker's counters add up: consumed = applied + duplicate +
    dead-lettered + requeued (a batch a stop or rebalance ended early); every produced
    record was consumed at least once and the bad ones were dead-lettered, again only when
    redelivered (dead letters are at least once: a bad record in a batch whose commit was
    lost is dead-lettered again — :func:`assert_dead_letters_of` checks the copies are of
    the same records). Returns (consumed, applied, duplicate,
    dead-lettered) per topic."""
    figures: dict[str, tuple[int, int, int, int]] = {}
    for topic, count in produced.items():
        consumed = int(worker.counter("creditline_records_consumed_total", topic=topic))
        applied = int(worker.counter("creditline_records_applied_total", topic=topic))
        duplicate = int(worker.counter("creditline_records_duplicate_total", topic=topic))
        lettered = int(worker.counter("creditline_records_dead_lettered_total", topic=topic))
        requeued = int(worker.counter("creditline_records_requeued_total", topic=topic))
        figures[topic] = (consumed, applied, duplicate, lettered)
        assert consumed == applied + duplicate + lettered + requeued, (topic, requeued, figures)
        assert consumed >= count, (topic, figures[topic], count)
        assert dead[topic] <= lettered <= dead[topic] + (consumed - count), (topic, figures[topic])
    return figures


async def assert_dead_letters_of(settings: Settings, dead: Counter[str]) -> int:
    """The dead-letter topic holds letters of exactly ``dead[topic]`` distinct source records
    per topic (any further letter a copy of one of them); returns the number of copies."""
    letters = await read_topic(
        settings, Topics.from_settings(settings).dead_letter, expect=sum(dead.values())
    )
    sources = [
        (h[HEADER_SOURCE_TOPIC], h[HEADER_SOURCE_PARTITION], h[HEADER_SOURCE_OFFSET])
        for h in map(headers_of, letters)
    ]
    distinct = Counter(topic for topic, _, _ in set(sources))
    assert distinct == dead, (distinct, dead)
    return len(sources) - len(set(sources))


async def wait_committed(settings: Settings, topics: Sequence[str], timeout: float = 60) -> None:
    """Until the events group's committed offsets reach the log end of ``topics``."""

    async def committed() -> bool:
        return await committed_lag(settings, topics) == 0

    await wait_for(committed, timeout=timeout, message="offsets committed to the log end")


async def ask(settings: Settings, request_id: str, user: str) -> tuple[LoanDecision, float]:
    """One loan request; its decision and how long the answer took (seconds)."""
    request = LoanRequest(
        request_id=request_id,
        user_id=user,
        requested_at=datetime.now(UTC),
        amount=Decimal("100.00"),
        term_months=6,
        displayed_status=DisplayedStatus.OPEN,
    )
    asked = time.monotonic()
    decision = (await decisions_for(settings, [request], timeout=30))[request_id]
    return decision, time.monotonic() - asked


def codes(decision: LoanDecision) -> list[str]:
    return [r.code for r in decision.reasons]
