"""The compiled status machine (``native/``) gives what the Python core gives, bit for bit.

Every property runs the same work twice, the Python core alone and with the compiled loop,
and compares checkpoints (decayed counters included) and their stored bytes.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.models import (
    AssetEvent,
    AssetType,
    EffectiveStatus,
    InputEvent,
    RepaymentEvent,
    SpendingEvent,
)
from streams.core import compiled
from streams.core.codec import decode_trajectory, encode_state, encode_trajectory
from streams.core.features import derive_features
from streams.core.good_behaviour import future_values
from streams.core.instants import duration_micros, from_micros, to_micros
from streams.core.labels import add_months
from streams.core.ledger import StoredLedger, encode_entry
from streams.core.path_back import MAX_MONTHS, PathBack, path_back
from streams.core.policy import Policy, Thresholds, load_default_policy
from streams.core.scorecard import (
    ScorecardDocument,
    ScorecardTimeline,
    load_default_scorecard,
    load_expert_scorecard,
)
from streams.core.scoring import LineStatus
from streams.core.state import UserState, decay_factor, fold_events, month_index
from streams.core.timeline import (
    START,
    Checkpoint,
    PolicyTimeline,
    _resume_point_by,
    advance,
    at_time,
    canonical,
    needs_ledger,
    standing,
    update,
)
from streams.core.trajectory import Trajectory
from tests.properties import examples
from tests.scorecard_histories import AT, histories, income_event

#: Skipped where the compiled loop is not built (``make install`` builds it where cargo is;
#: ``test_the_compiled_loop_is_built_where_cargo_is`` fails if that build went missing).
native = pytest.importorskip("creditline_native")

POLICY = load_default_policy()
TIMELINE = PolicyTimeline(POLICY)
CARDS = (load_default_scorecard(), load_expert_scorecard())
HORIZON = timedelta(days=1826)
T = TypeVar("T")


@contextmanager
def python_core() -> Iterator[None]:
    compiled.use_compiled(False)
    try:
        yield
    finally:
        compiled.use_compiled(True)


def both(work: Callable[[], T]) -> tuple[T, T]:
    """``work`` with the Python core alone, then with the compiled loop."""
    with python_core():
        expected = work()
    return expected, work()


def assert_same(got: Checkpoint, expected: Checkpoint) -> None:
    assert got == expected
    assert got.score == expected.score  # not part of equality: not stored
    assert encode_trajectory(got.trajectory) == encode_trajectory(expected.trajectory)
    if expected.state is not None:
        assert got.state is not None
        assert encode_state(got.state) == encode_state(expected.state)
        # The bytes the compiled side wrote itself, stored as they are.
        assert got.stored_state() == encode_state(expected.state)
        assert got.loan_ids() == frozenset(expected.state.loans)
        assert got.first_event_at == expected.state.first_event_at


thresholds = st.tuples(st.integers(350, 950), st.integers(350, 950)).map(
    lambda pair: Thresholds(close_below=min(pair), reopen_at=max(pair))
)


@st.composite
def policies(draw: st.DrawFn, version: str = "drawn") -> Policy:
    """The shipped policy with thresholds, dwell and freeze drawn anew: which rule applies,
    and when time alone changes it, must show in the trajectory."""
    freeze = POLICY.status.freeze.model_copy(
        update={
            "days_past_due_at_least": draw(st.sampled_from((1, 30, 60, 90))),
            "within_days": draw(st.floats(0.5, 200)),
        }
    )
    status = POLICY.status.model_copy(
        update={
            "thresholds": draw(thresholds),
            "min_dwell_days": draw(st.sampled_from((0, 0.25, 7, 30.5))),
            "freeze": freeze,
        }
    )
    segments = [s.model_copy(update={"thresholds": draw(thresholds)}) for s in POLICY.segments]
    exceptions = [e.model_copy(update={"thresholds": draw(thresholds)}) for e in POLICY.exceptions]
    return POLICY.model_copy(
        update={
            "version": version,
            "status": status,
            "segments": segments,
            "exceptions": exceptions,
        }
    )


@st.composite
def timelines(draw: st.DrawFn) -> PolicyTimeline:
    """One policy and card for all time, or versions of both taking effect mid-history."""
    base = draw(policies("v1"))
    cards = ScorecardTimeline(draw(st.sampled_from(CARDS)))
    versions: list[tuple[datetime, Policy]] = []
    if draw(st.booleans()):
        offset = draw(st.floats(1, 800))
        versions.append((AT - timedelta(days=offset), draw(policies("v2"))))
    if draw(st.booleans()):
        offset = draw(st.floats(1, 800))
        cards = ScorecardTimeline.of(
            CARDS[0], [(AT - timedelta(days=offset), draw(st.sampled_from(CARDS)))]
        )
    return PolicyTimeline.of(base, versions, cards)


def in_batches(
    events: Sequence[InputEvent],
    rng: random.Random,
    until: datetime,
    timeline: PolicyTimeline,
    *,
    stored_ledger: bool = False,
    fresh_entries: bool = False,
    read_back: bool = False,
) -> Checkpoint:
    """What the worker does with the events in shuffled batches (late ones restate); with
    ``stored_ledger`` the earlier events are given as the worker reads them (the bytes), with
    ``fresh_entries`` too the fresh ones packed from their ledger entries, as the worker
    packs them; with ``read_back`` each batch starts from the checkpoint as the store reads
    it back (its trajectory's changes left as stored records)."""
    shuffled = list(events)
    rng.shuffle(shuffled)
    stored: Checkpoint = START
    ledger: list[InputEvent] = []
    while shuffled:
        size = rng.randint(1, 4)
        fresh, shuffled = shuffled[:size], shuffled[size:]
        if read_back and stored is not START:
            trajectory = decode_trajectory(encode_trajectory(stored.trajectory))
            stored = Checkpoint.of_stored(trajectory, events[0].user_id, stored.stored_state())
        latest = max((e.occurred_at for e in ledger), default=None)
        earlier: list[InputEvent] | StoredLedger | None = None
        if needs_ledger(stored, fresh, latest, until, HORIZON):
            earlier = ledger
            if stored_ledger:
                blob = b"".join(encode_entry(e) for e in ledger)
                earlier = StoredLedger(blob, events[0].user_id)
        packed = None
        if fresh_entries and isinstance(earlier, StoredLedger):
            entries = compiled.pack_ledger(b"".join(encode_entry(e) for e in fresh))
            assert entries is not None
            packed = entries[0]
        stored = update(stored, fresh, earlier, timeline, until, HORIZON, fresh_packed=packed)
        ledger = [*ledger, *fresh]
    return stored


later = st.floats(min_value=0, max_value=1200).map(lambda days: AT + timedelta(days=days))


@settings(max_examples=examples(300))
@given(histories(), later, timelines())
def test_a_whole_history_gives_the_python_checkpoint(
    events: list[InputEvent], until: datetime, timeline: PolicyTimeline
) -> None:
    expected, got = both(lambda: advance(canonical(events), timeline, until, HORIZON))
    assert_same(got, expected)


@settings(max_examples=examples(300))
@given(histories(), later, timelines(), st.randoms(use_true_random=False))
def test_the_score_a_run_leaves_is_the_standing_score(
    events: list[InputEvent], until: datetime, timeline: PolicyTimeline, rng: random.Random
) -> None:
    for checkpoint in both(lambda: in_batches(events, rng, until, timeline, stored_ledger=True)):
        # The last batch's run reviewed up to ``until``: it scored wherever there is a state.
        shown = standing(checkpoint, timeline)
        assert (checkpoint.score is None) == (shown is None)
        assert shown is None or shown.score == checkpoint.score
        # Standing repeats the last review: its line is the trajectory's (the fold announces
        # a change only where the trajectory has one, and needs no assessment otherwise).
        assert shown is None or shown.line == checkpoint.trajectory.line


@settings(max_examples=examples(300))
@given(histories(), later, timelines(), st.randoms(use_true_random=False))
def test_shuffled_batches_give_the_python_checkpoint(
    events: list[InputEvent], until: datetime, timeline: PolicyTimeline, rng: random.Random
) -> None:
    seed = rng.random()
    expected, got = both(lambda: in_batches(events, random.Random(seed), until, timeline))
    assert_same(got, expected)
    # As the worker reads earlier events: the stored bytes, packed by the compiled side.
    got = in_batches(events, random.Random(seed), until, timeline, stored_ledger=True)
    assert_same(got, expected)
    # And the fresh events packed from their ledger entries, as the worker hands them over.
    got = in_batches(
        events, random.Random(seed), until, timeline, stored_ledger=True, fresh_entries=True
    )
    assert_same(got, expected)
    # And each batch from the checkpoint as the store reads it back.
    got = in_batches(
        events,
        random.Random(seed),
        until,
        timeline,
        stored_ledger=True,
        fresh_entries=True,
        read_back=True,
    )
    assert_same(got, expected)


@settings(max_examples=examples(300))
@given(histories())
def test_a_stored_ledger_is_packed_as_its_events_are(events: list[InputEvent]) -> None:
    blob = b"".join(encode_entry(e, i) for i, e in enumerate(events))
    packed = compiled.pack_ledger(blob)
    assert packed is not None  # the histories' money is in cents
    assert packed[0] == [compiled.pack_event(e) for e in events]
    assert packed[1] == list(range(len(events)))
    ledger = StoredLedger(blob, events[0].user_id if events else "u")
    assert ledger.digests() == {e.event_id: i for i, e in enumerate(events)}


MONEY_EDGES = [
    "2814749767106.55",  # 2**48 - 1 cents: the largest packed
    "2814749767106.56",  # 2**48 cents
    "-2814749767106.55",
    "1E+12",
    "3E+12",
    "1E+13",
    "1E+40",
    "0E+50",
    "-0.00",
    "1.000",
    "1.001",
    "1E-30",
    "0E-30",
    "1.0000000",
    "1E+2",
    "1E+3",
    "12345678901234567890",  # beyond the cents limit, within 64 bits
    "123456789012345678901234567",  # beyond 64 bits
]


def edge_events(money: Decimal) -> list[InputEvent]:
    """A purchase, an asset value and a repayment (paid and left) of ``money``, built around
    the contract's checks."""
    at = AT - timedelta(days=1)
    return [
        SpendingEvent.model_construct(
            event_id="s", user_id="u", occurred_at=at, amount=money, category="x"
        ),
        AssetEvent.model_construct(
            event_id="a",
            user_id="u",
            occurred_at=at,
            asset_type=AssetType.DEPOSIT,
            value=money,
            verified=True,
        ),
        RepaymentEvent.model_construct(
            event_id="r",
            user_id="u",
            occurred_at=at,
            loan_id="l",
            amount_due=Decimal(1),
            amount_paid=money,
            days_past_due=0,
            outstanding_balance=money,
        ),
    ]


@pytest.mark.parametrize("text", MONEY_EDGES)
def test_a_stored_ledger_packs_edge_money_as_its_events_pack(text: str) -> None:
    money = Decimal(text)
    edges = edge_events(money)
    for event in edges:
        blob = encode_entry(event, 5)
        expected = compiled.pack_event(event)
        if expected is None:
            assert compiled.pack_ledger(blob) is None, event
        elif len(money.as_tuple().digits) <= 19:  # beyond 64 bits: left to Python either way
            assert compiled.pack_ledger(blob) == ([expected], [5], [len(blob)]), event


@pytest.mark.parametrize("text", MONEY_EDGES)
def test_a_kept_snapshot_is_stored_with_its_money_as_given(text: str) -> None:
    """A loan's balance and an asset's value are stored as given (``1E+2`` is not
    ``100.00``): the bytes the compiled side writes are Python's, or it declines."""
    _, asset, loan = edge_events(Decimal(text))
    for event in (asset, loan):
        try:
            with python_core():
                expected = advance([event], TIMELINE, AT, HORIZON)
                stored = expected.stored_state()
        except (ValueError, OverflowError):
            continue  # Python cannot store it either
        got = advance([event], TIMELINE, AT, HORIZON)
        assert_same(got, expected)
        # Read back from those bytes and run on: the compiled side reads them as Python does.
        again = Checkpoint.of_stored(expected.trajectory, "u", stored)
        later = AT + timedelta(days=40)
        python, native = both(partial(advance, [], TIMELINE, later, HORIZON, again))
        assert_same(native, python)


def is_spending(event: InputEvent) -> bool:
    return isinstance(event, SpendingEvent)


def test_a_stored_ledger_the_machine_cannot_read_exactly_is_read_by_python() -> None:
    odd: list[InputEvent] = [
        SpendingEvent.model_construct(
            event_id="s-odd",
            user_id="u-1",
            occurred_at=AT - timedelta(days=3),
            amount=Decimal("0.001"),
            category="x",
        ),
        RepaymentEvent.model_construct(
            event_id="r-huge",
            user_id="u-1",
            occurred_at=AT - timedelta(days=2),
            loan_id="l",
            amount_due=Decimal("123456789012345678901234567"),  # beyond 64 bits
            amount_paid=Decimal(0),
            days_past_due=0,
            outstanding_balance=Decimal(1),
        ),
    ]
    income = income_event(Decimal(5000), True, 10).model_copy(update={"user_id": "u-1"})
    for entry in odd:
        blob = encode_entry(income, 1) + encode_entry(entry, 2)  # out-of-contract: no digest
        assert compiled.pack_ledger(blob) is None
        late = income.model_copy(update={"event_id": "late", "occurred_at": AT - timedelta(5)})
        first = advance(canonical([income, entry]), TIMELINE, AT, HORIZON)
        with python_core():
            expected = update(first, [late], [income, entry], TIMELINE, AT, HORIZON)
        got = update(first, [late], StoredLedger(blob, "u-1"), TIMELINE, AT, HORIZON)
        assert_same(got, expected)


@given(histories(), later, st.floats(min_value=-900, max_value=400), timelines())
def test_a_decision_at_any_moment_gives_the_python_checkpoint(
    events: list[InputEvent], until: datetime, days: float, timeline: PolicyTimeline
) -> None:
    stored = advance(canonical(events), timeline, until, HORIZON)
    moment = until + timedelta(days=days)
    expected, got = both(lambda: at_time(stored, events, timeline, moment, HORIZON))
    assert_same(got, expected)


@settings(max_examples=examples(300))
@given(histories(), st.floats(min_value=-400, max_value=1200), st.sampled_from(CARDS))
def test_simulated_good_months_fall_in_the_python_bins(
    events: list[InputEvent], days: float, card: ScorecardDocument
) -> None:
    """A declined request's path back scores up to 24 simulated months: the compiled
    simulation gives every month's bins as the Python reference does, and the same paths."""
    state = fold_events(None, canonical(events))
    assert state is not None
    at = AT + timedelta(days=days)
    ends = [to_micros(add_months(at, k)) for k in range(1, MAX_MONTHS + 1)]
    got = compiled.good_month_bins(card, state, ends)
    assert got is not None  # whole cents: always compiled
    expected = [list(card.evaluate(v).bins.values()) for v in future_values(state, at, 24)]
    assert got == expected
    target = card.evaluate(derive_features(state, at)).score + 40
    python, native = both(lambda: path_back(card, state, at, target))
    assert native == python


def test_good_months_the_machine_cannot_simulate_are_simulated_by_python() -> None:
    state = fold_events(None, [income_event(Decimal(5000), True, 40)])
    assert state is not None
    # Money not in whole cents: the contract refuses it; a state built around it still gets
    # Python's answer.
    state = replace(state, spend_by_month={state_month(state): Decimal("10.005")})
    card = CARDS[0]
    assert compiled.good_month_bins(card, state, [to_micros(add_months(AT, 1))]) is None
    target = card.evaluate(derive_features(state, AT)).score + 40
    python, native = both(lambda: path_back(card, state, AT, target))
    assert native == python and native.paths


def test_the_feature_order_is_the_features_values_order() -> None:
    state = fold_events(None, [income_event(Decimal(5000), True, 10)])
    assert state is not None
    assert tuple(derive_features(state, AT).values()) == compiled.FEATURE_ORDER


def test_money_not_in_whole_cents_is_left_to_python() -> None:
    """The contract quantises money to cents; a state or an event built otherwise is run by
    Python, with the same answer."""
    income = income_event(Decimal(5000), True, 40)
    state = fold_events(None, [income])
    assert state is not None
    timeline = PolicyTimeline(POLICY)

    def run(state: UserState, events: list[InputEvent]) -> compiled.Appended | None:
        packed = compiled.pack_events(events, state.user_id)
        if packed is None:
            return None
        stored = encode_state(state)
        return compiled.advance_appending(packed, timeline, AT, HORIZON, None, state.as_of, stored)

    assert run(state, [income]) is not None
    odd = replace(state, spend_by_month={state_month(state): Decimal("10.005")})
    assert run(odd, [income]) is None
    # The contract refuses such an amount; built around it, it still gets Python's answer.
    spend = SpendingEvent.model_construct(
        event_id="s",
        user_id=state.user_id,
        occurred_at=AT,
        amount=Decimal("0.001"),
        category="groceries",
    )
    assert run(state, [income, spend]) is None
    start = Checkpoint(Trajectory((), state.as_of, None), state)
    expected, got = both(lambda: advance([income, spend], timeline, AT, HORIZON, start))
    assert_same(got, expected)


def test_a_fold_that_cannot_be_stored_is_run_by_python() -> None:
    """The compiled machine takes the start's fold as stored bytes: a state the codec cannot
    write (built around the contract: a non-ASCII loan id) is stepped by Python instead."""
    state = fold_events(None, [income_event(Decimal(5000), True, 40)])
    assert state is not None
    indebted = fold_events(None, [repayment("l", Decimal(10))])
    assert indebted is not None
    loan = indebted.loans["l"]
    odd = replace(state, loans={"lé": loan})
    start = Checkpoint(Trajectory((), state.as_of, None), odd)
    with pytest.raises(UnicodeEncodeError):
        start.stored_state()
    expected, got = both(lambda: advance([], TIMELINE, AT, HORIZON, start))
    assert got == expected and got.state is not None and "lé" in got.state.loans


def test_decay_is_the_c_librarys_pow_bit_for_bit() -> None:
    """``0.5 ** x`` as CPython computes it: a compiler's ``exp2(-x)`` differs in the last
    bit about once in two thousand, and a stored counter would keep the difference."""
    rng = random.Random(7)
    for _ in range(100_000):
        micros = rng.randrange(-(10**9), 3 * 10**14)
        assert native.decay_weight(micros) == decay_factor(timedelta(microseconds=micros))


def test_a_policy_the_loop_cannot_compile_is_run_by_python() -> None:
    twice = POLICY.model_copy(update={"segments": [*POLICY.segments, *POLICY.segments]})
    timeline = PolicyTimeline(twice)
    events = canonical([income_event(Decimal(5000), True, 40)])
    user = events[0].user_id
    packed = compiled.pack_events(events, user)
    assert packed is not None
    assert compiled.advance_appending(packed, timeline, AT, HORIZON, None, None, None) is None
    expected, got = both(lambda: advance(events, timeline, AT, HORIZON))
    assert_same(got, expected)


def repayment(loan_id: str, balance: Decimal) -> RepaymentEvent:
    return RepaymentEvent(
        event_id=f"r-{loan_id}",
        user_id="u",
        occurred_at=AT - timedelta(days=50),
        loan_id=loan_id,
        amount_due=Decimal(1),
        amount_paid=Decimal(1),
        days_past_due=0,
        outstanding_balance=balance,
    )


def state_month(state: UserState) -> int:
    return month_index(state.as_of)


# ---- CPython's float -> timedelta, exactly ------------------------------------------------
halfway = st.integers(-(10**12), 10**12).map(lambda k: k / 2e6)


@given(
    st.floats(allow_nan=True, allow_infinity=True) | halfway | st.floats(-1e10, 1e10),
    st.sampled_from((10**6, 86_400 * 10**6)),
)
def test_a_float_duration_rounds_as_cpython_rounds_it(value: float, unit: int) -> None:
    try:
        span = timedelta(seconds=value) if unit == 10**6 else timedelta(days=value)
    except (OverflowError, ValueError):
        got = native.timedelta_micros(value, unit)
        # Python raises; the loop declines or the instant falls outside the datetime range.
        assert got is None or abs(got) > 10**18
        return
    assert native.timedelta_micros(value, unit) == duration_micros(span)


# ---- a golden run on 3,000 users --------------------------------------------------------------
def _workload(users: int, rng: random.Random) -> dict[str, list[InputEvent]]:
    """Users with income, assets, spending and repayments (some late, some missed) over
    two years, money in cents."""
    histories: dict[str, list[InputEvent]] = {}
    for u in range(users):
        user = f"g{u:05d}"
        events: list[InputEvent] = []
        for i in range(rng.randint(1, 9)):
            at = AT - timedelta(seconds=rng.randrange(730 * 86400))
            roll = rng.random()
            if roll < 0.45:
                due = Decimal(rng.randint(500, 300_000)) / 100
                dpd = rng.choice((0, 0, 0, 0, 5, 35, 65, 95))
                events.append(
                    RepaymentEvent(
                        event_id=f"{user}-{i}",
                        user_id=user,
                        occurred_at=at,
                        loan_id=f"{user}-l{rng.randint(1, 2)}",
                        amount_due=due,
                        amount_paid=Decimal(0) if rng.random() < 0.08 else due,
                        days_past_due=dpd,
                        outstanding_balance=Decimal(rng.randint(0, 5_000_000)) / 100,
                    )
                )
            elif roll < 0.8:
                events.append(
                    SpendingEvent(
                        event_id=f"{user}-{i}",
                        user_id=user,
                        occurred_at=at,
                        amount=Decimal(rng.randint(1, 90_000)) / 100,
                        category="groceries",
                    )
                )
            else:
                events.append(
                    AssetEvent(
                        event_id=f"{user}-{i}",
                        user_id=user,
                        occurred_at=at,
                        asset_type=rng.choice(list(AssetType)),
                        value=Decimal(rng.randint(0, 90_000_000)) / 100,
                        verified=rng.random() < 0.5,
                    )
                )
        histories[user] = events
    return histories


@pytest.mark.slow
def test_three_thousand_users_get_the_python_checkpoints_byte_for_byte() -> None:
    rng = random.Random(20261201)
    workload = _workload(3000, rng)
    timeline = PolicyTimeline.of(
        POLICY,
        [(AT - timedelta(days=200), POLICY.model_copy(update={"version": "later"}))],
        ScorecardTimeline.of(CARDS[0], [(AT - timedelta(days=400), CARDS[1])]),
    )
    seeds = {user: rng.random() for user in workload}

    def fold_all() -> dict[str, Checkpoint]:
        # The compiled run reads earlier events as the worker does, from their stored bytes,
        # and each batch starts from the checkpoint as the store reads it back.
        return {
            user: in_batches(
                events,
                random.Random(seeds[user]),
                AT,
                timeline,
                stored_ledger=compiled.active(),
                read_back=True,
            )
            for user, events in workload.items()
        }

    expected, got = both(fold_all)
    assert sum(len(events) for events in workload.values()) > 12_000
    for user in workload:
        assert_same(got[user], expected[user])

    # The answer a decline on a closed line carries: its path back, the same from both.
    def paths_back() -> list[PathBack]:
        return [
            path_back(CARDS[1], state, AT, 700)
            for checkpoint in expected.values()
            if (state := checkpoint.state) is not None
        ]

    python, native = both(paths_back)
    assert len(native) > 2_000 and sum(bool(p.paths) for p in native) > 500
    assert native == python
    changes = sum(len(c.trajectory.changes) for c in expected.values())
    assert changes > 3000  # the histories do move the status machine


@pytest.mark.parametrize("fresh_id", ["r-a", "r-c"])
def test_events_of_one_instant_are_folded_in_event_id_order_from_a_stored_ledger(
    fresh_id: str,
) -> None:
    """A late repayment at the instant of a stored one, on the same loan, read against the
    stored ledger's bytes: the Python core's checkpoint, and the balance kept is the one with
    the larger event id (latest by instant, then id), whichever of the two came first."""
    income = income_event(Decimal(5000), True, 10).model_copy(update={"user_id": "u-1"})
    at = AT - timedelta(days=4)
    stored_one = RepaymentEvent.model_construct(
        event_id="r-b",
        user_id="u-1",
        occurred_at=at,
        loan_id="l",
        amount_due=Decimal(100),
        amount_paid=Decimal(100),
        days_past_due=0,
        outstanding_balance=Decimal(500),
    )
    late = stored_one.model_copy(
        update={"event_id": fresh_id, "outstanding_balance": Decimal(900), "days_past_due": 40}
    )
    first = advance(canonical([income, stored_one]), TIMELINE, AT, HORIZON)
    blob = encode_entry(income, 1) + encode_entry(stored_one, 2)
    with python_core():
        expected = update(first, [late], [income, stored_one], TIMELINE, AT, HORIZON)
    got = update(first, [late], StoredLedger(blob, "u-1"), TIMELINE, AT, HORIZON)
    assert_same(got, expected)
    assert expected.state is not None
    kept = expected.state.loans["l"].balance
    assert kept == (Decimal(900) if fresh_id > "r-b" else Decimal(500))


DAY_US = 86_400_000_000
#: Instants within ~400 days of AT, every month start among them drawn often: a moment at a
#: month start takes the month before it, and changes at month starts tie with them.
MONTH_STARTS = [
    to_micros(add_months(datetime(AT.year, AT.month, 1, tzinfo=UTC), k)) for k in range(-14, 14)
]
instants = st.one_of(
    st.integers(to_micros(AT) - 400 * DAY_US, to_micros(AT) + 400 * DAY_US),
    st.sampled_from(MONTH_STARTS),
    st.sampled_from(MONTH_STARTS).map(lambda us: us - 1),
)


@settings(max_examples=examples(1000))
@given(
    st.lists(st.tuples(instants, st.sampled_from(list(EffectiveStatus)), st.booleans())),
    st.lists(instants, min_size=1),
    instants,
    st.integers(0, 800).map(lambda days: days * DAY_US),
)
def test_a_late_visit_resumes_where_python_resumes(
    drawn: list[tuple[int, EffectiveStatus, bool]],
    occurred: list[int],
    moment: int,
    horizon_us: int,
) -> None:
    changes = tuple(
        LineStatus(status, from_micros(since), settled) for since, status, settled in sorted(drawn)
    )
    reviewed = max([moment, *(since for since, _, _ in drawn)])
    trajectory = Trajectory(changes, from_micros(reviewed), None)
    occurred.sort()
    expected = _resume_point_by(
        from_micros(occurred[0]),
        lambda at: bisect.bisect_right(occurred, to_micros(at)),
        trajectory,
        from_micros(moment),
        timedelta(microseconds=horizon_us),
    )
    got = compiled.resume_point(trajectory.records(), occurred[0], moment, horizon_us)
    if expected is None:
        assert got == (0, 0)
        return
    assert got is not None
    kept, at = got
    assert trajectory.prefix(kept, from_micros(at), None) == expected[0]
    # The window as a visit bisects it (timeline._update_stored).
    window = (
        bisect.bisect_right(occurred, at - horizon_us),
        bisect.bisect_right(occurred, at),
    )
    assert window == expected[1:]


def test_a_resume_point_python_would_raise_at_is_left_to_python() -> None:
    first_day = to_micros(datetime(1, 1, 1, tzinfo=UTC))
    record = Trajectory((LineStatus(EffectiveStatus.OPEN, AT, False),), AT, None).records()
    # The month before 0001-01 and a window reaching before 0001-01-01 are not datetimes.
    assert compiled.resume_point(record, first_day - 1, first_day, 0) is None
    assert compiled.resume_point(record, to_micros(AT), to_micros(AT) + DAY_US, 800 * DAY_US) == (
        1,
        to_micros(AT),
    )
    assert compiled.resume_point(record, to_micros(AT), to_micros(AT) + DAY_US, 10**18) is None
