"""The services on fakes of their ports: folding, deciding and reviewing, with conflicts,
outages and bad input injected — no Kafka, no Redis, milliseconds per test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas import dead_letter
from schemas.models import InputEvent, LineStatusChanged, LoanDecision, LoanRequest
from streams.core.decoding import RecordKind
from streams.core.policy import load_default_policy
from streams.core.shadow import Candidate, shadow_answer
from streams.core.timeline import advance, canonical, constant, standing
from streams.devtools.simulation import to_record
from streams.errors import ShuttingDown
from streams.metrics import Metrics
from streams.ports import InboundRecord, StoredUser
from streams.service import fold as fold_service
from streams.service import shadowing
from streams.service.decide import REQUESTS_IN_FLIGHT, LoanDecider
from streams.service.fold import YIELD_EVERY_USERS, EventFolder
from streams.service.request_flow import EarlierRequestUnanswered
from streams.service.review import ReviewSweeper
from streams.settings import Settings
from streams.topics import Topics
from tests.builders import asset, encode, repayment, request_doc, spending
from tests.unit.fakes import FakeSink, FakeStore, record_of

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SETTINGS = Settings.model_construct(**Settings().model_dump())
TOPICS = Topics.from_settings(SETTINGS)
TIMELINE = constant(load_default_policy())
HORIZON = timedelta(days=SETTINGS.event_horizon_days)


def folder(store: FakeStore, sink: FakeSink, metrics: Metrics, stop: bool = False) -> EventFolder:
    return EventFolder(
        SETTINGS,
        store,
        sink,
        metrics,
        lambda: TIMELINE,
        clock=lambda: NOW,
        should_stop=lambda: stop,
    )


def history(user: str = "u-1") -> list[InputEvent]:
    events: list[InputEvent] = [
        repayment(
            event_id=f"r{i}",
            user_id=user,
            occurred_at=(NOW - timedelta(days=30 * (i + 1))).isoformat(),
        )
        for i in range(6)
    ]
    events.append(
        spending(event_id="s1", user_id=user, occurred_at=(NOW - timedelta(days=3)).isoformat())
    )
    return events


def records(events: list[InputEvent], start: int = 0) -> list[InboundRecord]:
    return [
        record_of(TOPICS.topic_for(_kind(e)), e, offset) for offset, e in enumerate(events, start)
    ]


def _kind(event: InputEvent) -> RecordKind:
    return to_record(event).kind


async def test_a_batch_is_folded_into_the_reference_checkpoint() -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    events = history()
    report = await folder(store, sink, metrics).process(records(events))
    assert sum(report.applied.values()) == len(events)
    expected = advance(canonical(events), TIMELINE, NOW, HORIZON)
    assert store.user("u-1").checkpoint == expected
    # The first status is announced, and the outbox emptied once published.
    [announced] = sink.to(TOPICS.line_status)
    assert LineStatusChanged.model_validate_json(announced.value or b"").previous_status is None
    assert store.user("u-1").status_event is None


async def test_a_parts_reviews_are_scheduled_while_its_status_events_go_out() -> None:
    """The schedule's round trip does not wait for the status events' nor they for it: a
    store whose schedule answers only once the part's status event was handed over would
    never answer a fold that scheduled first."""
    announced = asyncio.Event()

    class AnnouncingSink(FakeSink):
        async def send(self, topic: str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
            if topic == TOPICS.line_status:
                announced.set()
            return await super().send(topic, *args, **kwargs)

    class ScheduleAfterTheAnnouncement(FakeStore):
        async def schedule(self, reviews: Any) -> None:
            await announced.wait()
            await super().schedule(reviews)

    sink, store = AnnouncingSink(), ScheduleAfterTheAnnouncement()
    report = await asyncio.wait_for(folder(store, sink, Metrics()).process(records(history())), 5)
    assert sum(report.applied.values()) == len(history())
    assert len(sink.to(TOPICS.line_status)) == 1
    assert store.schedule_  # the next review was still scheduled
    assert store.user("u-1").status_event is None  # and the outbox emptied after both


async def test_every_write_observes_the_score_it_stands_at_announced_or_not() -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    fold = folder(store, sink, metrics)
    events = history()
    scores = []
    # One event per batch, oldest last: late events restate, and the status changes in some
    # writes only (those announce it; the others take the score from the status machine).
    for offset, event in enumerate(reversed(events)):
        await fold.process(records([event], offset))
        shown = standing(store.user("u-1").checkpoint, TIMELINE)
        assert shown is not None
        scores.append(shown.score)
    announced = len(sink.to(TOPICS.line_status))
    assert 0 < announced < len(events)
    count = metrics.registry.get_sample_value("creditline_score_count")
    total = metrics.registry.get_sample_value("creditline_score_sum")
    assert (count, total) == (len(events), sum(scores))


async def test_a_large_batch_hands_the_event_loop_back_while_it_folds() -> None:
    """A batch of many users lets other tasks (the consumer's heartbeats) run within its
    fold, not only at its Redis calls: the fakes never yield, so only the fold can."""
    users = 3 * YIELD_EVERY_USERS
    events: list[InputEvent] = [
        spending(
            event_id=f"s{i}", user_id=f"u-{i}", occurred_at=(NOW - timedelta(days=1)).isoformat()
        )
        for i in range(users)
    ]
    fold = folder(FakeStore(), FakeSink(), Metrics())
    folded = 0
    fold_user = fold.fold_user

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal folded
        folded += 1
        return fold_user(*args, **kwargs)

    fold.fold_user = counting  # type: ignore[method-assign]
    seen: set[int] = set()
    stop = asyncio.Event()

    async def watching() -> None:
        while not stop.is_set():
            seen.add(folded)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watching())
    await asyncio.sleep(0)
    await fold.process(records(events))
    stop.set()
    await watcher
    assert folded == users
    assert {n for n in seen if 0 < n < users} == {
        k * YIELD_EVERY_USERS for k in range(1, users // YIELD_EVERY_USERS)
    }


async def test_redeliveries_are_duplicates_and_other_content_under_an_id_a_conflict() -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    events = history()
    fold = folder(store, sink, metrics)
    await fold.process(records(events))
    changed = spending(event_id="s1", user_id="u-1", amount="99.00")
    report = await fold.process(records([*events, changed], 100))
    assert sum(report.duplicate.values()) == len(events)
    assert sum(report.dead_lettered.values()) == 1
    [letter] = sink.to(TOPICS.dead_letter)
    assert dict(letter.headers)[dead_letter.HEADER_ERROR_CODE] == b"CONFLICTING_EVENT_ID"


async def test_a_concurrent_write_makes_the_batch_read_and_fold_the_user_again() -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    events = history()
    bumps = iter([True])

    def concurrent_writer() -> None:
        if next(bumps, False):
            store.user("u-1").version += 1  # another worker wrote the user in between

    store.before_save = concurrent_writer
    report = await folder(store, sink, metrics).process(records(events))
    assert sum(report.applied.values()) == len(events)
    assert store.calls.count("load") == 2
    assert metrics.registry.get_sample_value("creditline_store_conflicts_total") == 1.0


def population_of(users: int) -> list[InputEvent]:
    return [event for i in range(users) for event in history(f"u-{i}")]


async def test_a_batch_in_parts_is_folded_as_in_one_with_conflicts_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = population_of(10)
    whole, whole_sink = FakeStore(), FakeSink()
    await folder(whole, whole_sink, Metrics()).process(records(events))

    monkeypatch.setattr(fold_service, "USERS_PER_PART", 3)
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    saves = 0

    def concurrent_writer() -> None:
        nonlocal saves
        saves += 1
        if saves == 2:  # another worker wrote a user of the second part in between
            store.user("u-4").version += 1

    store.before_save = concurrent_writer
    report = await folder(store, sink, metrics).process(records(events))
    assert sum(report.applied.values()) == len(events)
    # Four parts (3 + 3 + 3 + 1 users), each read and written once; then the conflicting
    # user alone, read and written again.
    assert store.calls.count("load") == 5
    assert store.calls.count("save") == 5
    assert {u: store.user(u).checkpoint for u in whole.users} == {
        u: whole.user(u).checkpoint for u in whole.users
    }
    assert sorted((s.key, s.value) for s in sink.to(TOPICS.line_status)) == sorted(
        (s.key, s.value) for s in whole_sink.to(TOPICS.line_status)
    )


class FailingFirstSave(FakeStore):
    """The first part's write fails; every later one waits (on a Redis that hangs)."""

    def __init__(self) -> None:
        super().__init__()
        self.hanging = asyncio.Event()

    async def save(self, writes: Any) -> list[str]:
        self.calls.append("save")
        if self.calls.count("save") == 1:
            await asyncio.sleep(0)
            raise RuntimeError("script error")
        await self.hanging.wait()
        return []


async def test_a_part_whose_write_fails_fails_the_batch_and_leaves_nothing_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fold_service, "USERS_PER_PART", 2)
    store = FailingFirstSave()
    with pytest.raises(RuntimeError, match="script error"):
        await asyncio.wait_for(
            folder(store, FakeSink(), Metrics()).process(records(population_of(6))), 10
        )
    # At least one later part's write was in flight (hanging) when the first one failed:
    # how many depends on the interpreter's task scheduling.
    assert store.calls.count("save") >= 2
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert all(t.done() for t in others)


async def test_an_unavailable_store_is_waited_for_never_skipped() -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    store.unavailable = {"load": 2, "save": 1}
    report = await folder(store, sink, metrics).process(records(history()))
    assert sum(report.applied.values()) == 7
    retries = metrics.registry.get_sample_value
    assert retries("creditline_store_retries_total", {"operation": "load"}) == 2.0


async def test_a_store_still_unavailable_when_stopping_leaves_the_batch_unapplied() -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    store.unavailable = {"load": 10**6}
    with pytest.raises(ShuttingDown):
        await folder(store, sink, metrics, stop=True).process(records(history()))
    assert store.user("u-1").version == 0


async def test_bad_records_are_dead_lettered_with_their_code_and_a_flood_is_a_storm() -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    bad = [InboundRecord(TOPICS.spending, 0, offset, b"u-1", b"not json") for offset in range(150)]
    report = await folder(store, sink, metrics).process(bad)
    assert sum(report.dead_lettered.values()) == 150
    codes = {dict(s.headers)[dead_letter.HEADER_ERROR_CODE] for s in sink.to(TOPICS.dead_letter)}
    assert codes == {b"NOT_JSON"}
    storm = metrics.registry.get_sample_value
    assert storm("creditline_dead_letter_storm", {"agent": "fold_events"}) == 1.0


async def test_an_outbox_left_by_a_crash_is_published_again() -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    await folder(store, sink, metrics).process(records(history()))
    store.user("u-1").status_event = b'{"left": "by a crash"}'
    await folder(store, sink, metrics).process(records(history()))  # all duplicates
    assert sink.to(TOPICS.line_status)[-1].value == b'{"left": "by a crash"}'
    assert store.user("u-1").status_event is None


def decider(
    store: FakeStore,
    sink: FakeSink,
    metrics: Metrics,
    candidate: Candidate | None = None,
    policy_confirmed: Callable[[datetime], Awaitable[bool]] | None = None,
) -> LoanDecider:
    return LoanDecider(
        SETTINGS.model_copy(update={"score_unavailable_wait_seconds": 0.05}),
        store,
        sink,
        metrics,
        lambda: TIMELINE,
        clock=lambda: NOW,
        candidate=lambda: candidate,
        policy_confirmed=policy_confirmed,
    )


def ask(request_id: str = "q-1", **overrides: object) -> InboundRecord:
    doc = request_doc(request_id=request_id, requested_at=NOW.isoformat(), **overrides)
    return InboundRecord(TOPICS.loan_requests, 0, 0, b"u-1", encode(doc))


async def test_decisions_come_from_the_standing_and_are_remembered_once() -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    await folder(store, FakeSink(), metrics).process(records(history()))
    deciding = decider(store, sink, metrics)
    [first] = await deciding.process([ask()])
    assert first.evaluated_at == NOW
    [again] = await deciding.process([ask()])
    assert again == first
    published = [s.value for s in sink.to(TOPICS.loan_decisions)]
    assert published[0] == published[1]
    # The same id with another body is a conflict, never the first request's answer.
    assert await deciding.process([ask(amount="99999.00")]) == []
    [letter] = sink.to(TOPICS.dead_letter)
    assert dict(letter.headers)[dead_letter.HEADER_ERROR_CODE] == b"CONFLICTING_REQUEST_ID"


@pytest.mark.parametrize("failing", ["read_state", "remember_decision"])
async def test_a_store_that_cannot_be_read_gives_a_review_never_an_approval(failing: str) -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    await folder(store, FakeSink(), metrics).process(records(history()))
    store.unavailable = {failing: 10**6}
    [decision] = await decider(store, sink, metrics).process([ask()])
    assert (decision.outcome.value, decision.reasons[0].code) == ("review", "SCORE_UNAVAILABLE")


async def test_unknown_users_and_untrusted_times_are_reviewed() -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    deciding = decider(store, sink, metrics)
    [unknown] = await deciding.process([ask()])
    assert unknown.reasons[0].code == "NO_HISTORY"
    backdated = request_doc(request_id="q-2", requested_at=(NOW - timedelta(days=1)).isoformat())
    record = InboundRecord(TOPICS.loan_requests, 0, 1, b"u-1", encode(backdated))
    [untrusted] = await deciding.process([record])
    assert untrusted.reasons[0].code == "REQUEST_TIME_UNTRUSTED"
    assert LoanDecision.model_validate_json(sink.sent[-1].value or b"") == untrusted


async def test_the_sweep_reviews_due_users_and_announces_a_thaw() -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    clock = {"now": NOW}
    late = repayment(
        event_id="late",
        occurred_at=(NOW - timedelta(days=89)).isoformat(),
        amount_paid="0.00",
        days_past_due=35,
    )
    fold = EventFolder(SETTINGS, store, sink, metrics, lambda: TIMELINE, clock=lambda: clock["now"])
    await fold.process(records([*history(), late]))
    assert LineStatusChanged.model_validate_json(sink.sent[-1].value or b"").status == "frozen"
    clock["now"] = NOW + timedelta(days=2)
    reviewed = await ReviewSweeper(fold, clock=lambda: clock["now"]).sweep({0})
    assert reviewed >= 1
    # The sweep's time is observed once, its reviews included (the fold folds no events then).
    sweeps = metrics.registry.get_sample_value("creditline_status_review_sweep_seconds_count")
    assert sweeps == 1
    thaw = LineStatusChanged.model_validate_json(sink.sent[-1].value or b"")
    assert (thaw.previous_status, thaw.status) == ("frozen", thaw.status)
    assert thaw.status != "frozen"
    assert thaw.changed_at == late.occurred_at + timedelta(days=90, microseconds=1)


async def test_a_rebalance_ends_a_sweep_between_rounds_and_leaves_the_rest_due() -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    fold = folder(store, sink, metrics)
    for i in range(12):  # a policy brought them all forward: due now, in partition 0
        store.schedule_[(0, f"u-{i:02d}")] = NOW - timedelta(hours=1)
    store.schedule_[(1, "u-other")] = NOW - timedelta(hours=1)
    rounds: list[int] = []
    review = fold.review

    async def reviewing(due: Mapping[str, set[int]]) -> int:
        rounds.append(len(due))
        return await review(due)

    fold.review = reviewing  # type: ignore[method-assign]
    fold.interrupted = lambda: len(rounds) >= 1  # a rebalance waits from the first round on
    sweeper = ReviewSweeper(fold, batch_users=5, clock=lambda: NOW)
    assert await sweeper.sweep({0, 1}) == 5
    assert rounds == [5]
    still_due = {key for key, at in store.schedule_.items() if at <= NOW}
    assert len(still_due) == 8 and (1, "u-other") in still_due
    # The partitions' next owner sweeps the rest (here, the same sweeper once it is free).
    fold.interrupted = lambda: False
    assert await sweeper.sweep({0, 1}) == 8
    assert rounds == [5, 5, 2, 1]
    assert not [key for key, at in store.schedule_.items() if at <= NOW]


async def test_a_request_reads_nothing_but_its_users_keys() -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    await folder(store, FakeSink(), metrics).process(records(history()))
    store.calls.clear()
    await decider(store, sink, metrics).process([ask()])
    assert store.calls == ["read_state", "remember_decision"]


class SlowReads(FakeStore):
    """A store whose reads of a user's state (of ``only`` that user's) take ``seconds``,
    noting when each began."""

    def __init__(self, seconds: float, only: str | None = None) -> None:
        super().__init__()
        self.seconds = seconds
        self.only = only
        self.began: list[str] = []
        self.reading = self.most_at_once = 0

    async def read_user(self, user_id: str) -> StoredUser:
        self.began.append(user_id)
        self.reading += 1
        self.most_at_once = max(self.most_at_once, self.reading)
        try:
            await asyncio.sleep(self.seconds if self.only in (None, user_id) else 0.0)
        finally:
            self.reading -= 1
        return await super().read_user(user_id)


def ask_of(user: str, request_id: str, offset: int, **overrides: object) -> InboundRecord:
    doc = request_doc(
        request_id=request_id, user_id=user, requested_at=NOW.isoformat(), **overrides
    )
    return InboundRecord(TOPICS.loan_requests, 0, offset, user.encode(), encode(doc))


async def test_a_batch_answers_other_users_while_one_waits_for_the_store() -> None:
    store, sink, metrics = SlowReads(0.2), FakeSink(), Metrics()
    users = [f"u-{i}" for i in range(10)]
    batch = [ask_of(user, f"q-{user}", i) for i, user in enumerate(users)]
    started = time.monotonic()
    decisions = await decider(store, sink, metrics).process(batch)
    # One after the other, ten reads would take 2 s; side by side, about one read's time.
    assert time.monotonic() - started < 1.0
    assert [d.request_id for d in decisions] == [f"q-{user}" for user in users]
    assert store.began == users


async def test_a_backlog_read_in_one_batch_is_answered_a_bounded_number_at_a_time() -> None:
    store, sink, metrics = SlowReads(0.01), FakeSink(), Metrics()
    batch = [ask_of(f"u-{i}", f"q-{i}", i) for i in range(REQUESTS_IN_FLIGHT * 4)]
    decisions = await decider(store, sink, metrics).process(batch)
    assert len(decisions) == len(batch)
    assert store.most_at_once == REQUESTS_IN_FLIGHT  # a connection each, at most


async def test_a_users_requests_in_a_batch_are_answered_in_record_order() -> None:
    store, sink, metrics = SlowReads(0.01), FakeSink(), Metrics()
    batch = [
        ask_of("u-1", "q-1", 0),
        ask_of("u-2", "q-2", 1),
        ask_of("u-1", "q-1", 2),  # redelivered: the same answer, counted as a duplicate
        ask_of("u-1", "q-1", 3, amount="99999.00"),  # the same id, another body
        ask_of("u-1", "q-3", 4),
    ]
    decisions = await decider(store, sink, metrics).process(batch)
    assert [d.request_id for d in decisions] == ["q-1", "q-2", "q-1", "q-3"]
    published = [s.value for s in sink.to(TOPICS.loan_decisions) if s.key == b"u-1"]
    assert [LoanDecision.model_validate_json(v or b"").request_id for v in published] == [
        "q-1",
        "q-1",
        "q-3",
    ]
    assert published[0] == published[1]
    [letter] = sink.to(TOPICS.dead_letter)
    assert dict(letter.headers)[dead_letter.HEADER_ERROR_CODE] == b"CONFLICTING_REQUEST_ID"
    sample = metrics.registry.get_sample_value
    assert sample("creditline_records_duplicate_total", {"topic": TOPICS.loan_requests}) == 1.0


async def test_a_stop_while_a_batch_is_answered_fails_the_batch_with_the_stop() -> None:
    store, sink, metrics = SlowReads(0.05), FakeSink(), Metrics()
    asked: list[datetime] = []

    async def confirmed(at: datetime) -> bool:
        asked.append(at)
        if len(asked) == 1:
            raise ShuttingDown("stopping while the policy topic is read")
        await asyncio.sleep(0.2)
        return True

    stopping = decider(store, sink, metrics, policy_confirmed=confirmed)
    batch = [ask_of(f"u-{i}", f"q-{i}", i) for i in range(5)]
    with pytest.raises(ShuttingDown):  # itself, not in an exception group
        await stopping.process(batch)
    # The other requests were cancelled while they waited their turn: none was answered.
    assert sink.to(TOPICS.loan_decisions) == []
    assert store.began == []


async def test_a_batch_begun_while_another_waits_on_the_store_is_answered_meanwhile() -> None:
    store, sink, metrics = SlowReads(0.5, only="u-1"), FakeSink(), Metrics()
    deciding = decider(store, sink, metrics)
    started = time.monotonic()
    first = asyncio.ensure_future(await deciding.begin([ask_of("u-1", "q-1", 0)]))
    await (await deciding.begin([ask_of("u-2", "q-2", 1)]))
    # The second user's answer did not wait for the first's read of 0.5 s to end.
    assert time.monotonic() - started < 0.4
    assert not first.done()
    await first
    assert store.began == ["u-1", "u-2"]
    assert [s.key for s in sink.to(TOPICS.loan_decisions)] == [b"u-2", b"u-1"]


async def test_a_users_requests_in_later_batches_wait_for_the_earlier() -> None:
    store, sink, metrics = SlowReads(0.05), FakeSink(), Metrics()
    deciding = decider(store, sink, metrics)
    begun = [
        await deciding.begin([ask_of("u-1", f"q-{i}", i), ask_of(f"u-{i + 2}", f"o-{i}", i)])
        for i in range(4)
    ]
    await asyncio.gather(*begun)
    published = [
        LoanDecision.model_validate_json(s.value or b"").request_id
        for s in sink.to(TOPICS.loan_decisions)
        if s.key == b"u-1"
    ]
    assert published == ["q-0", "q-1", "q-2", "q-3"]
    assert len(deciding.user_order) == 0  # nothing kept once answered


async def test_a_users_request_after_one_that_failed_is_never_answered_before_it() -> None:
    store, sink, metrics = SlowReads(0.05), FakeSink(), Metrics()
    asked: list[datetime] = []

    async def confirmed(at: datetime) -> bool:
        asked.append(at)
        if len(asked) == 1:
            await asyncio.sleep(0.1)
            raise ShuttingDown("stopping while the policy topic is read")
        return True

    deciding = decider(store, sink, metrics, policy_confirmed=confirmed)
    failing = await deciding.begin([ask_of("u-1", "q-1", 0)])
    later = await deciding.begin([ask_of("u-1", "q-2", 1)])
    with pytest.raises(ShuttingDown):
        await failing
    with pytest.raises(EarlierRequestUnanswered):
        await later
    assert sink.to(TOPICS.loan_decisions) == []


async def test_begin_waits_while_too_many_requests_are_unanswered() -> None:
    store, sink, metrics = SlowReads(0.2), FakeSink(), Metrics()
    deciding = decider(store, sink, metrics)
    deciding.unanswered.limit = 3
    first = await deciding.begin([ask_of(f"u-{i}", f"q-{i}", i) for i in range(3)])
    waiting = asyncio.ensure_future(deciding.begin([ask_of("u-9", "q-9", 9)]))
    await asyncio.sleep(0.1)
    assert not waiting.done()  # the consumer reads no further meanwhile
    await first
    await (await waiting)
    assert deciding.unanswered.count == 0
    assert len(sink.to(TOPICS.loan_decisions)) == 4


async def test_requests_arriving_before_the_policy_is_known_wait_for_it_in_turn() -> None:
    # The policy topic is read 0.15 s after the batch arrives; each confirmation waits at
    # most 0.1 s. In turn, only the first request is reviewed for want of a policy.
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    await folder(store, FakeSink(), metrics).process(records(history()))
    known_at = time.monotonic() + 0.15

    async def confirmed(at: datetime) -> bool:
        waited = min(0.1, max(0.0, known_at - time.monotonic()))
        await asyncio.sleep(waited)
        return time.monotonic() >= known_at

    deciding = decider(store, sink, metrics, policy_confirmed=confirmed)
    batch = [ask_of("u-1", "q-1", 0), ask_of("u-2", "q-2", 1), ask_of("u-3", "q-3", 2)]
    decisions = await deciding.process(batch)
    codes = [d.reasons[0].code for d in decisions]
    assert codes[0] == "POLICY_UNAVAILABLE"
    assert "POLICY_UNAVAILABLE" not in codes[1:]


def nearly_reopened() -> list[InputEvent]:
    """:func:`history` with a verified income of 12,000: a score of 589, closed by the
    default policy (reopening at 590), open with the candidate's 575."""
    income = asset(
        event_id="inc",
        occurred_at=(NOW - timedelta(days=10)).isoformat(),
        asset_type="income",
        value="12000.00",
    )
    return [*history(), income]


def lower_reopening() -> Candidate:
    policy = load_default_policy()
    thresholds = policy.status.thresholds.model_copy(update={"reopen_at": 575})
    status = policy.status.model_copy(update={"thresholds": thresholds})
    return Candidate(
        policy.model_copy(update={"version": "reopen-575", "status": status}), None, NOW
    )


async def eventually(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait for ``condition``: the candidate answers in the decider's idle moments, which
    come later on a slower or busier machine."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(shadowing.IDLE_SECONDS)


async def test_a_candidate_in_shadow_answers_when_the_decider_is_idle() -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    await folder(store, FakeSink(), metrics).process(records(nearly_reopened()))
    candidate = lower_reopening()
    deciding = decider(store, sink, metrics, candidate)
    store.calls.clear()
    live = [*await deciding.process([ask("q-1")]), *await deciding.process([ask("q-2")])]
    count = metrics.registry.get_sample_value
    pair = {"live": live[0].outcome.value, "shadow": "approved"}
    # Requests one after the other: the candidate has not answered yet…
    assert count("creditline_shadow_decisions_total", pair) is None
    # … it has once the decider was idle, and its decisions wait for the next live one …
    await eventually(lambda: count("creditline_shadow_decisions_total", pair) == 2.0)
    live += await deciding.process([ask("q-3")])
    assert [s.topic for s in sink.sent] == [TOPICS.loan_decisions] * 3 + [
        TOPICS.loan_decisions_shadow
    ] * 2  # q-1's and q-2's, in the produce request of q-3's live decision
    await deciding.shadow_outbox.drain()
    # From the standing the live answers read: nothing read again.
    assert store.calls == ["read_state", "remember_decision"] * 3
    shadows = [LoanDecision.model_validate_json(s.value or b"") for s in sink.sent[3:]]
    assert [d.request_id for d in shadows] == ["q-1", "q-2", "q-3"]
    # Each is what the live machine answers with the candidate taking effect at that instant.
    checkpoint = advance(canonical(nearly_reopened()), TIMELINE, NOW, HORIZON)
    for decision, shadow in zip(live, shadows, strict=True):
        assert decision.policy_version == TIMELINE.base.version
        assert (decision.outcome.value, decision.score) == ("declined", 589)
        doc = request_doc(request_id=decision.request_id, requested_at=NOW.isoformat())
        request = LoanRequest.model_validate(doc)
        assert shadow == shadow_answer(
            request, checkpoint, [], TIMELINE, candidate, NOW, NOW, HORIZON
        )
        assert (shadow.outcome.value, shadow.policy_version) == ("approved", "reopen-575")


async def test_the_candidates_decisions_go_out_alone_when_no_request_follows() -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    await folder(store, FakeSink(), metrics).process(records(nearly_reopened()))
    await decider(store, sink, metrics, lower_reopening()).process([ask("q-1")])
    expected = [TOPICS.loan_decisions, TOPICS.loan_decisions_shadow]
    await eventually(lambda: [s.topic for s in sink.sent] == expected)


async def test_a_decider_never_idle_still_has_every_request_answered_in_shadow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    await folder(store, FakeSink(), metrics).process(records(nearly_reopened()))
    monkeypatch.setattr(shadowing, "MAX_WAITING", 2)
    deciding = decider(store, sink, metrics, lower_reopening())
    pair = {"live": "declined", "shadow": "approved"}
    count = metrics.registry.get_sample_value
    for n in range(5):
        await deciding.process([ask(f"q-{n}")])
        # Beyond 2 waiting, each request has the oldest answered at once.
        assert (count("creditline_shadow_decisions_total", pair) or 0) == max(0, n - 1)
    await eventually(lambda: count("creditline_shadow_decisions_total", pair) == 5.0)


async def test_a_candidate_that_fails_costs_the_live_answer_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, sink, metrics = FakeStore(), FakeSink(), Metrics()
    await folder(store, FakeSink(), metrics).process(records(nearly_reopened()))

    def broken(*args: object) -> LoanDecision:
        raise ArithmeticError("a bug in the candidate")

    monkeypatch.setattr(shadowing, "shadow_answer", broken)
    deciding = decider(store, sink, metrics, lower_reopening())
    [live] = await deciding.process([ask("q-1")])
    await deciding.shadow_outbox.drain()
    assert [s.topic for s in sink.sent] == [TOPICS.loan_decisions]
    assert live == LoanDecision.model_validate_json(sink.sent[0].value or b"")
    failed = {"live": live.outcome.value, "shadow": "failed"}
    assert metrics.registry.get_sample_value("creditline_shadow_decisions_total", failed) == 1.0
