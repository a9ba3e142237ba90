"""The worker process end to end: events → Redis, requests → decisions, bad input → DLQ,
redelivery → duplicates, and /metrics consistent with what was sent."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer

from schemas.models import LoanDecision, Outcome
from streams.adapters.kafka.client import producer_options
from streams.devtools.simulation import Persona, population_events, requests, to_record
from streams.runtime.fold_process import fold_count
from streams.settings import Settings
from streams.topics import Topics
from tests.builders import encode, repayment_doc, spending_doc
from tests.e2e.conftest import WorkerProcess
from tests.support import (
    assert_redis_matches_reference,
    group_members,
    headers_of,
    persona_outcomes,
    produce,
    read_topic,
    redis_states,
    store_for,
    wait_for,
)

USERS = 40
SEED = 17


def bad_records(topics: Topics) -> list[tuple[str, bytes | None, bytes | None, str]]:
    """(topic, key, value, expected code) — one of each kind of bad input."""
    now = datetime.now(UTC).isoformat()
    return [
        (topics.spending, b"user-000001", b"\xff\xfe not utf8", "NOT_UTF8"),
        (topics.spending, b"user-000001", b"{oops", "NOT_JSON"),
        (topics.repayments, b"user-000002", b"[1, 2, 3]", "NOT_OBJECT"),
        (
            topics.repayments,
            b"user-000002",
            encode(
                repayment_doc(user_id="user-000002", occurred_at=now, amount_paid="NaN")
            ).replace(b'"NaN"', b"NaN"),
            "NON_FINITE_NUMBER",
        ),
        (topics.assets, b"user-000003", b'{"event_id": "x"}', "MISSING_FIELD"),
        (
            topics.spending,
            b"user-000004",
            encode(spending_doc(user_id="user-000004", occurred_at="2026-01-01T00:00:00")),
            "NAIVE_TIMESTAMP",
        ),
        (
            topics.spending,
            b"someone-else",
            encode(spending_doc(user_id="user-000004", occurred_at=now)),
            "KEY_MISMATCH",
        ),
        (topics.spending, b"user-000005", b'{"pad": "' + b"x" * 70_000 + b'"}', "OVERSIZED"),
        (topics.loan_requests, b"user-000006", b'{"request_id": null}', "NULL_FIELD"),
    ]


async def test_worker_end_to_end(worker: WorkerProcess) -> None:
    settings = worker.settings
    topics = Topics.from_settings(settings)
    now = datetime.now(UTC)
    events = population_events(USERS, SEED, now)
    history = [to_record(e) for e in events]
    bad = bad_records(topics)
    mixed: list[tuple[str, bytes | None, bytes | None]] = [
        (topics.topic_for(r.kind), r.key, r.value) for r in history
    ]
    for index, (topic, key, value, _) in enumerate(bad):
        mixed.insert(index * 37 % len(mixed), (topic, key, value))
    await produce(settings, mixed)

    # 1. Every user's state in Redis equals the reference fold.
    await assert_redis_matches_reference(settings, events)

    # 2. Loan requests are answered from the live score, not the displayed status.
    outcome = await persona_outcomes(settings, USERS, SEED)
    per = USERS // len(Persona)
    assert outcome[(Persona.RECOVERING, Outcome.APPROVED, True)] == per
    assert outcome[(Persona.SLIPPING, Outcome.DECLINED, True)] == per
    assert outcome[(Persona.STEADY, Outcome.APPROVED, False)] == per

    # 3. Every bad record is in the dead-letter topic with its specific code and origin.
    letters = await read_topic(settings, topics.dead_letter, expect=len(bad), timeout=30)
    codes = Counter(headers_of(r)["error.code"] for r in letters)
    assert codes == Counter(code for *_, code in bad)
    for letter in letters:
        h = headers_of(letter)
        assert h["source.topic"] in topics.inputs
        assert int(h["source.offset"]) >= 0

    # 4. Redelivery, some of it to other partitions (another partitioner): all duplicates.
    before = await redis_states(settings)
    again = [(topics.topic_for(r.kind), r.key, r.value) for r in history]
    await produce(settings, again, partition_of=lambda i: i % 12 if i % 3 == 0 else None)

    async def all_duplicates() -> bool:
        return worker.counter("creditline_records_duplicate_total") >= len(again)

    await wait_for(all_duplicates, timeout=60, message="redelivered events recognised")
    assert await redis_states(settings) == before

    # 5. /metrics adds up: every consumed record is applied, duplicate or dead-lettered.
    expected_dead = Counter(topic for topic, *_ in bad)
    for topic in topics.inputs:
        consumed = worker.counter("creditline_records_consumed_total", topic=topic)
        applied = worker.counter("creditline_records_applied_total", topic=topic)
        duplicate = worker.counter("creditline_records_duplicate_total", topic=topic)
        dead = worker.counter("creditline_records_dead_lettered_total", topic=topic)
        assert consumed == applied + duplicate + dead, topic
        assert dead == expected_dead[topic], topic
    sent_events = Counter(topics.topic_for(r.kind) for r in history)
    for topic in topics.events:
        applied = worker.counter("creditline_records_applied_total", topic=topic)
        duplicate = worker.counter("creditline_records_duplicate_total", topic=topic)
        assert (applied, duplicate) == (sent_events[topic], sent_events[topic]), topic
    assert worker.counter("creditline_decisions_total") == USERS
    assert worker.counter("creditline_decisions_total", outcome="declined") >= per
    assert (
        worker.counter("creditline_decisions_by_status_total", displayed="closed", effective="open")
        == per
    )
    assert worker.counter("creditline_decision_overrides_total") == 2 * per
    assert worker.counter("creditline_score_count") >= USERS
    text = worker.metrics_text()
    assert "user-0000" not in text  # no user ids in labels


async def test_an_event_is_visible_in_redis_within_a_fraction_of_a_second(
    worker: WorkerProcess,
) -> None:
    settings = worker.settings
    topics = Topics.from_settings(settings)
    delays = []
    store = store_for(settings)  # reads the one key: a scan would time the keyspace's size
    # One producer, started and knowing the topic before the clock runs: the test times the
    # worker, not a client's start-up (seconds on a slow machine).
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    try:
        await producer.partitions_for(topics.spending)
        # The fold is consuming (it starts beside the worker's own loop, in its process):
        # the test times folding, not the fold's start-up.
        await wait_for(lambda: _folding(settings), message="the fold to join its group", timeout=90)
        for i in range(5):
            doc = spending_doc(
                user_id="u-fresh", event_id=f"fresh-{i}", occurred_at=datetime.now(UTC).isoformat()
            )
            started = time.monotonic()
            await producer.send_and_wait(topics.spending, encode(doc), key=b"u-fresh")

            async def visible(expected: int = i + 1) -> bool:
                state = await store.read_state("u-fresh")
                return state is not None and state.spendings == expected

            await wait_for(visible, timeout=10, interval=0.01, message="the event in Redis")
            delays.append(time.monotonic() - started)
    finally:
        await producer.stop()
        await store.close()
    print(f"freshness: {[round(d * 1000) for d in delays]} ms")
    assert max(delays) < 1.0, delays


async def test_each_request_redelivered_three_times_gets_one_consistent_decision(
    worker: WorkerProcess,
) -> None:
    settings = worker.settings
    topics = Topics.from_settings(settings)
    now = datetime.now(UTC)
    await produce(
        settings,
        [
            (topics.topic_for(r.kind), r.key, r.value)
            for r in map(to_record, population_events(20, SEED, now))
        ],
    )
    await wait_for(lambda: _applied_users(settings, 20), timeout=60, message="20 users")
    asks = list(requests(20, SEED, now))
    copies = [(topics.loan_requests, r.key, r.value) for r in asks] * 3
    # The third copy of every request goes to another partition (another partitioner).
    await produce(settings, copies, partition_of=lambda i: (i % 12) if i >= 40 else None)
    published = await read_topic(settings, topics.loan_decisions, expect=60, timeout=60)
    by_request: dict[str, set[bytes]] = {}
    for record in published:
        rid = LoanDecision.model_validate_json(record.value).request_id
        by_request.setdefault(rid, set()).add(record.value)
    assert len(by_request) == 20
    assert all(len(payloads) == 1 for payloads in by_request.values())  # identical each time
    assert len(published) == 60
    assert worker.counter("creditline_records_duplicate_total", topic=topics.loan_requests) == 40
    assert worker.counter("creditline_decisions_total") == 20


async def _folding(settings: Settings) -> bool:
    return await group_members(settings) == ("Stable", fold_count(settings))


async def _applied_users(settings: Settings, users: int) -> bool:
    return len(await redis_states(settings)) >= users


def niceness(worker: WorkerProcess) -> int:
    """The process's nice value (field 19 of /proc/<pid>/stat)."""
    assert worker.process is not None
    stat = Path(f"/proc/{worker.process.pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


async def test_events_and_decisions_can_run_in_separate_workers(
    worker_settings: Settings, tmp_path: Path
) -> None:
    from streams.adapters.kafka.admin import ensure_topics
    from tests.conftest import cleanup
    from tests.e2e.conftest import WorkerProcess, free_port

    await ensure_topics(worker_settings)
    events_worker = WorkerProcess(
        worker_settings.model_copy(update={"worker_role": "events", "worker_nice": 10}),
        tmp_path / "events.log",
    )
    decisions_worker = WorkerProcess(
        worker_settings.model_copy(update={"worker_role": "decisions", "web_port": free_port()}),
        tmp_path / "decisions.log",
    )
    try:
        events_worker.start()
        decisions_worker.start()
        topics = Topics.from_settings(worker_settings)
        now = datetime.now(UTC)
        events = population_events(8, SEED, now)
        await produce(
            worker_settings,
            [(topics.topic_for(r.kind), r.key, r.value) for r in map(to_record, events)],
        )
        await assert_redis_matches_reference(worker_settings, events)
        asks = list(requests(8, SEED, now))
        await produce(worker_settings, [(topics.loan_requests, r.key, r.value) for r in asks])
        published = await read_topic(worker_settings, topics.loan_decisions, expect=8)
        assert len(published) == 8
        assert events_worker.counter("creditline_decisions_total") == 0
        assert decisions_worker.counter("creditline_decisions_total") == 8
        spending_applied = decisions_worker.counter(
            "creditline_records_applied_total", topic=topics.spending
        )
        assert spending_applied == 0
        # The events worker yields the CPU (niceness 10), the decisions worker does not.
        assert niceness(events_worker) == niceness(decisions_worker) + 10
    finally:
        events_worker.stop()
        decisions_worker.stop()
        await cleanup(worker_settings)
