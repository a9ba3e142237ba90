"""Same history, same answer: the line status, its start, the limit and every decision are a
function of event time — not of batching, arrival order, crashes, rebalances or replay.

500 users whose scores cross the thresholds in both directions are published four ways, each
to topics and a Redis prefix of its own, with the same user ids and the same event times:
(a) all at once, (b) one event per batch, (c) shuffled in four chunks with three SIGKILLs of
the worker, (d) through two workers with rebalances. Every answer must be identical across
the four and equal to the reference (the status machine run over each user's events at once).
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.models import InputEvent, LineStatusChanged, LoanDecision, LoanRequest
from streams.adapters.kafka.admin import ensure_topics
from streams.core.answer import answer
from streams.core.policy import load_default_policy
from streams.core.timeline import Checkpoint, advance, at_time, canonical, constant
from streams.devtools.simulation import to_record
from streams.settings import Settings
from streams.topics import Topics
from tests.builders import repayment
from tests.conftest import cleanup, isolated
from tests.e2e.conftest import WorkerProcess, creditline, free_port
from tests.histories import crossing_population, request_for
from tests.support import (
    produce,
    publish,
    read_to_end,
    read_topic,
    redis_states,
    status_changes,
    store_for,
    wait_for,
)

USERS = 500
TIMELINE = constant(load_default_policy())
HORIZON = timedelta(days=1826)
#: The summary fields every variant must agree on.
ANSWER_FIELDS = (
    "status",
    "status_since",
    "credit_limit",
    "available_limit",
    "segment",
    "score",
    "reviewed_at",
)


#: Hash fields about the writes themselves, not the answer; and the ledger, kept in arrival
#: order (compared as a set of entries instead).
WRITE_FIELDS = (b"ver", b"written_at", b"ledger")


@dataclass
class Variant:
    """One way of delivering the population, with what it ended up with."""

    name: str
    settings: Settings
    summaries: dict[str, dict[str, str]] = field(default_factory=dict)
    at_compare: dict[str, Checkpoint] = field(default_factory=dict)
    decisions: dict[str, LoanDecision] = field(default_factory=dict)


def variant_settings(base: Settings, **overrides: Any) -> Settings:
    # Every variant's requests carry the same requested_at, published minutes apart.
    return isolated(
        base,
        partitions=12,
        web_port=free_port(),
        request_time_tolerance_seconds=3600,
        **overrides,
    )


def records_of(settings: Settings, events: Sequence[InputEvent]) -> list[tuple[str, bytes, bytes]]:
    topics = Topics.from_settings(settings)
    return [(topics.topic_for(r.kind), r.key, r.value) for r in map(to_record, events)]


async def applied_count(settings: Settings) -> int:
    return sum(s.events_applied for s in (await redis_states(settings)).values())


async def wait_all_applied(settings: Settings, total: int, timeout: float = 600) -> None:
    async def done() -> bool:
        return await applied_count(settings) == total

    await wait_for(done, timeout=timeout, interval=1.0, message=f"{total} events applied")


async def wait_applied_at_least(settings: Settings, count: int) -> None:
    async def some() -> bool:
        return await applied_count(settings) >= count

    await wait_for(some, timeout=600, interval=0.2, message=f"{count} events applied")


async def collect(variant: Variant, requests: Sequence[LoanRequest], compare_at: datetime) -> None:
    """Publish the requests, read the decisions, and read back every user's stored answer."""
    settings = variant.settings
    await publish(settings, requests)
    topic = Topics.from_settings(settings).loan_decisions

    async def all_answered() -> dict[str, LoanDecision]:
        # A request redelivered around a rebalance is answered again (the same bytes): count
        # distinct request ids, not records.
        records = await read_to_end(settings, topic)
        decided = (LoanDecision.model_validate_json(r.value) for r in records)
        found = {d.request_id: d for d in decided}
        return found if len(found) == len(requests) else {}

    variant.decisions = await wait_for(
        all_answered, timeout=300, interval=1.0, message=f"{variant.name}: every decision"
    )
    store = store_for(settings)
    try:
        for request in requests:
            user = request.user_id
            variant.summaries[user] = await store.read_summary(user, TIMELINE)
            stored = await store.read_user(user)
            ledger = await store.read_ledger(user)
            variant.at_compare[user] = at_time(
                stored.checkpoint, ledger, TIMELINE, compare_at, HORIZON
            )
    finally:
        await store.close()


async def with_workers(
    variant: Variant,
    tmp_path: Path,
    count: int,
    body: Callable[[list[WorkerProcess]], Awaitable[None]],
) -> None:
    await ensure_topics(variant.settings)
    workers = [
        WorkerProcess(
            variant.settings.model_copy(update={"web_port": free_port()}),
            tmp_path / f"{variant.name}-{i}.log",
        )
        for i in range(count)
    ]
    try:
        await body(workers)
    finally:
        for w in workers:
            if w.process is not None:
                w.stop()


@pytest.mark.slow
@pytest.mark.timeout(1500)
async def test_the_same_history_gets_the_same_answer_however_it_arrives(
    base_settings: Settings, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    population = crossing_population(USERS, seed=11, end=now - timedelta(days=1))
    events = [e for history in population.values() for e in history]
    total = len(events)
    asked_at = now  # before any request is published: the same instant for every variant
    rng = random.Random(3)
    requests = [request_for(user, asked_at, rng) for user in population]
    shuffled = list(events)
    random.Random(8).shuffle(shuffled)
    variants: list[Variant] = []

    # (a) everything at once.
    a = Variant("a", variant_settings(base_settings))

    async def at_once(workers: list[WorkerProcess]) -> None:
        await produce(a.settings, records_of(a.settings, events))
        workers[0].start()
        await wait_all_applied(a.settings, total)
        await collect(a, requests, asked_at)

    await with_workers(a, tmp_path, 1, at_once)
    variants.append(a)

    # (b) one event per batch, trickled.
    b = Variant("b", variant_settings(base_settings, batch_max_records=1))

    async def trickled(workers: list[WorkerProcess]) -> None:
        workers[0].start()
        for i in range(0, total, 250):
            await produce(b.settings, records_of(b.settings, shuffled[i : i + 250]))
        await wait_all_applied(b.settings, total)
        await collect(b, requests, asked_at)

    await with_workers(b, tmp_path, 1, trickled)
    variants.append(b)

    # (c) shuffled, in four chunks, the worker SIGKILLed three times mid-stream.
    c = Variant("c", variant_settings(base_settings))

    async def killed(workers: list[WorkerProcess]) -> None:
        worker = workers[0]
        worker.start()
        quarter = total // 4
        chunks = [shuffled[i * quarter : (i + 1) * quarter] for i in range(3)]
        chunks.append(shuffled[3 * quarter :])
        done = 0
        for index, chunk in enumerate(chunks):
            await produce(c.settings, records_of(c.settings, chunk))
            done += len(chunk)
            if index < 3:
                await wait_applied_at_least(c.settings, done - len(chunk) // 2)
                worker.kill()  # mid-chunk: no commit, no flush
                worker.start()
        await wait_all_applied(c.settings, total)
        await collect(c, requests, asked_at)

    await with_workers(c, tmp_path, 1, killed)
    variants.append(c)

    # (d) two workers, joining and leaving (rebalances mid-stream).
    d = Variant("d", variant_settings(base_settings))

    async def rebalanced(workers: list[WorkerProcess]) -> None:
        first, second = workers
        first.start()
        half = total // 2
        await produce(d.settings, records_of(d.settings, shuffled[:half]))
        await wait_applied_at_least(d.settings, half // 3)
        second.start()  # joins: partitions move
        await produce(d.settings, records_of(d.settings, shuffled[half:]))
        await wait_applied_at_least(d.settings, half + half // 3)
        first.stop()  # leaves: its partitions move again
        await wait_all_applied(d.settings, total)
        await collect(d, requests, asked_at)

    await with_workers(d, tmp_path, 2, rebalanced)
    variants.append(d)

    try:
        differing: dict[str, list[str]] = {}
        for user, history in population.items():
            reference = advance(canonical(history), TIMELINE, asked_at, HORIZON)
            for v in variants:
                got = v.at_compare[user]
                if (got.trajectory.changes, got.trajectory.reviewed_at, got.state) != (
                    reference.trajectory.changes,
                    reference.trajectory.reviewed_at,
                    reference.state,
                ):
                    differing.setdefault(user, []).append(f"{v.name}: status history")
            stored = [{k: v.summaries[user].get(k) for k in ANSWER_FIELDS} for v in variants]
            if (
                any(s != stored[0] for s in stored[1:])
                and len({s["reviewed_at"] for s in stored}) == 1
            ):
                differing.setdefault(user, []).append("stored answer")
        for request in requests:
            expected = answer(
                request,
                advance(canonical(population[request.user_id]), TIMELINE, asked_at, HORIZON),
                TIMELINE,
                asked_at,
                a.decisions[request.request_id].decided_at,
            ).model_dump(mode="json", exclude={"decided_at"})
            for v in variants:
                decided = v.decisions[request.request_id]
                if decided.model_dump(mode="json", exclude={"decided_at"}) != expected:
                    differing.setdefault(request.user_id, []).append(f"{v.name}: decision")
        crossings = sum(
            1
            for cp in a.at_compare.values()
            if {"open", "closed"} <= {c.status.value for c in cp.trajectory.changes}
        )
        print(
            f"\nsame history: {USERS} users × 4 deliveries, {total} events each, "
            f"{crossings} users crossing both ways, {len(differing)} users with a differing "
            "answer"
        )
        assert crossings >= 100
        assert differing == {}, dict(list(differing.items())[:10])

        # Every decision is re-derived exactly from the logs by `creditline explain`.
        explained = creditline(a.settings, "explain", "--all", "--json", timeout=300)
        assert explained.returncode == 0, explained.stdout[-2000:] + explained.stderr
        report = json.loads(explained.stdout)
        assert (report["decisions"], report["matching"]) == (USERS, USERS), {
            k: report[k] for k in ("decisions", "matching", "mismatching", "not_rederivable")
        }

        # Replay after every key is deleted: the same stored answers and, for redelivered
        # requests, the same decision bytes.
        await replay_gives_the_same(a, requests, tmp_path)
    finally:
        for v in variants:
            await cleanup(v.settings)


async def replay_gives_the_same(
    variant: Variant, requests: Sequence[LoanRequest], tmp_path: Path
) -> None:
    settings = variant.settings
    topic = Topics.from_settings(settings).loan_decisions
    published = {
        LoanDecision.model_validate_json(r.value).request_id: r.value
        for r in await read_topic(settings, topic, expect=len(requests))
    }
    store = store_for(settings)
    try:
        before = {u: await store.client.hgetall(store.keys.state(u)) for u in variant.summaries}
        ledgers = {u: sorted(await store.read_ledger_raw(u)) for u in variant.summaries}
        folded = {
            u: (await store.read_user(u), await store.read_ledger(u)) for u in variant.summaries
        }
        deleted = await store.delete_everything()
        assert deleted > 0
    finally:
        await store.close()
    replayed = creditline(settings, "replay", "--json", timeout=600)
    assert replayed.returncode == 0, replayed.stderr
    store = store_for(settings)
    reviewed_since = 0
    try:
        compare_at = datetime.now(UTC)
        for user, fields in before.items():
            assert sorted(await store.read_ledger_raw(user)) == ledgers[user], user
            old, old_ledger = folded[user]
            new = await store.read_user(user)
            if new.checkpoint.trajectory.reviewed_at != old.checkpoint.trajectory.reviewed_at:
                # A review instant came between the variant's worker stopping (minutes ago)
                # and the replay: the same history, advanced to the same instant, is the same.
                reviewed_since += 1
                then = at_time(old.checkpoint, old_ledger, TIMELINE, compare_at, HORIZON)
                now = at_time(
                    new.checkpoint, await store.read_ledger(user), TIMELINE, compare_at, HORIZON
                )
                assert (now.trajectory, now.state) == (then.trajectory, then.state), user
                continue
            after = await store.client.hgetall(store.keys.state(user))
            # Everything byte for byte but the count and the wall-clock time of the writes.
            assert {k: v for k, v in after.items() if k not in WRITE_FIELDS} == {
                k: v for k, v in fields.items() if k not in WRITE_FIELDS
            }, user
    finally:
        await store.close()
    # Most users have no review due within minutes: their bytes are compared.
    assert reviewed_since <= len(before) // 10, reviewed_since
    # A redelivered request gets the published decision back, byte for byte.
    sample = list(requests[:50])
    worker = WorkerProcess(
        settings.model_copy(update={"web_port": free_port()}), tmp_path / "after-replay.log"
    )
    worker.start()
    try:
        await publish(settings, sample)
        records = await read_topic(settings, topic, expect=len(requests) + len(sample), timeout=120)
    finally:
        worker.stop()
    by_id: dict[str, set[bytes]] = {}
    for r in records:
        by_id.setdefault(LoanDecision.model_validate_json(r.value).request_id, set()).add(r.value)
    assert all(by_id[q.request_id] == {published[q.request_id]} for q in sample)
    assert len(records) == len(requests) + len(sample)


async def test_a_freeze_that_runs_out_without_events_is_announced_on_time(
    worker: WorkerProcess,
) -> None:
    """The freeze window (90 days) of a repayment 35 days past due ends 20 s from now: the
    status change is announced by the review sweep within the lag target (60 s)."""
    settings = worker.settings
    now = datetime.now(UTC)
    thaws_at = now + timedelta(seconds=20)
    late_at = thaws_at - timedelta(days=90, microseconds=1)
    history: list[InputEvent] = [
        repayment(
            event_id=f"ok{i}",
            user_id="u-thaw",
            occurred_at=(late_at - timedelta(days=30 * (i + 1))).isoformat(),
        )
        for i in range(6)
    ]
    history.append(
        repayment(
            event_id="late",
            user_id="u-thaw",
            occurred_at=late_at.isoformat(),
            amount_paid=0,
            days_past_due=35,
        )
    )
    await publish(settings, history)

    async def announced() -> LineStatusChanged | None:
        changes = await status_changes(settings, "u-thaw")
        thawed = [c for c in changes if c.previous_status and c.previous_status.value == "frozen"]
        return thawed[0] if thawed else None

    frozen = await wait_for(lambda: status_changes(settings, "u-thaw"), message="a status")
    assert frozen[-1].status.value == "frozen"
    thawed = await wait_for(announced, timeout=120, message="the thaw announced")
    assert thawed.changed_at == thaws_at
    topic = Topics.from_settings(settings).line_status
    records = [r for r in await read_topic(settings, topic, expect=1) if r.key == b"u-thaw"]
    published_at = datetime.fromtimestamp(records[-1].timestamp / 1000, UTC)
    lag = (published_at - thaws_at).total_seconds()
    print(f"\nfreeze ran out at {thaws_at:%H:%M:%S}; announced {lag:.1f} s later")
    assert 0 <= lag <= 60
    assert worker.counter("creditline_status_review_lag_seconds_count") >= 1


async def test_a_late_event_restates_the_present_and_says_so(worker: WorkerProcess) -> None:
    settings = worker.settings
    now = datetime.now(UTC)
    steady: list[InputEvent] = [
        repayment(
            event_id=f"ok{i}",
            user_id="u-late",
            occurred_at=(now - timedelta(days=30 * (i + 1))).isoformat(),
        )
        for i in range(8)
    ]
    await publish(settings, steady)
    first = await wait_for(lambda: status_changes(settings, "u-late"), message="a status")
    assert first[-1].status.value != "frozen"
    # A repayment 35 days past due, ten days ago, arrives only now.
    late = repayment(
        event_id="late",
        user_id="u-late",
        occurred_at=(now - timedelta(days=10)).isoformat(),
        amount_paid=0,
        days_past_due=35,
    )
    await publish(settings, [late])

    async def restated() -> LineStatusChanged | None:
        changes = await status_changes(settings, "u-late")
        return changes[-1] if changes[-1].status.value == "frozen" else None

    change = await wait_for(restated, message="the restated status")
    assert change.changed_at == late.occurred_at
    assert change.reasons[0].code == "LATE_EVENT_RESTATED"
    assert worker.counter("creditline_line_status_restatements_total") == 1.0
