"""The line status as a function of event time: any batching, order, duplication, crash or
replay of a user's events gives the same status trajectory as the reference."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.models import EffectiveStatus, InputEvent, RepaymentEvent
from streams.core.policy import load_default_policy
from streams.core.scoring import LineStatus
from streams.core.timeline import (
    START,
    Checkpoint,
    PolicyTimeline,
    advance,
    at_time,
    canonical,
    constant,
    daily_review_at_or_after,
    needs_ledger,
    new_change_intervals,
    next_month_start,
    update,
)
from tests.builders import asset, repayment, spending
from tests.properties import examples

POLICY = load_default_policy()
TIMELINE = constant(POLICY)
HORIZON = timedelta(days=1826)
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def reference(
    events: Sequence[InputEvent],
    until: datetime,
    timelines: PolicyTimeline = TIMELINE,
    horizon: timedelta = HORIZON,
) -> Checkpoint:
    """Every distinct event at once, in canonical order: the answer every path must give."""
    unique = {e.event_id: e for e in events}
    return advance(canonical(list(unique.values())), timelines, until, horizon)


def process(
    batches: Sequence[tuple[Sequence[InputEvent], datetime]],
    timelines: PolicyTimeline = TIMELINE,
    horizon: timedelta = HORIZON,
) -> Checkpoint:
    """What the worker does: batch after batch (each at its own wall-clock time), events
    deduplicated by id, the earlier events passed only when needed."""
    stored = START
    ledger: dict[str, InputEvent] = {}
    for events, now in batches:
        fresh = {e.event_id: e for e in events if e.event_id not in ledger}
        latest = max((e.occurred_at for e in ledger.values()), default=None)
        needed = needs_ledger(stored, list(fresh.values()), latest, now, horizon)
        earlier = list(ledger.values()) if needed else None
        stored = update(stored, list(fresh.values()), earlier, timelines, now, horizon)
        ledger.update(fresh)
    return stored


def assert_same(actual: Checkpoint, expected: Checkpoint) -> None:
    assert actual.trajectory == expected.trajectory
    assert actual.state == expected.state  # bit for bit, decayed counters included


def _event(kind: int, index: int, offset: timedelta, level: int, amount: int) -> InputEvent:
    occurred = (NOW - offset).isoformat()
    if kind == 0:
        dpd = (0, 0, 0, 5, 35, 95)[level]
        paid = "0.00" if level >= 4 else f"{amount}.00"
        return repayment(
            event_id=f"e{index}",
            occurred_at=occurred,
            loan_id=f"loan-{index % 3}",
            amount_due=f"{amount}.00",
            amount_paid=paid,
            days_past_due=dpd,
            outstanding_balance=f"{amount * 10}.00",
        )
    if kind == 1:
        return spending(event_id=f"e{index}", occurred_at=occurred, amount=f"{amount}.00")
    asset_type = ("income", "deposit", "investment")[level % 3]
    return asset(
        event_id=f"e{index}",
        occurred_at=occurred,
        asset_type=asset_type,
        value=f"{amount * 40}.00",
        verified=level % 2 == 0,
    )


@st.composite
def histories(draw: st.DrawFn) -> list[InputEvent]:
    """One user's events over up to two years, some at the same instant."""
    count = draw(st.integers(1, 18))
    events = []
    instants = [
        timedelta(seconds=draw(st.integers(0, 700 * 86400))) for _ in range(max(1, count // 2))
    ]
    for index in range(count):
        offset = (
            draw(st.sampled_from(instants))
            if draw(st.booleans())
            else timedelta(seconds=draw(st.integers(0, 700 * 86400)))
        )
        events.append(
            _event(
                draw(st.integers(0, 2)),
                index,
                offset,
                draw(st.integers(0, 5)),
                draw(st.integers(100, 20_000)),
            )
        )
    return events


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=histories(), seed=st.integers(0, 2**32 - 1))
def test_any_batching_order_and_duplication_gives_the_reference_trajectory(
    events: list[InputEvent], seed: int
) -> None:
    rng = random.Random(seed)
    delivered = events + rng.sample(events, k=rng.randint(0, len(events)))  # redeliveries
    rng.shuffle(delivered)
    cuts = sorted(
        rng.sample(range(1, len(delivered)), k=min(len(delivered) - 1, rng.randint(0, 5)))
    )
    chunks = [delivered[a:b] for a, b in itertools.pairwise([0, *cuts, len(delivered)])]
    # Batches are processed at non-decreasing wall-clock times, with empty sweeps between.
    clock = NOW + timedelta(minutes=1)
    batches: list[tuple[Sequence[InputEvent], datetime]] = []
    for chunk in chunks:
        batches.append((chunk, clock))
        if rng.random() < 0.3:
            batches.append(([], clock))
        clock += timedelta(seconds=rng.randint(0, 5))
    assert_same(process(batches), reference(events, clock - timedelta(seconds=0)))


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=histories(), seed=st.integers(0, 2**32 - 1), days=st.integers(1, 200))
def test_time_passing_reviews_are_the_same_whenever_they_are_swept(
    events: list[InputEvent], seed: int, days: int
) -> None:
    rng = random.Random(seed)
    start = NOW + timedelta(minutes=1)
    end = start + timedelta(days=days)
    sweeps = sorted(start + (end - start) * rng.random() for _ in range(rng.randint(0, 6)))
    batches: list[tuple[Sequence[InputEvent], datetime]] = [(events, start)]
    batches += [([], moment) for moment in sweeps]
    batches.append(([], end))
    assert_same(process(batches), reference(events, end))


def test_a_status_at_any_past_moment_is_the_reference_up_to_that_moment() -> None:
    rng = random.Random(5)
    events = [_event(i % 3, i, timedelta(days=rng.randint(0, 400)), i % 6, 500) for i in range(30)]
    stored = process([(events, NOW)])
    ordered = canonical(events)
    for days in (0, 1, 3, 30, 100, 250, 399, 500):
        moment = NOW - timedelta(days=days)
        past = [e for e in ordered if e.occurred_at <= moment]
        expected = reference(past, moment)
        actual = at_time(stored, ordered, TIMELINE, moment, HORIZON)
        # The next review may differ: the full ledger knows the events still to come.
        assert actual.trajectory.changes == expected.trajectory.changes
        assert actual.trajectory.reviewed_at == expected.trajectory.reviewed_at
        assert actual.state == expected.state


def _repayment(day: float, dpd: int = 0, paid: bool = True, index: int = 0) -> RepaymentEvent:
    return repayment(
        event_id=f"r{index}-{day}",
        occurred_at=(NOW - timedelta(days=day)).isoformat(),
        amount_paid="100.00" if paid else "0.00",
        days_past_due=dpd,
    )


def test_a_freeze_ends_exactly_when_its_window_runs_out() -> None:
    late = _repayment(100, dpd=35, paid=False)
    income = asset(
        event_id="inc",
        occurred_at=(NOW - timedelta(days=200)).isoformat(),
        asset_type="income",
        value="20000.00",
    )
    before = advance(canonical([late, income]), TIMELINE, late.occurred_at, HORIZON)
    line = before.trajectory.line
    assert line is not None and line.status is EffectiveStatus.FROZEN
    thaw = late.occurred_at + timedelta(days=90, microseconds=1)
    still = advance(canonical([late, income]), TIMELINE, thaw - timedelta(microseconds=1), HORIZON)
    assert still.trajectory.line == line
    after = advance(canonical([late, income]), TIMELINE, thaw, HORIZON)
    assert after.trajectory.reviewed_at == thaw
    thawed = after.trajectory.line
    assert thawed is not None and thawed.status is not EffectiveStatus.FROZEN
    assert thawed.since == thaw


def test_time_driven_reviews_fall_on_daily_reviews_and_month_starts() -> None:
    history = [_repayment(d, index=i) for i, d in enumerate(range(300, 0, -30))]
    done = advance(canonical(history), TIMELINE, NOW, HORIZON)
    nxt = done.trajectory.next_review
    assert nxt is not None and nxt > NOW
    assert nxt == daily_review_at_or_after(nxt)  # a 00:00 UTC instant
    assert nxt <= next_month_start(NOW)


def test_a_late_event_restates_the_past() -> None:
    steady = [_repayment(d, index=i) for i, d in enumerate(range(360, 0, -30))]
    first = process([(steady, NOW)])
    late = _repayment(45, dpd=95, paid=False, index=99)
    restated = process([(steady, NOW), ([late], NOW + timedelta(seconds=1))])
    assert restated.trajectory != first.trajectory
    assert_same(restated, reference([*steady, late], NOW + timedelta(seconds=1)))


def test_a_score_oscillating_around_a_threshold_changes_status_at_most_once_per_dwell() -> None:
    """Daily swings across the close/reopen thresholds: the dwell time holds the status."""
    income = asset(
        event_id="inc",
        occurred_at=(NOW - timedelta(days=200)).isoformat(),
        asset_type="income",
        value="12000.00",
        verified=True,
    )
    deposit = asset(
        event_id="dep",
        occurred_at=(NOW - timedelta(days=200)).isoformat(),
        asset_type="deposit",
        value="30000.00",
        verified=True,
    )
    events: list[InputEvent] = [income, deposit]
    # A loan whose balance swings debt-to-income across bins every day.
    for day in range(60, 0, -1):
        balance = "140000.00" if day % 2 else "10000.00"
        events.append(
            repayment(
                event_id=f"swing-{day}",
                occurred_at=(NOW - timedelta(days=day)).isoformat(),
                amount_due="0.00",
                amount_paid="0.00",
                outstanding_balance=balance,
            )
        )
    done = reference(events, NOW)
    changes = [c for c in done.trajectory.changes if c.settled]
    assert len(changes) >= 2, "the history must actually cross the thresholds"
    gaps = [b.since - a.since for a, b in itertools.pairwise(changes)]
    assert all(gap >= timedelta(days=7) for gap in gaps), gaps


def test_a_policy_takes_effect_at_its_instant_for_every_path() -> None:
    strict = POLICY.model_copy(
        update={
            "version": "strict",
            "status": POLICY.status.model_copy(
                update={
                    "thresholds": POLICY.status.thresholds.model_copy(
                        update={"close_below": 900, "reopen_at": 940}
                    )
                }
            ),
        }
    )
    effective = NOW - timedelta(days=20)
    timelines = PolicyTimeline.of(POLICY, [(effective, strict)])
    proofs: list[InputEvent] = [
        asset(
            event_id=f"proof-{kind}",
            occurred_at=(NOW - timedelta(days=370)).isoformat(),
            asset_type=kind,
            value="20000.00",
            verified=True,
        )
        for kind in ("income", "deposit")
    ]
    history = [*proofs, *(_repayment(d, index=i) for i, d in enumerate(range(360, 0, -30)))]
    done = reference(history, NOW, timelines)
    line = done.trajectory.line_at(effective - timedelta(seconds=1))
    assert line is not None and line.status is EffectiveStatus.OPEN
    after = done.trajectory.line_at(effective + timedelta(days=8))
    assert after is not None and after.status is EffectiveStatus.CLOSED
    split = process(
        [(history[:5], NOW), ([], NOW + timedelta(hours=1)), (history[5:], NOW)], timelines
    )
    assert_same(split, reference(history, NOW, timelines))


def test_an_event_leaving_the_horizon_is_forgotten_at_the_next_review() -> None:
    horizon = timedelta(days=100)
    old = _repayment(95, index=1)
    new = _repayment(10, index=2)
    done = advance(canonical([old, new]), TIMELINE, NOW + timedelta(days=10), horizon)
    assert done.state is not None and done.state.repayments == 1
    assert done.state.first_event_at == new.occurred_at


def test_no_events_no_status() -> None:
    done = advance([], TIMELINE, NOW, HORIZON)
    assert done.trajectory.line is None and done.trajectory.next_review is None


@pytest.mark.parametrize("status", list(EffectiveStatus))
def test_line_at_reads_the_trajectory(status: EffectiveStatus) -> None:
    a = LineStatus(status, NOW - timedelta(days=3), settled=False)
    b = LineStatus(EffectiveStatus.CLOSED, NOW - timedelta(days=1))
    from streams.core.trajectory import Trajectory

    trajectory = Trajectory((a, b), NOW, None)
    assert trajectory.line_at(NOW - timedelta(days=5)) is None
    assert trajectory.line_at(NOW - timedelta(days=2)) == a
    assert trajectory.line_at(NOW) == b


def _naive_intervals(known: tuple[LineStatus, ...], changes: tuple[LineStatus, ...]) -> list[float]:
    """The definition: every consecutive pair whose later change is new, settled and neither
    side frozen."""
    frozen = EffectiveStatus.FROZEN
    return [
        (after.since - before.since).total_seconds()
        for before, after in itertools.pairwise(changes)
        if after not in known and after.settled and frozen not in (before.status, after.status)
    ]


_change = st.builds(
    LineStatus,
    st.sampled_from(list(EffectiveStatus)),
    st.integers(0, 40).map(lambda day: NOW - timedelta(days=day)),
    st.booleans(),
)


@settings(max_examples=examples(400), suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_change, max_size=6),
    st.lists(_change, max_size=4),
    st.integers(0, 6),
    st.booleans(),
)
def test_new_change_intervals_match_their_definition(
    old: list[LineStatus], added: list[LineStatus], cut: int, share: bool
) -> None:
    """Appended changes (the common case, the prefix shared or merely equal) and rewritten
    histories give the intervals of the definition."""
    known = tuple(old)
    kept = known if share else tuple(LineStatus(c.status, c.since, c.settled) for c in known)
    for changes in (kept + tuple(added), kept[:cut] + tuple(added), tuple(added), kept):
        assert new_change_intervals(known, changes) == _naive_intervals(known, changes)


def test_new_change_intervals_observe_a_settled_change_after_the_first() -> None:
    first = LineStatus(EffectiveStatus.OPEN, NOW - timedelta(days=10), settled=False)
    closed = LineStatus(EffectiveStatus.CLOSED, NOW - timedelta(days=4))
    frozen = LineStatus(EffectiveStatus.FROZEN, NOW - timedelta(days=1))
    assert new_change_intervals((), (first,)) == []
    assert new_change_intervals((first,), (first, closed)) == [6 * 86400.0]
    assert new_change_intervals((first, closed), (first, closed)) == []
    assert new_change_intervals((first, closed), (first, closed, frozen)) == []
