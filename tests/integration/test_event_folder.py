"""Events published to the real Kafka, read back and folded into the real Redis."""

from __future__ import annotations

import asyncio
import gc
import random
from collections import Counter
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaProducer

from schemas import dead_letter
from streams.adapters.kafka.client import producer_options
from streams.adapters.kafka.sink import AioKafkaSink
from streams.core.policy import load_default_policy
from streams.core.state import reference_fold
from streams.core.timeline import constant, standing
from streams.devtools.simulation import population, population_events
from streams.errors import BatchInterrupted, ShuttingDown
from streams.metrics import Metrics
from streams.ports import InboundRecord, UserWrite
from streams.runtime.jobs import run_replay
from streams.service import fold as fold_service
from streams.service.fold import EventFolder
from streams.service.shell import BatchReport
from streams.settings import Settings
from streams.topics import Topics
from tests.builders import NOW, encode, repayment_doc, spending_doc, ts
from tests.checkpoints import default_timelines
from tests.states import assert_states_equal
from tests.support import (
    as_inbound,
    assert_trajectories_match_reference,
    headers_of,
    mixed_event,
    produce,
    read_to_end,
    read_topic,
    redis_states,
    store_for,
)


async def publish_population(settings: Settings, users: int, seed: int) -> list[InboundRecord]:
    """Publish a simulated population and read it back as consumed records."""
    topics = Topics.from_settings(settings)
    records = list(population(users, seed, NOW))
    await produce(settings, [(topics.topic_for(r.kind), r.key, r.value) for r in records])
    consumed: list[InboundRecord] = []
    for topic in topics.events:
        consumed.extend(as_inbound(await read_to_end(settings, topic)))
    assert len(consumed) == len(records)
    return consumed


async def run_folder(
    settings: Settings, batches: list[list[InboundRecord]], metrics: Metrics | None = None
) -> list[Counter[str]]:
    metrics = metrics or Metrics()
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    store = store_for(settings, metrics)
    reports: list[Counter[str]] = []
    try:
        timelines = constant(load_default_policy())
        folder = EventFolder(settings, store, AioKafkaSink(producer), metrics, lambda: timelines)
        for batch in batches:
            report = await folder.process(batch)
            reports.append(
                Counter(
                    {
                        "applied": sum(report.applied.values()),
                        "duplicate": sum(report.duplicate.values()),
                        "dead_lettered": sum(report.dead_lettered.values()),
                    }
                )
            )
    finally:
        await store.close()
        await producer.stop()
    return reports


def requeued_records(settings: Settings, metrics: Metrics) -> float:
    """Records counted as requeued, over every event topic."""
    return sum(
        metrics.registry.get_sample_value("creditline_records_requeued_total", {"topic": t}) or 0
        for t in Topics.from_settings(settings).events
    )


def chunks(records: list[InboundRecord], size: int) -> list[list[InboundRecord]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


async def test_published_events_fold_into_the_reference_state(settings: Settings) -> None:
    consumed = await publish_population(settings, users=24, seed=5)
    reports = await run_folder(settings, chunks(consumed, 97))
    assert sum(r["applied"] for r in reports) == len(consumed)
    events = population_events(24, 5, NOW)
    expected = reference_fold(events)
    assert_states_equal(await redis_states(settings), expected)
    # Each user's status history is the reference one, and the readable summary beside it
    # is the standing at the last review.
    await assert_trajectories_match_reference(settings, events)
    store = store_for(settings)
    try:
        for user, state in list(expected.items())[:6]:
            summary = await store.read_summary(user, default_timelines())
            stored = await store.read_user(user)
            assessment = standing(stored.checkpoint, constant(load_default_policy()))
            assert assessment is not None
            assert summary["score"] == str(assessment.score)
            assert summary["status"] == assessment.status.value
            assert summary["credit_limit"] == f"{assessment.credit_limit:.2f}"
            assert summary["events_applied"] == str(state.events_applied)
    finally:
        await store.close()


async def test_a_batch_in_parts_folds_into_the_reference_state(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parts of 5 users: Redis reads the next part and writes the last while one is folded.
    monkeypatch.setattr(fold_service, "USERS_PER_PART", 5)
    consumed = await publish_population(settings, users=24, seed=7)
    reports = await run_folder(settings, chunks(consumed, 150))
    assert sum(r["applied"] for r in reports) == len(consumed)
    events = population_events(24, 7, NOW)
    assert_states_equal(await redis_states(settings), reference_fold(events))
    await assert_trajectories_match_reference(settings, events)


async def test_a_stop_mid_batch_leaves_the_rest_for_redelivery_and_loses_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stop asked while a backlog's batch is folded ends it after the part in hand: the
    # parts written stay written, nothing is reported applied (the batch is not committed),
    # and the redelivered batch finds those parts' records duplicate and applies the rest.
    monkeypatch.setattr(fold_service, "USERS_PER_PART", 5)
    consumed = await publish_population(settings, users=24, seed=11)
    metrics = Metrics()
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    store = store_for(settings, metrics)
    stopping = False
    saves: list[int] = []
    save = store.save

    async def saving(writes: Sequence[UserWrite]) -> list[str]:
        nonlocal stopping
        saves.append(len(writes))
        stopping = True  # asked to stop while the first part is written
        return await save(writes)

    monkeypatch.setattr(store, "save", saving)
    timelines = constant(load_default_policy())
    try:
        folder = EventFolder(
            settings,
            store,
            AioKafkaSink(producer),
            metrics,
            lambda: timelines,
            should_stop=lambda: stopping,
        )
        with pytest.raises(ShuttingDown, match="of a batch's 5 parts"):
            await folder.process(list(consumed))
    finally:
        await store.close()
        await producer.stop()
    # The parts folded before the stop was seen were written (the next parts are read and
    # folded beside a part's write, so one or two more than the first); the rest were not.
    written = await redis_states(settings)
    assert 0 < len(written) < 24 and len(written) == 5 * len(saves)
    # Every record read is accounted for as requeued: none was dead-lettered, and nothing
    # is reported applied for a batch that is read again.
    requeued = requeued_records(settings, metrics)
    assert requeued == len(consumed)
    assert not metrics.registry.get_sample_value(
        "creditline_records_applied_total", {"topic": Topics.from_settings(settings).spending}
    )
    reports = await run_folder(settings, [list(consumed)])
    duplicates = sum(
        1 for record in consumed if record.key is not None and record.key.decode() in written
    )
    assert reports == [Counter(applied=len(consumed) - duplicates, duplicate=duplicates)]
    events = population_events(24, 11, NOW)
    assert_states_equal(await redis_states(settings), reference_fold(events))
    await assert_trajectories_match_reference(settings, events)


async def test_a_batch_with_its_own_duplicates_interrupted_by_a_rebalance_loses_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch that holds some records twice (a producer's retry) is ended by a rebalance after
    # its first part and read again whole: every record is requeued the first time; the
    # second time each is applied once and its copies, and the records of the part written
    # before, are duplicates; the state is the reference one.
    monkeypatch.setattr(fold_service, "USERS_PER_PART", 5)
    consumed = await publish_population(settings, users=24, seed=13)
    again = random.Random(13).sample(consumed, len(consumed) // 3)
    batch = [*consumed, *again]
    random.Random(14).shuffle(batch)
    metrics = Metrics()
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    store = store_for(settings, metrics)
    rebalancing = False
    save = store.save

    async def saving(writes: Sequence[UserWrite]) -> list[str]:
        nonlocal rebalancing
        rebalancing = True  # a rebalance waits from the first part's write on
        return await save(writes)

    monkeypatch.setattr(store, "save", saving)
    timelines = constant(load_default_policy())
    try:
        folder = EventFolder(settings, store, AioKafkaSink(producer), metrics, lambda: timelines)
        folder.interrupted = lambda: rebalancing
        with pytest.raises(BatchInterrupted, match="a rebalance after"):
            await folder.process(list(batch))
    finally:
        await store.close()
        await producer.stop()
    written = await redis_states(settings)
    assert 0 < len(written) < 24
    requeued = requeued_records(settings, metrics)
    assert requeued == len(batch)
    reports = await run_folder(settings, [list(batch)])
    fresh = sum(
        1 for record in consumed if record.key is not None and record.key.decode() not in written
    )
    assert reports == [Counter(applied=fresh, duplicate=len(batch) - fresh)]
    events = population_events(24, 13, NOW)
    assert_states_equal(await redis_states(settings), reference_fold(events))
    await assert_trajectories_match_reference(settings, events)


async def test_replay_folds_every_batch_with_the_garbage_collector_paused(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `creditline replay` folds as the worker does: with the collector paused inside each batch
    # (its records live until the batch ends) and resumed after, into the reference state.
    consumed = await publish_population(settings, users=12, seed=9)
    collecting: list[bool] = []
    process = EventFolder.process

    async def observed(self: EventFolder, records: list[InboundRecord]) -> BatchReport:
        collecting.append(gc.isenabled())
        return await process(self, records)

    monkeypatch.setattr(EventFolder, "process", observed)
    assert gc.isenabled()
    report = await run_replay(settings, decisions=False)
    assert report.applied == len(consumed)
    assert collecting and not any(collecting)
    assert gc.isenabled()
    events = population_events(12, 9, NOW)
    assert_states_equal(await redis_states(settings), reference_fold(events))


async def test_redelivered_records_are_recognised_and_change_nothing(settings: Settings) -> None:
    consumed = await publish_population(settings, users=12, seed=9)
    await run_folder(settings, chunks(consumed, 50))
    before = await redis_states(settings)
    # Redelivery: the same records again, partly inside one batch twice.
    replay = consumed + consumed[:30]
    reports = await run_folder(settings, chunks(replay, 64))
    assert sum(r["applied"] for r in reports) == 0
    assert sum(r["duplicate"] for r in reports) == len(replay)
    assert await redis_states(settings) == before


async def test_an_event_sent_twice_within_one_batch_is_applied_once(settings: Settings) -> None:
    # A producer's retry: the same event published again, read back as a second record
    # (another offset) and folded in the same batch as the first, never applied before.
    topics = Topics.from_settings(settings)
    records = list(population(12, 11, NOW))
    again = records[::7]
    await produce(
        settings, [(topics.topic_for(r.kind), r.key, r.value) for r in [*records, *again]]
    )
    consumed: list[InboundRecord] = []
    for topic in topics.events:
        consumed.extend(as_inbound(await read_to_end(settings, topic)))
    assert len(consumed) == len(records) + len(again)
    random.Random(3).shuffle(consumed)  # copies near and far from their first
    [report] = await run_folder(settings, [consumed])
    assert report["applied"] == len(records)
    assert report["duplicate"] == len(again)
    assert report["dead_lettered"] == 0
    events = population_events(12, 11, NOW)
    assert_states_equal(await redis_states(settings), reference_fold(events))
    await assert_trajectories_match_reference(settings, events)


async def test_shuffled_order_gives_the_same_state(
    settings: Settings, base_settings: Settings
) -> None:
    from tests.conftest import cleanup, isolated

    consumed = await publish_population(settings, users=16, seed=13)
    await run_folder(settings, chunks(consumed, 40))
    in_order = await redis_states(settings)

    other = isolated(
        base_settings,
        topic_repayments=settings.topic_repayments,
        topic_spending=settings.topic_spending,
        topic_assets=settings.topic_assets,
        topic_dead_letter=settings.topic_dead_letter,
        topic_line_status=settings.topic_line_status,
    )
    try:
        shuffled = list(reversed(consumed))
        random.Random(1).shuffle(shuffled)
        await run_folder(other, chunks(shuffled, 33))
        reordered = await redis_states(other)
    finally:
        await cleanup(other)
    assert_states_equal(reordered, in_order)
    await assert_trajectories_match_reference(settings, population_events(16, 13, NOW))


async def test_concurrent_workers_on_one_user_never_lose_an_update(settings: Settings) -> None:
    # As when a producer put one user's events on two partitions owned by two workers.
    consumed = await publish_population(settings, users=2, seed=21)
    metrics = Metrics()
    halves = [consumed[0::2], consumed[1::2]]
    await asyncio.gather(*(run_folder(settings, chunks(h, 3), metrics) for h in halves))
    expected = reference_fold(population_events(2, 21, NOW))
    assert_states_equal(await redis_states(settings), expected)
    await assert_trajectories_match_reference(settings, population_events(2, 21, NOW))


async def test_bad_records_are_dead_lettered_with_reasons_while_good_ones_apply(
    settings: Settings,
) -> None:
    topics = Topics.from_settings(settings)
    good = [(topics.spending, b"u-1", encode(spending_doc(event_id=f"s{i}"))) for i in range(5)]
    bad = [
        (topics.spending, b"u-1", b"not json"),
        (topics.repayments, b"u-1", encode(repayment_doc(amount_paid="1.001"))),
        (topics.repayments, b"u-9", encode(repayment_doc())),
        (topics.assets, b"", b"{}"),
    ]
    mixed = [good[0], bad[0], good[1], bad[1], good[2], bad[2], good[3], bad[3], good[4]]
    await produce(settings, mixed, partition_of=lambda i: 0)
    consumed: list[InboundRecord] = []
    for topic in topics.events:
        consumed.extend(as_inbound(await read_to_end(settings, topic)))
    consumed.sort(key=lambda r: (r.timestamp or 0, r.topic, r.offset))
    metrics = Metrics()
    originals = {(r.topic, r.partition, r.offset): r for r in consumed}
    reports = await run_folder(settings, [consumed], metrics)  # the fold empties the list
    assert reports[0] == Counter(applied=5, duplicate=0, dead_lettered=4)
    states = await redis_states(settings)
    assert states["u-1"].spendings == 5

    letters = await read_topic(settings, topics.dead_letter, expect=4)
    assert len(letters) == 4
    by_code = {headers_of(r)[dead_letter.HEADER_ERROR_CODE]: r for r in letters}
    assert set(by_code) == {"NOT_JSON", "TOO_MANY_DECIMALS", "KEY_MISMATCH", "EMPTY_KEY"}
    for code, letter in by_code.items():
        h = headers_of(letter)
        source = originals[
            (
                h[dead_letter.HEADER_SOURCE_TOPIC],
                int(h[dead_letter.HEADER_SOURCE_PARTITION]),
                int(h[dead_letter.HEADER_SOURCE_OFFSET]),
            )
        ]
        assert letter.value == source.value, code
        assert (letter.key or b"") == (source.key or b""), code
        assert h[dead_letter.HEADER_ERROR_MESSAGE]
    dead = metrics.registry.get_sample_value(
        "creditline_records_dead_lettered_total",
        {"topic": topics.repayments, "reason": "KEY_MISMATCH"},
    )
    assert dead == 1.0


async def test_a_reused_event_id_with_other_content_is_a_conflict_not_a_duplicate(
    settings: Settings,
) -> None:
    topics = Topics.from_settings(settings)
    original = spending_doc(event_id="e-1", amount="25.50")
    records = [
        (topics.spending, b"u-1", encode(original)),
        (topics.spending, b"u-1", encode({**original, "note": "unknown fields are ignored"})),
        (topics.spending, b"u-1", encode({**original, "amount": "99.00"})),
        (topics.repayments, b"u-1", encode(repayment_doc(event_id="e-1"))),
    ]
    await produce(settings, records[:1], partition_of=lambda i: 0)
    first = [
        r
        for topic in topics.events
        for r in as_inbound(await read_topic(settings, topic, expect=0, timeout=3))
    ]
    await produce(settings, records[1:], partition_of=lambda i: 0)
    consumed = [
        r
        for topic in topics.events
        for r in as_inbound(await read_topic(settings, topic, expect=0, timeout=3))
    ]
    later = [r for r in consumed if (r.topic, r.offset) not in {(f.topic, f.offset) for f in first}]
    reports = await run_folder(settings, [first, later])
    assert reports == [
        Counter(applied=1, duplicate=0, dead_lettered=0),
        Counter(applied=0, duplicate=1, dead_lettered=2),
    ]
    letters = await read_topic(settings, topics.dead_letter, expect=2)
    assert [headers_of(r)[dead_letter.HEADER_ERROR_CODE] for r in letters] == [
        "CONFLICTING_EVENT_ID"
    ] * 2
    states = await redis_states(settings)
    assert states["u-1"].spendings == 1 and states["u-1"].repayments == 0


async def test_a_users_kept_history_is_bounded_and_its_requests_reviewed_when_full(
    base_settings: Settings,
) -> None:
    from tests.conftest import cleanup, isolated
    from tests.integration.test_loan_decider import answer, now_doc

    s = isolated(base_settings, max_events_per_user=25, max_open_loans_per_user=3)
    from streams.adapters.kafka.admin import ensure_topics

    await ensure_topics(s)
    try:
        topics = Topics.from_settings(s)
        loans = [
            (
                topics.repayments,
                b"u-loans",
                encode(repayment_doc(event_id=f"l{i}", user_id="u-loans", loan_id=f"loan-{i}")),
            )
            for i in range(5)
        ]
        flood = [
            (
                topics.spending,
                b"u-flood",
                encode(spending_doc(event_id=f"s{i}", user_id="u-flood", occurred_at=ts(i / 100))),
            )
            for i in range(40)
        ]
        await produce(s, loans + flood, partition_of=lambda i: 0)
        consumed = [
            r
            for topic in topics.events
            for r in as_inbound(await read_topic(s, topic, expect=0, timeout=3))
        ]
        metrics = Metrics()
        reports = await run_folder(s, chunks(consumed, 7), metrics)
        assert sum(r["applied"] for r in reports) == 3 + 25
        assert sum(r["dead_lettered"] for r in reports) == 2 + 15
        letters = await read_topic(s, topics.dead_letter, expect=17)
        codes = Counter(headers_of(r)[dead_letter.HEADER_ERROR_CODE] for r in letters)
        assert codes == Counter({"USER_LOAN_LIMIT": 2, "USER_EVENT_LIMIT": 15})
        store = store_for(s)
        try:
            assert (await store.read_user("u-flood")).ledger_size == 25
            assert (await store.read_summary("u-flood", default_timelines()))[
                "at_capacity"
            ] == "events"
            assert (await store.read_summary("u-loans", default_timelines()))[
                "at_capacity"
            ] == "loans"
        finally:
            await store.close()
        decided = await answer(
            s,
            [
                now_doc(user_id="u-flood", request_id="q-flood"),
                now_doc(user_id="u-loans", request_id="q-loans"),
            ],
        )
        assert {d.user_id: (d.outcome.value, d.reasons[0].code) for d in decided} == {
            "u-flood": ("review", "EVENT_LIMIT_REACHED"),
            "u-loans": ("review", "LOAN_LIMIT_REACHED"),
        }
    finally:
        await cleanup(s)


async def test_a_user_with_ten_events_keeps_under_a_kibibyte_in_redis(settings: Settings) -> None:
    # The benchmark's mix (60 % spending, 30 % repayments, 10 % assets) over 300 days,
    # arriving shuffled across batches. Each user's whole hash, key included (MEMORY USAGE:
    # exact, unlike used_memory under parallel tests); at scale the review schedule adds
    # ~110 B per user (docs/sizing.md, "Redis memory").
    topics = Topics.from_settings(settings)
    rng = random.Random(5)
    users = [f"m{i:05d}" for i in range(200)]
    records = [
        mixed_event(topics, rng, user, f"e{n}-{j}", j / 10, n % 4, n * 10 + j)
        for n, user in enumerate(users)
        for j in range(10)
    ]
    rng.shuffle(records)
    reports = await run_folder(settings, chunks(records, 500))
    assert sum(r["applied"] for r in reports) == len(records)
    store = store_for(settings)
    try:
        sizes = [await store.client.memory_usage(store.keys.state(u), samples=0) for u in users]
    finally:
        await store.close()
    mean = sum(int(size or 0) for size in sizes) / len(users)
    assert mean <= 900, f"{mean:.0f} B per user"
